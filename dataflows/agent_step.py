"""The dataflow's stateful agent step: per-agent glue, grouped into shards.

Bytewax calls a stateful logic once per key per activation and then asks that key for its
next notification time. Keyed by agent, a batch of 1,000 events over 1,000 agents made
~630 such round trips through the runtime per batch. The step is keyed by *shard* instead
(:func:`shard_of`, a stable CRC32 of the agent key): one :class:`ShardLogic` call takes every
event of the batch that belongs to its agents and hands each agent's :class:`AgentLogic` its
own events in arrival order, so rewards, projections and policy versions are exactly those
of the per-agent step (``tests/dataflows``: exactness, recovery, 1 vs 2 workers).

Watermark ticks from the input (:mod:`dataflows.ticks`) arrive in the shard's stream between
events; a shard applies them in that order and releases, for every agent with something due,
what the tick watermark has passed (so feedback no longer waits for its agent's next event).

Recovery state is the shard's agents, each pickled on its own and cached until the agent
changes again (an epoch re-pickles only the agents it touched). Their bulk (dedup ids, open
decisions no signal touched) is pickled once into the process's cold store and the pickles
refer to it (:mod:`dataflows.cold_store`); each shard snapshot commits the store before it
returns. The shard count is part of the recovery layout: change ``RF_AGENT_SHARDS``
(``Settings.agent_shards``) only with a fresh recovery store.
"""

from __future__ import annotations

import logging
import pickle
import time
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.operators import StatefulBatchLogic

from dataflows import cold_store
from dataflows import metrics as _m
from dataflows.agent_native import NativeAgentState
from dataflows.agent_state import AgentState
from dataflows.join_types import AgentCore, Emitted, JoinConfig, derived_str
from dataflows.metrics import InputClock, flow_metrics
from dataflows.ticks import Tick, TickClock
from schemas.events import dump_event

log = logging.getLogger("rewardflow.dataflow")

OLD_LAYOUT = ("the recovery store was written by an older rewardflow (a separate partition "
              "clock step, agent-keyed state): stop the flow, delete the store and replay "
              "the topics (Redis writes are absolute and seq-guarded)")

def shard_of(agent_key: str, shards: int) -> str:
    """The shard key of ``"tenant:agent_id"`` (stable across processes and restarts).

    >>> shard_of("default:a1", 64) == shard_of("default:a1", 64)
    True
    """
    return f"s{zlib.crc32(agent_key.encode()) % shards}"


def new_core(tenant: str, agent_id: str, cfg: JoinConfig) -> AgentCore:
    """A new agent's join: the compiled :class:`~dataflows.agent_native.NativeAgentState`,
    or with ``cfg.core == "python"`` :class:`AgentState` (the reference implementation)."""
    if cfg.core == "python":
        return AgentState(tenant, agent_id, cfg)
    return NativeAgentState(tenant, agent_id, cfg)


class AgentLogic:
    """Glue around one agent's join (an :class:`~dataflows.join_types.AgentCore`): wall clock
    in, sink items out. It reaches the join only through that boundary, one call an
    activation.

    Each agent's snapshot goes to Redis at most every ``cfg.write_every`` seconds of wall
    time (``RF_PROJECTION_WRITE_SECONDS``, 0.2; coalescing everything in between: Redis writes
    are absolute, so only the newest state matters), with a trailing write through
    :meth:`notify_at` so the last state always lands. Kafka outputs (rewards, policies, DLQ)
    are never delayed.
    """

    def __init__(self, cfg: JoinConfig, topics: Any, clock: Any,
                 state: AgentCore | None) -> None:
        self.cfg = cfg
        self.topics = topics
        self.clock = clock
        self.state = state
        self.last_emit = 0.0
        self.pending = state is not None
        self.dirty_full = state is not None
        #: policy versions not yet written to Redis, with their JSON (the history keeps all)
        self.unsent: list[tuple[dict[str, Any], bytes]] = []

    def _emit(self, out: Emitted, now: float, force: bool = False) -> list[Any]:
        """Kafka messages (rewards, policies, DLQ) and, when due, the Redis snapshot."""
        st = self.state
        if st is None:  # only called once an event created the state
            return []
        items: list[Any] = []
        if out.rewards or out.policies or out.dead:
            self._kafka(st, out, items)
        count = _m.count
        if out.late or out.duplicates or out.joined:
            m = flow_metrics()
            if out.late:
                count(m.late, out.late)
            if out.duplicates:
                count(m.duplicates, out.duplicates)
            if out.joined:
                count(m.joined, out.joined)
        if out.rewards or out.policies:
            self.dirty_full = True
        if not self.pending and out:
            self.pending = True
        # (the same sum as notify_at's trailing wake-up, so that wake-up finds the write due)
        if force or (self.pending and now >= self.last_emit + self.cfg.write_every):
            self._document(st, items)
            self.last_emit = now
            self.pending = self.dirty_full = False
            self.unsent = []
        return items

    def _document(self, st: AgentCore, items: list[Any]) -> None:
        """The agent's Redis documents, with its unsent versions."""
        items.append(st.document(self.unsent, full=self.dirty_full))

    def _kafka(self, st: AgentCore, out: Emitted, items: list[Any]) -> None:
        """Rewards, policy versions and dead letters as Kafka messages (and their metrics)."""
        m = flow_metrics()
        key = st.agent_id.encode()
        count = _m.count
        if out.rewards:
            template = st.template or "none"
            closed_by: dict[str, int] = {}
            reward_hist = m.reward_for(template)
            topic = self.topics.rewards
            for r in out.rewards:
                items.append(KafkaSinkMessage(key, orjson.dumps(r), topic))
                closed_by[r["closed_by"]] = closed_by.get(r["closed_by"], 0) + 1
                _m.observe(reward_hist, r["reward"])
            for by, n in closed_by.items():
                count(m.rewards_for(template, by), n)
            last = out.rewards[-1]
            _m.observe(m.reward_delay, datetime.fromisoformat(last["ts"]).timestamp()
                       - datetime.fromisoformat(last["decision_ts"]).timestamp())
        if out.policies:
            topic = self.topics.policies
            for p in out.policies:
                raw = orjson.dumps(p)
                self.unsent.append((p, raw))
                # the event is the document embedded as is: serialize it once
                head = orjson.dumps({
                    "event_id": derived_str("policy", st.tenant, st.agent_id, p["version"]),
                    "tenant": st.tenant,
                    "ts": p["updated_at"] or datetime.now(UTC).isoformat(),
                    "schema_version": 1, "type": "PolicyUpdated", "agent_id": st.agent_id,
                    "version": p["version"]})
                items.append(KafkaSinkMessage(key, b"%b,\"policy\":%b}" % (head[:-1], raw),
                                              topic))
            count(m.policy_versions, len(out.policies))
            for b in out.policies[-1]["buckets"].values():
                _m.observe(m.policy_epsilon, b["epsilon"])
        for d in out.dead:
            items.append(KafkaSinkMessage(key, dump_event(d), self.topics.dlq))
            if d.step == "agent":
                count(m.dlq_for("processing_error"))
            else:
                count(m.dlq_for("unattributed"))
                count(m.unattributed)

    def on_batch(self, values: list[Any], now: float, floor: float,
                 input_last: float) -> list[Any]:
        """Apply ``(agent key, event, meta, raw)`` items (this agent's, in arrival order);
        ``floor``: the shard's tick watermark; ``input_last``: see :func:`_input_last`."""
        t0 = time.perf_counter()
        st = self.state
        if st is None:
            event = values[0][1]
            st = self.state = new_core(event.tenant, event.agent_id, self.cfg)
        out = st.on_events(values, now, input_last, floor)
        self.pending = True
        _m.observe(flow_metrics().learner_seconds, time.perf_counter() - t0)
        return self._emit(out, now)

    def on_notify(self, now: float, floor: float, input_last: float) -> list[Any]:
        if self.state is None:
            return []
        try:
            out = self.state.advance(now, input_last, floor)
        except Exception:  # keep the flow alive; the next event retries the release
            log.exception("step 'agent' failed advancing the watermark of %s",
                          self.state.agent_id)
            return []
        return self._emit(out, now)

    def on_eof(self, now: float) -> list[Any]:
        if self.state is None:
            return []
        out = self.state.drain()
        self.dirty_full = True
        return self._emit(out, now, force=True)

    def notify_at(self, input_last: float, due: float | None = None) -> float | None:
        """Wall time of this agent's next wake-up (``due``: its state's next_due, if known)."""
        if self.state is None:
            return None
        at = self.state.notify_at(input_last, due)
        if self.pending:
            trailing = self.last_emit + self.cfg.write_every
            at = trailing if at is None or trailing < at else at
        return at


def _input_last(now: float) -> float:
    """The newest input's wall time for the agents' idle fallback, moved on by the time
    since the input was last polled: the input counts as quiet only while it is polled and
    answers nothing. A flow that stalls (a long epoch snapshot, a starved CPU) reads nothing
    meanwhile; counting that as quiet moved the watermark past what was produced during
    the stall, and it was then dropped as late. ``now`` while an input partition is still
    starting (the input is not quiet then, it has not begun: a feedback read before its
    decision's partition answered once must not be released).

    >>> InputClock.last, InputClock.polled = 100.0, 101.0  # quiet for 1 s when last polled
    >>> _input_last(101.0), _input_last(104.0)   # then no poll for 3 s: still quiet for 1 s
    (100.0, 103.0)
    >>> InputClock.last = InputClock.polled = 0.0
    """
    if InputClock.starting:
        return now
    stalled = now - InputClock.polled if InputClock.polled else 0.0
    return InputClock.last + stalled if stalled > 0 else InputClock.last


def _restore(blob: bytes, cfg: JoinConfig) -> AgentCore | None:
    state: AgentCore | None = pickle.loads(blob)  # noqa: S301 - our own recovery snapshot
    if state is not None:
        state.cfg = cfg
    return state


class ShardLogic(StatefulBatchLogic[Any, Any, dict[str, bytes]]):
    """The agents of one shard. Input values are ``(agent key, event, meta, raw JSON)``
    (:class:`dataflows.source.Parsed`)."""

    def __init__(self, cfg: JoinConfig, topics: Any, clock: Any,
                 resume: dict[str, bytes] | None) -> None:
        self.cfg, self.topics, self.clock = cfg, topics, clock
        self.agents: dict[str, AgentLogic] = {}
        #: pickled state per agent, valid until the agent changes again
        self.blobs: dict[str, bytes] = {}
        #: agent -> wall time of its next notification, as of its last activation. The
        #: process's input clock only moves forward, so a stored time is never later than
        #: the agent's true one: at worst an agent is woken early and finds nothing due.
        self.due: dict[str, float] = {}
        #: agents activated since the last :meth:`notify_at`
        self.touched: set[str] = set()
        #: the tick watermark, and agent -> event time of its next release or close
        self.ticks = TickClock(cfg.lateness)
        self.waiting: dict[str, float] = {}
        self.snapshots = 0
        if resume is not None and not isinstance(resume, dict):
            raise ValueError(OLD_LAYOUT)  # per-agent state of the older layout
        for name, blob in (resume or {}).items():
            self.agents[name] = AgentLogic(cfg, topics, clock, _restore(blob, cfg))
            self.blobs[name] = blob
            self.touched.add(name)

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        now = self.clock()
        items: list[Any] = []
        start, floor0 = 0, self.ticks.floor
        for i, item in enumerate(values):
            if item.__class__ is Tick:  # events before it, with the floor they came under
                if i > start:
                    self._events(values[start:i], now, items)
                start = i + 1
                self.ticks.tell(item)
        if start < len(values):
            self._events(values[start:] if start else values, now, items)
        if self.ticks.floor > floor0:
            self._release_due(now, items)
        _m.maybe_flush()
        return items, StatefulBatchLogic.RETAIN

    def _events(self, values: list[Any], now: float, items: list[Any]) -> None:
        # Applying events counts as input activity: a long activation working through a
        # backlog must not look like quiet input to the idle-watermark fallback.
        if now > InputClock.last:
            InputClock.last = now
        groups: dict[str, list[Any]] = {}
        for item in values:
            g = groups.get(item[0])
            if g is None:
                groups[item[0]] = [item]
            else:
                g.append(item)
        agents, blobs, floor = self.agents, self.blobs, self.ticks.floor
        last = _input_last(now)
        for name, evs in groups.items():
            a = agents.get(name)
            if a is None:
                a = agents[name] = AgentLogic(self.cfg, self.topics, self.clock, None)
            blobs.pop(name, None)
            items += a.on_batch(evs, now, floor, last)
        self.touched.update(groups)

    def _wake(self, schedule: dict[str, float], until: float, now: float,
              items: list[Any]) -> None:
        """Advance every agent whose time in ``schedule`` is at or before ``until``."""
        floor, last = self.ticks.floor, _input_last(now)
        for name, at in list(schedule.items()):
            if at <= until:
                self.blobs.pop(name, None)
                self.touched.add(name)
                items += self.agents[name].on_notify(now, floor, last)

    def _release_due(self, now: float, items: list[Any]) -> None:
        """Release what the raised tick watermark passed, for every agent with it due."""
        self._wake(self.waiting, self.ticks.floor, now, items)

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        now = self.clock()
        items: list[Any] = []
        self._wake(self.due, now, now, items)  # wall-clock wake-ups (idle fallback, snapshots)
        _m.maybe_flush()
        return items, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        now = self.clock()
        items: list[Any] = []
        for name, a in self.agents.items():
            self.blobs.pop(name, None)
            items += a.on_eof(now)
        self.touched.update(self.agents)
        _m.flush()
        return items, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        due, agents, waiting = self.due, self.agents, self.waiting
        last = _input_last(self.clock())
        for name in self.touched:
            a = agents[name]
            nxt = a.state.next_due() if a.state is not None else None
            at = a.notify_at(last, nxt)
            if at is None:
                due.pop(name, None)
            else:
                due[name] = at
            if nxt is None:
                waiting.pop(name, None)
            else:
                waiting[name] = nxt
        self.touched.clear()
        return datetime.fromtimestamp(min(due.values()), UTC) if due else None

    def snapshot(self) -> dict[str, bytes]:
        t0 = time.perf_counter()
        self.snapshots += 1  # at most once an epoch: the cold store counts epochs by it
        blobs = self.blobs
        size = 0
        for name, a in self.agents.items():
            blob = blobs.get(name)
            if blob is None:
                blob = blobs[name] = pickle.dumps(a.state, protocol=pickle.HIGHEST_PROTOCOL)
            size += len(blob)
        store = cold_store.active()
        if store is not None:  # what the pickles refer to is on disk before Bytewax commits
            store.flush(self.snapshots)
        m = flow_metrics()
        m.snapshot_seconds.observe(time.perf_counter() - t0)
        m.snapshot_bytes.inc(size)
        if store is not None:
            m.cold_bytes.set(store.bytes)
        return dict(blobs)
