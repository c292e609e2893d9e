"""How an agent's state is laid out: open-decision records (and the ``RewardComputed`` event
of a closed one), the snapshot form, and the migrations that restore snapshots of older
layouts.

:class:`dataflows.agent_state.AgentState` pickles through :func:`snapshot_state` and restores
through :func:`restore_state`. Every layout a released rewardflow wrote still restores
(``tests/dataflows``: the dedup, open-decision and cold-store tests restore each one).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from dataflows.dedup import ExpiringIds
from dataflows.join_types import JoinConfig, derived_str
from dataflows.open_decisions import OpenDecisions
from schemas.events import EVENT_ADAPTER, DeadLetter, EventBase, derived_id

# Open decision record layout (a list keeps snapshots small and fast).
# _FEAT: the decision's linear-scoring features (None unless the agent declares features;
# absent from records of snapshots taken before linear scoring).
_USER, _ACTION, _BUCKET, _TS, _TEMPLATE, _PROBE, _SUMS, _NSIG, _FEAT = range(9)


def reward_event(tenant: str, agent_id: str, did: str, rec: list[Any], reward: float,
                 parts: dict[str, float], closed_by: str, close_iso: str,
                 model_version: str) -> dict[str, Any]:
    """The ``RewardComputed`` event (as JSON-able data) of the open-decision record ``rec``
    closed at ``close_iso``; its id derives from the decision's, so a replay repeats it."""
    probe = rec[_PROBE]
    return {
        "event_id": derived_str("reward", did), "tenant": tenant,
        "ts": close_iso, "schema_version": 1,
        "type": "RewardComputed", "decision_id": did, "agent_id": agent_id,
        "user_id": rec[_USER], "action": rec[_ACTION], "bucket": rec[_BUCKET],
        "decision_ts": datetime.fromtimestamp(rec[_TS], UTC).isoformat(),
        "reward": reward, "components": parts, "closed_by": closed_by,
        "n_signals": rec[_NSIG], "reward_model_version": model_version,
        "probe": {"trait": probe[0], "delta": probe[1]} if probe else None,
        "template": rec[_TEMPLATE],
    }


def unjoined_letter(tenant: str, ev: EventBase, meta: tuple[Any, ...],
                    reason: str) -> DeadLetter:
    """The dead letter of a signal the join could not credit (``reason``: from
    :func:`dataflows.credit.credit`); its id derives from the signal's."""
    return DeadLetter(
        event_id=derived_id("dlq", ev.event_id), tenant=tenant, ts=ev.ts, reason=reason,
        step="reward_join", topic=meta[0], partition=meta[1], offset=meta[2],
        payload=ev.model_dump_json()[:2000])


def failed_letter(ev: EventBase, meta: tuple[Any, ...], exc: Exception) -> DeadLetter:
    """The dead letter of an event the join failed on (a bug: bad input was dead-lettered
    before it), with the exception as its reason."""
    return DeadLetter(
        event_id=derived_id("dlq", "agent", ev.event_id), tenant=ev.tenant,
        reason=f"processing error in step 'agent': {type(exc).__name__}: {exc}",
        step="agent", topic=meta[0], partition=meta[1], offset=meta[2],
        payload=ev.model_dump_json()[:2000])


def snapshot_state(attrs: dict[str, Any]) -> dict[str, Any]:
    """What an agent pickles, from its attributes: everything but its configuration
    (re-attached on restore), with buffered events as their JSON (a pickled event model
    costs ~9 us, its bytes ~0)."""
    state = attrs.copy()
    state.pop("cfg", None)
    state["buffer"] = [(ts, rank, key, None, meta,
                        raw if raw is not None else ev.model_dump_json().encode())
                       for ts, rank, key, ev, meta, raw in attrs["buffer"]]
    return state


def restore_state(state: dict[str, Any]) -> dict[str, Any]:
    """An agent's attributes from a snapshot of this layout or an older one (the buffered
    events validated again from their JSON)."""
    for name in ("seen", "closed"):  # a snapshot of the layout before dataflows.dedup
        old = state.get(name)
        if isinstance(old, dict):
            ids = state[name] = ExpiringIds.for_horizon(JoinConfig.dedup_horizon)
            for key, ts in old.items():
                ids.add(key, ts)
    state.setdefault("compacted_at", 0)  # snapshots from before the cold store
    state.setdefault("published_at", -math.inf)  # snapshots from before policy_interval
    state.setdefault("publish_at", None)
    if isinstance(state.get("open"), dict):  # before dataflows.open_decisions
        state["open"] = OpenDecisions.from_dict(JoinConfig.window, state["open"], _TS)
        state.pop("deadlines", None)
        state["by_user"] = {u: max(reversed(ds), key=lambda d: d[0])  # newest, last
                            for u, ds in state["by_user"].items() if ds}
    validate = EVENT_ADAPTER.validate_json
    state["buffer"] = [(ts, rank, key, validate(raw), meta, raw)
                       for ts, rank, key, _, meta, raw in state["buffer"]]
    return state
