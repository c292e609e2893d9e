"""Per-agent join state: dedup, event-time watermark, reward join, credit assignment.

Pure and picklable; the Bytewax step in :mod:`dataflows.flow` feeds it events and the wall
clock and turns what it returns into Kafka and Redis writes.

Semantics (the README's "Rewards" section says the same in prose):

* **Dedup.** An ``event_id`` seen within ``dedup_horizon`` counts once; the repeat is a
  *duplicate*. A second ``DecisionMade`` for a known ``decision_id`` is a duplicate too.
  Ids are kept for the horizon and at most a 32nd of it longer (:mod:`dataflows.dedup`).
* **Watermark.** Events are buffered and applied in event-time order
  ``(ts, type rank, event_id)`` once the agent's watermark passes them. The watermark is
  ``min(max decision ts, max signal ts) - allowed_lateness`` once both streams have been
  seen, so one topic read ahead of the other cannot make the other's events late; when the
  agent and the process's whole input have been quiet for ``idle_watermark`` seconds of wall
  time, it advances with the wall clock from the newest event seen (so idle streams still
  close, and a backlog never turns into lateness). An event older
  than the watermark on arrival, or older than the newest earlier event of its own Kafka
  partition minus the allowed lateness, is *late*: counted, never applied. The partition
  rule makes lateness independent of how fast each partition happens to be read.
  The shard may also raise it to the *tick watermark* of the input's partition clocks
  (``floor``, :mod:`dataflows.ticks`), which never makes an event late that the partition
  rule would not. *Control events* (``AgentUpserted``, ``PolicyRollbackRequested``) are not
  late within the dedup horizon: one behind the watermark is applied at the watermark
  (configuration from then on).
* **Population priors.** ``PriorAssigned`` (the population process handing a live agent
  its template's newer prior) is a control event like ``AgentUpserted``: applied in
  event-time order (at the watermark when behind it), so a replay re-weighs the same
  rewards; an agent whose template changed meanwhile ignores it.
* **Join.** A decision is open for ``[ts, ts + window)``. Explicit feedback and terminal
  signals (session_end, abandonment) close it when applied; otherwise the watermark passing
  ``ts + window`` closes it, with the model's default reward if nothing came.
* **Credit assignment.** A signal without ``decision_id`` goes to the latest decision of the
  same agent and user whose window contains the signal's ts. If that decision is closed the
  signal is late; if there is none (or the ``decision_id`` is unknown) the signal goes to the
  DLQ as *unattributed*.

Because events are applied in event-time order, the rewards, projections and policy versions
are a function of the events alone, whatever the interleaving of topics and partitions
(unless a stream stalls for longer than ``idle_watermark``).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Sequence
from typing import Any

from dataflows.agent_clock import NEG_INF, AgentClocks
from dataflows.agent_compaction import COMPACT_EVERY, PRUNE_EVERY, compact, prune
from dataflows.agent_docs import snapshot_item
from dataflows.agent_layout import (
    _ACTION,
    _BUCKET,
    _FEAT,
    _NSIG,
    _PROBE,
    _SUMS,
    _TS,
    _USER,
    failed_letter,
    restore_state,
    reward_event,
    snapshot_state,
    unjoined_letter,
)
from dataflows.credit import credit
from dataflows.dedup import ExpiringIds
from dataflows.join_types import Emitted, JoinConfig, LearnerCallbacks, Meta, derived_str
from dataflows.learner import make_learner
from dataflows.open_decisions import OpenDecisions
from dataflows.projections import Projections, iso
from schemas.events import (
    AgentUpserted,
    EventBase,
    FeedbackGiven,
    PolicyRollbackRequested,
    PriorAssigned,
    SignalObserved,
)
from schemas.kinds import TERMINAL_SIGNALS

_RANK = {"AgentUpserted": 0, "PolicyRollbackRequested": 0, "PriorAssigned": 0,
         "DecisionMade": 1, "FeedbackGiven": 2, "SignalObserved": 2}

#: Which watermark stream an event type belongs to.
_STREAM = {"AgentUpserted": "d", "PolicyRollbackRequested": "d", "PriorAssigned": "d",
           "DecisionMade": "d", "FeedbackGiven": "s", "SignalObserved": "s"}
#: the types the join credits to a decision (dispatched on ``type``: the input step gives
#: pydantic models or :mod:`dataflows.decode`'s structs)
_SIGNAL_TYPES = frozenset({"FeedbackGiven", "SignalObserved"})
log = logging.getLogger("rewardflow.dataflow")


__all__ = ["AgentState", "Emitted", "JoinConfig", "Meta", "derived_str"]


class AgentState(AgentClocks):
    """Everything the dataflow keeps for one agent.

    >>> from dataflows.reward_model import load_reward_model
    >>> from schemas.events import DecisionMade, FeedbackGiven
    >>> import uuid
    >>> cfg = JoinConfig(load_reward_model(), idle=None)
    >>> st = AgentState("default", "a1", cfg)
    >>> d = DecisionMade(decision_id=uuid.uuid4(), agent_id="a1", user_id="u", action="x",
    ...     propensity=0.5, explored=False, policy_version=0, bucket="*")
    >>> f = FeedbackGiven(decision_id=d.decision_id, agent_id="a1", user_id="u",
    ...     kind="thumbs", value=1.0, ts=d.ts)
    >>> _ = st.ingest(d, (None, None, None), now=0.0)
    >>> out = st.ingest(f, (None, None, None), now=0.0)
    >>> out.rewards == []   # f is buffered until the watermark passes it
    True
    >>> out = st.drain()
    >>> [(r["reward"], r["closed_by"]) for r in out.rewards], st.learner.version
    ([(1.0, 'feedback')], 1)
    """

    def __init__(self, tenant: str, agent_id: str, cfg: JoinConfig) -> None:
        self.tenant = tenant
        self.agent_id = agent_id
        self.cfg = cfg
        self.seq = 0
        self.pruned_at = 0
        self.compacted_at = 0
        self.counts: dict[str, int] = {"in": 0, "duplicates": 0, "late": 0, "dlq": 0,
                                       "decisions": 0, "joined": 0, "agents": 0, "rewards": 0}
        #: event ids (as ints) applied within the dedup horizon
        self.seen = ExpiringIds.for_horizon(cfg.dedup_horizon)
        #: (ts, type rank, id as int, event, meta, its raw JSON or None), a heap
        self.buffer: list[tuple[float, int, int, EventBase, Meta, bytes | None]] = []
        self.max_ts: dict[str, float] = {}
        self.last_arrival = 0.0
        self.wm = NEG_INF
        self.clock: float | None = None
        #: open decisions in event-time order (the oldest is the next to time out)
        self.open = OpenDecisions.for_window(cfg.window)
        #: closed decision ids, filed under the decision's ts
        self.closed = ExpiringIds.for_horizon(cfg.dedup_horizon)
        #: user -> (ts, id) of their newest decision within the window (credit assignment)
        self.by_user: dict[str, tuple[float, str]] = {}
        #: event time of the newest published policy version, and of a publish deferred by
        #: ``cfg.policy_interval`` (rewards closed since are folded into it)
        self.published_at = NEG_INF
        self.publish_at: float | None = None
        self.template: str | None = None
        #: the join reaches its learner only through :class:`LearnerCallbacks`; the algorithm
        #: follows the spec (AgentUpserted) when it comes
        self.learner: LearnerCallbacks = make_learner(
            agent_id, tenant, None, epsilon_floor=cfg.epsilon_floor,
            epsilon_decay_count=cfg.epsilon_decay_count, every_n_rewards=cfg.every_n_rewards)
        self.proj = Projections(cfg.history_length, cfg.half_life)

    # -- input ----------------------------------------------------------------------------
    def on_events(self, items: Sequence[Any], now: float, input_last: float = 0.0,
                  floor: float = NEG_INF) -> Emitted:
        """Take this agent's ``(agent key, event, meta, raw JSON)`` items of one activation,
        in arrival order (the boundary :class:`~dataflows.join_types.AgentCore`: one call an
        activation).

        An event the join fails on (a bug, never bad input: that was dead-lettered before)
        goes to the dead letters with the reason, and what it had added is dropped; the
        others apply as usual.
        """
        out = Emitted()
        rewards, policies, dead = out.rewards, out.policies, out.dead
        for _, event, meta, raw in items:
            mark = (len(rewards), len(policies), len(dead), out.late, out.duplicates,
                    out.joined)
            try:
                self.ingest(event, meta, now, input_last, out, floor, raw)
            except Exception as exc:  # a bug must not kill the flow: DLQ it with the reason
                del rewards[mark[0]:], policies[mark[1]:], dead[mark[2]:]
                out.late, out.duplicates, out.joined = mark[3:]
                log.exception("step 'agent' failed on event %s", event.event_id)
                dead.append(failed_letter(event, meta, exc))
        return out

    def document(self, policies: list[tuple[dict[str, Any], bytes]],
                 full: bool = True) -> dict[str, Any]:
        """The agent's Redis document set (:func:`~dataflows.agent_docs.snapshot_item`)."""
        return snapshot_item(self, policies, full)

    def ingest(self, ev: EventBase, meta: Meta, now: float, input_last: float = 0.0,
               out: Emitted | None = None, floor: float = NEG_INF,
               raw: bytes | None = None) -> Emitted:
        """Take one validated event that arrived at wall time ``now`` (what it produced is
        added to ``out`` when given, and returned). ``floor``: the tick watermark; ``raw``:
        the event's JSON as read (a buffered event is snapshotted as that)."""
        self.seq += 1
        self.counts["in"] += 1
        if out is None:
            out = Emitted()
        ts = ev.ts.timestamp()
        key = ev.event_id.int
        if key in self.seen:
            self.counts["duplicates"] += 1
            out.duplicates += 1
            return out
        rank = _RANK[ev.type]  # type: ignore[attr-defined]
        if floor > self.wm:
            self._release(floor, out)
        part_clock = meta[3] if len(meta) > 3 else None
        if rank == 0 and ts >= self.wm - self.cfg.dedup_horizon:
            # a control event behind the watermark applies at it (but one older than the
            # dedup horizon is late: a replayed rollback could no longer be told from a new one)
            at = ts if ts >= self.wm else self.wm
        elif ts < self.wm or (part_clock is not None and ts < part_clock - self.cfg.lateness):
            self.counts["late"] += 1
            out.late += 1
            return out
        else:
            at = ts
        self.seen.add(key, ts)
        stream = _STREAM[ev.type]  # type: ignore[attr-defined]
        self.max_ts[stream] = max(self.max_ts.get(stream, NEG_INF), at)
        self.last_arrival = now
        # tie-break on the id as an int: the same order as its (fixed-width hex) string
        heapq.heappush(self.buffer, (at, rank, key, ev, meta, raw))
        return self._release(self._watermark(now, input_last, floor), out)

    def advance(self, now: float, input_last: float = 0.0, floor: float = NEG_INF) -> Emitted:
        """Move the watermark to wall time ``now`` (or the tick watermark ``floor``) and apply
        what it passes.

        The wall clock only counts once both this agent and the process's whole input
        (newest message at ``input_last``) have been quiet for ``idle`` seconds: a flow
        working through a backlog never turns its own slowness into lateness.
        """
        return self._release(self._watermark(now, input_last, floor))

    def drain(self) -> Emitted:
        """Apply everything buffered (end of input): the watermark moves to the newest ts,
        and a deferred policy version is published."""
        top = self.max_ts_any
        out = self._release(max(self.wm, top) if top is not None else self.wm)
        if self.publish_at is not None:
            self.seq += 1
            self._publish(self.publish_at, out, deferred=True)
        return out

    def _release(self, wm: float, out: Emitted | None = None) -> Emitted:
        if out is None:
            out = Emitted()
        buf, open_, window = self.buffer, self.open, self.cfg.window
        if wm <= self.wm:
            if not (buf and buf[0][0] <= wm):
                return out
            wm = self.wm
        else:
            self.wm = wm
        inf, pop = math.inf, heapq.heappop
        while True:  # (the watermark wm does not move in here)
            nxt_ev = buf[0][0] if buf else inf
            first = open_.first()
            nxt_dl = first[2] + window if first is not None else inf
            nxt_pub = self.publish_at
            if nxt_pub is not None and nxt_pub < nxt_ev and nxt_pub < nxt_dl \
                    and nxt_pub <= wm:  # after whatever closes or arrives before it
                self.seq += 1
                self._publish(nxt_pub, out, deferred=True)
            elif first is not None and nxt_dl <= nxt_ev and nxt_dl <= wm:
                self.seq += 1
                self._close(first[0], nxt_dl, "timeout", out)
            elif nxt_ev <= wm:
                ts, _, _, ev, meta, _ = pop(buf)
                self.seq += 1
                self.clock = ts if self.clock is None else max(self.clock, ts)
                self._apply(ev, ts, meta, out)
            else:
                break
        if self.seq - self.pruned_at >= PRUNE_EVERY:
            self.pruned_at = self.seq
            prune(self)
        if self.seq - self.compacted_at >= COMPACT_EVERY:
            self.compacted_at = self.seq
            compact(self)
        return out

    # -- join -----------------------------------------------------------------------------
    def _apply(self, ev: Any, ts: float, meta: Meta, out: Emitted) -> None:
        """Apply a released event: a model of :mod:`schemas.events` or, for the three hot
        types, a :mod:`dataflows.decode` struct with the same fields."""
        if isinstance(ev, AgentUpserted):
            self.counts["agents"] += 1
            self.learner.set_spec(ev.spec)
            if ev.prior is not None:  # the template's population prior (gateway, new agent)
                self.learner.set_prior(ev.prior)
            self.template = ev.spec.template
        elif isinstance(ev, PolicyRollbackRequested):
            self.counts["agents"] += 1  # control events on the agents topic
            self.learner.rollback(ev.policy, ts)
            self._publish(ts, out, deferred=True)  # an operator's request: at once
        elif isinstance(ev, PriorAssigned):
            self.counts["agents"] += 1
            if ev.template == self.template:  # else the agent left that template meanwhile
                self.learner.assign_prior(ev.prior)
                self._publish(ts, out, deferred=True)  # the gateway explores by it at once
        elif ev.type == "DecisionMade":  # a model, or dataflows.decode's struct
            did = str(ev.decision_id)
            if did in self.open or did in self.closed:
                self.counts["duplicates"] += 1
                out.duplicates += 1
                return
            self.counts["decisions"] += 1
            probe = (ev.probe.trait, ev.probe.delta) if ev.probe is not None else None
            self.open.add(did, [ev.user_id, ev.action, ev.bucket, ts,
                                ev.template or self.template, probe, {}, 0,
                                self.learner.feature_vector(ev.context)], ts)
            self.by_user[ev.user_id] = (ts, did)
        elif ev.type in _SIGNAL_TYPES:
            self._join(ev, ts, meta, out)

    def _join(self, ev: FeedbackGiven | SignalObserved, ts: float, meta: Meta,
              out: Emitted) -> None:
        did, status = credit(ev.decision_id, ev.user_id, ts, self.open, self.closed,
                             self.by_user, self.cfg.window)
        if did is None:
            self.counts["dlq"] += 1
            out.dead.append(unjoined_letter(self.tenant, ev, meta, status))
            return
        if status == "closed":
            self.counts["late"] += 1
            out.late += 1
            return
        rec = self.open.touch(did)
        sums: dict[str, list[float]] = rec[_SUMS]
        acc = sums.setdefault(ev.kind, [0.0, 0])
        acc[0] += self.cfg.reward_model.component(ev.kind, ev.value)
        acc[1] += 1
        rec[_NSIG] += 1
        self.counts["joined"] += 1
        out.joined += 1
        if ev.type == "FeedbackGiven":
            self._close(did, ts, "feedback", out)
        elif ev.kind in TERMINAL_SIGNALS:
            self._close(did, ts, "terminal", out)

    def _close(self, did: str, close_ts: float, closed_by: str, out: Emitted) -> None:
        rec = self.open.pop(did)
        model = self.cfg.reward_model
        reward, parts = model.reward({k: (v[0], int(v[1])) for k, v in rec[_SUMS].items()})
        self.closed.add(did, rec[_TS])
        self.clock = close_ts if self.clock is None else max(self.clock, close_ts)
        self.counts["rewards"] += 1
        probe = rec[_PROBE]
        close_iso = iso(close_ts)  # memoized: the snapshots format it again
        out.rewards.append(reward_event(self.tenant, self.agent_id, did, rec, reward, parts,
                                        closed_by, close_iso, model.version))
        self.proj.apply(user_id=rec[_USER], decision_id=did, action=rec[_ACTION],
                        bucket=rec[_BUCKET], reward=reward, engaged=rec[_NSIG] > 0,
                        close_ts=close_ts, close_iso=close_iso)
        self.learner.update(rec[_BUCKET], rec[_ACTION], reward, close_ts, probe=probe,
                            features=rec[_FEAT] if len(rec) > _FEAT else None)
        self._publish(close_ts, out)

    def _publish(self, ts: float, out: Emitted, deferred: bool = False) -> None:
        """A new policy version at event time ``ts`` if the learner has one, unless one was
        published less than ``cfg.policy_interval`` before: then it is deferred to the end
        of that interval (``deferred``: this is that time, or a publish that must not wait).
        """
        interval = self.cfg.policy_interval
        if not deferred and interval > 0 and ts < self.published_at + interval:
            if self.publish_at is None:
                self.publish_at = self.published_at + interval
            return
        self.publish_at = None
        doc = self.learner.maybe_publish()
        if doc is not None:
            out.policies.append(doc)
            self.published_at = ts

    def __getstate__(self) -> dict[str, Any]:
        return snapshot_state(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(restore_state(state))
