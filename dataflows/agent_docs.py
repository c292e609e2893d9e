"""The Redis document set of one agent, as the Redis sink writes it
(:mod:`dataflows.sinks`): summary, windows, history, relationships and policy versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataflows.projections import iso

if TYPE_CHECKING:
    from dataflows.agent_state import AgentState


def snapshot_item(state: AgentState, policies: list[tuple[dict[str, Any], bytes]],
                  full: bool = True) -> dict[str, Any]:
    """The Redis document set of one agent after a batch (written by the Redis sink).

    ``policies``: the (document, its JSON) of every version not yet written. ``full=False``
    leaves out the windows and the history (they only change with a reward); the history
    comes as its JSON (:meth:`~dataflows.projections.Projections.history_json`).
    """
    as_of = state.clock if state.clock is not None else 0.0
    docs = state.proj.docs(as_of, full=False)
    summary = {
        "agent_id": state.agent_id, "tenant": state.tenant, "seq": state.seq,
        "interactions": docs["interactions"], "mean_reward": docs["mean_reward"],
        "last_reward_at": docs["last_reward_at"],
        "watermark": iso(state.wm) if state.wm > -1e18 else None,
        "policy_version": state.learner.version,
        "counts": dict(state.counts), "open_decisions": len(state.open),
        "buffered": len(state.buffer),
    }
    versions = {p["version"]: raw for p, raw in policies}
    return {
        "agent": f"{state.tenant}:{state.agent_id}", "tenant": state.tenant,
        "agent_id": state.agent_id, "seq": state.seq, "summary": summary,
        "windows": state.proj.window_docs(as_of) if full else None,
        "history": state.proj.history_json() if full else None,
        "relationships": {u: state.proj.relationship_doc(u)
                          for u in state.proj.take_touched_users()},
        "policy": versions[max(versions)] if versions else None,
        "policy_versions": versions,
    }
