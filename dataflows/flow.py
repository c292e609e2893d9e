"""The rewardflow dataflow: parse -> key by agent -> join/project/learn -> Kafka + Redis.

``build_flow(source, kafka_sink, redis_sink, settings)`` wires plain functions and one
stateful step; tests run it with ``TestingSource``/``TestingSink`` under ``run_main`` and a
2-worker ``cluster_main``, production with ``KafkaSource`` and the sinks in
:mod:`dataflows.sinks` (see :mod:`dataflows.run`).
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from dataflows import metrics as _m
from dataflows.agent_state import AgentState, Emitted, JoinConfig, derived_str
from dataflows.metrics import POSITIONS, InputClock, flow_metrics
from dataflows.parse import parse_message
from dataflows.reward_model import RewardModel, load_reward_model
from schemas.events import DeadLetter, derived_id, dump_event
from schemas.settings import Settings

Clock = Callable[[], float]
log = logging.getLogger("rewardflow.dataflow")


def join_config(settings: Settings, model: RewardModel | None = None) -> JoinConfig:
    """The join configuration from settings (and the reward model they point at)."""
    return JoinConfig(
        reward_model=model or load_reward_model(settings.reward_model_path),
        window=settings.reward_window_seconds,
        lateness=settings.allowed_lateness_seconds,
        idle=settings.idle_watermark_seconds,
        dedup_horizon=settings.dedup_horizon_seconds,
        history_length=settings.history_length,
        half_life=settings.relationship_half_life_seconds,
        epsilon_floor=settings.epsilon_floor,
        epsilon_decay_count=settings.epsilon_decay_count,
        every_n_rewards=settings.policy_every_n_rewards,
    )


def snapshot_item(state: AgentState, policies: list[dict[str, Any]],
                  full: bool = True) -> dict[str, Any]:
    """The Redis document set of one agent after a batch (written by the Redis sink).

    ``full=False`` leaves out the windows and the history (they only change with a reward).
    """
    as_of = state.clock if state.clock is not None else 0.0
    docs = state.proj.docs(as_of, full=full)
    summary = {
        "agent_id": state.agent_id, "tenant": state.tenant, "seq": state.seq,
        "interactions": docs["interactions"], "mean_reward": docs["mean_reward"],
        "last_reward_at": docs["last_reward_at"],
        "watermark": datetime.fromtimestamp(state.wm, UTC).isoformat()
        if state.wm > -1e18 else None,
        "policy_version": state.learner.version,
        "counts": dict(state.counts), "open_decisions": len(state.open),
        "buffered": len(state.buffer),
    }
    versions = {p["version"]: orjson.dumps(p) for p in policies}
    return {
        "agent": f"{state.tenant}:{state.agent_id}", "tenant": state.tenant,
        "agent_id": state.agent_id, "seq": state.seq, "summary": summary,
        "windows": {w: docs[w] for w in ("1h", "24h", "7d")} if full else None,
        "history": docs["history"] if full else None,
        "relationships": {u: state.proj.relationship_doc(u)
                          for u in state.proj.take_touched_users()},
        "policy": versions[max(versions)] if versions else None,
        "policy_versions": versions,
    }


class AgentLogic(StatefulBatchLogic[Any, Any, bytes]):
    """Bytewax glue around :class:`AgentState`: wall clock in, sink items out.

    Each agent's snapshot goes to Redis at most every ``SNAPSHOT_EVERY`` seconds of wall
    time (coalescing everything in between: Redis writes are absolute, so only the newest
    state matters), with a trailing write scheduled through ``notify_at`` so the last state
    always lands. Kafka outputs (rewards, policies, DLQ) are never delayed.
    """

    SNAPSHOT_EVERY = 0.2

    def __init__(self, cfg: JoinConfig, topics: Any, clock: Clock,
                 state: AgentState | None) -> None:
        self.cfg = cfg
        self.topics = topics
        self.clock = clock
        self.state = state
        self.last_emit = 0.0
        self.pending = state is not None
        self.dirty_full = state is not None
        #: policy versions not yet written to Redis (the history keeps every version)
        self.unsent: list[dict[str, Any]] = []

    def _emit(self, out: Emitted, now: float, force: bool = False) -> list[Any]:
        """Kafka messages (rewards, policies, DLQ) and, when due, the Redis snapshot."""
        st = self.state
        if st is None:  # only called once an event created the state
            return []
        m = flow_metrics()
        items: list[Any] = []
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
                ev = {"event_id": derived_str("policy", st.tenant, st.agent_id, p["version"]),
                      "tenant": st.tenant,
                      "ts": p["updated_at"] or datetime.now(UTC).isoformat(),
                      "schema_version": 1, "type": "PolicyUpdated", "agent_id": st.agent_id,
                      "version": p["version"], "policy": p}
                items.append(KafkaSinkMessage(key, orjson.dumps(ev), topic))
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
        if out.late:
            count(m.late, out.late)
        if out.duplicates:
            count(m.duplicates, out.duplicates)
        if out.joined:
            count(m.joined, out.joined)
        self.dirty_full = self.dirty_full or bool(out.rewards or out.policies)
        self.pending = self.pending or bool(out)
        self.unsent.extend(out.policies)
        if force or (self.pending and now - self.last_emit >= self.SNAPSHOT_EVERY):
            items.append(snapshot_item(st, self.unsent, full=self.dirty_full))
            self.last_emit = now
            self.pending = self.dirty_full = False
            self.unsent = []
        return items

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        t0 = time.perf_counter()
        now = self.clock()
        # Applying events counts as input activity: a long activation working through a
        # backlog must not look like quiet input to the idle-watermark fallback.
        if values and now > InputClock.last:
            InputClock.last = now
        out = Emitted()
        for event, meta in values:
            if self.state is None:
                self.state = AgentState(event.tenant, event.agent_id, self.cfg)
            mark = (len(out.rewards), len(out.policies), len(out.dead), out.late,
                    out.duplicates, out.joined)
            try:
                self.state.ingest(event, meta, now, InputClock.last, out)
            except Exception as exc:  # a bug must not kill the flow: DLQ it with the reason
                # what the failed event had added so far is dropped, as before
                del out.rewards[mark[0]:], out.policies[mark[1]:], out.dead[mark[2]:]
                out.late, out.duplicates, out.joined = mark[3:]
                log.exception("step 'agent' failed on event %s", event.event_id)
                out.dead.append(DeadLetter(
                    event_id=derived_id("dlq", "agent", event.event_id), tenant=event.tenant,
                    reason=f"processing error in step 'agent': {type(exc).__name__}: {exc}",
                    step="agent", topic=meta[0], partition=meta[1], offset=meta[2],
                    payload=event.model_dump_json()[:2000]))
        self.pending = True
        _m.observe(flow_metrics().learner_seconds, time.perf_counter() - t0)
        return self._emit(out, now), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        if self.state is None:
            return [], StatefulBatchLogic.RETAIN
        now = self.clock()
        try:
            out = self.state.advance(now, InputClock.last)
        except Exception:  # keep the flow alive; the next event retries the release
            log.exception("step 'agent' failed advancing the watermark of %s",
                          self.state.agent_id)
            return [], StatefulBatchLogic.RETAIN
        return self._emit(out, now), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self.state is None:
            return [], StatefulBatchLogic.RETAIN
        out = self.state.drain()
        self.dirty_full = True
        return self._emit(out, self.clock(), force=True), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.state is None:
            return None
        at = self.state.notify_at(InputClock.last)
        if self.pending:
            trailing = self.last_emit + self.SNAPSHOT_EVERY
            at = trailing if at is None else min(at, trailing)
        return datetime.fromtimestamp(at, UTC) if at is not None else None

    def snapshot(self) -> bytes:
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def _restore(blob: bytes, cfg: JoinConfig) -> AgentState | None:
    state: AgentState | None = pickle.loads(blob)  # noqa: S301 - our own recovery snapshot
    if state is not None:
        state.cfg = cfg
    return state


def _parse_batch(msgs: list[Any], dlq_topic: str, pkeys: dict[tuple[Any, Any], str]
                 ) -> list[Any]:
    """Parse a batch: ``(partition key, (agent key, event, meta))`` for valid events, the
    DLQ ``KafkaSinkMessage`` for the rest; counted once per batch."""
    m = flow_metrics()
    count = _m.count
    events_in = m.events_in_for
    out: list[Any] = []
    append = out.append
    for msg in msgs:
        kind, a, b = parse_message(msg)
        if kind == "ok":
            event, meta = b
            topic, part, off = meta
            count(events_in(topic or "", event.type))
            if part is not None and off is not None:
                POSITIONS[(topic, part)] = off + 1
            pk = pkeys.get((topic, part))
            if pk is None:
                pk = pkeys[(topic, part)] = f"{topic}:{part}"
            append((pk, (a, event, meta)))
        else:
            count(m.dlq_for(a))
            count(events_in(b.topic or "", "invalid"))
            append(KafkaSinkMessage(None, dump_event(b), dlq_topic))
    if msgs:  # the runtime may call with an empty batch: that is no input
        InputClock.last = time.time()
    _m.flush()
    return out


class _PartitionClock(StatefulBatchLogic[Any, Any, float | None]):
    """Stamp each event with the newest event time seen before it in its own partition;
    emits ``(agent key, (event, (topic, partition, offset, newest before it)))``.

    The agent step counts an event as late when it is older than that clock minus the
    allowed lateness: a rule that depends only on the partition's order, so it gives the
    same answer with any number of workers and after recovery. The state (and its
    snapshot) is the newest event time, as under ``stateful_map``.
    """

    def __init__(self, newest: float | None) -> None:
        self.newest = newest

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        newest = self.newest
        out = []
        for key, event, meta in values:
            ts = event.ts.timestamp()
            out.append((key, (event, (meta[0], meta[1], meta[2], newest))))
            newest = ts if newest is None or ts > newest else newest
        self.newest = newest
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> float | None:
        return self.newest


# Nested like ``op.stateful_map`` so the state keeps its recovery step id
# ``<flow>.partition_clock.stateful_flat_map.stateful.stateful_batch``.
@operator
def _clock(step_id: str, up: Stream[Any]) -> Stream[Any]:
    return _clock_1("stateful_flat_map", up)


@operator
def _clock_1(step_id: str, up: Stream[Any]) -> Stream[Any]:
    return _clock_2("stateful", up)


@operator
def _clock_2(step_id: str, up: Stream[Any]) -> Stream[Any]:
    return op.stateful_batch("stateful_batch", up, _PartitionClock)  # type: ignore[arg-type]


def _values(kvs: list[tuple[str, Any]]) -> list[Any]:
    return [kv[1] for kv in kvs]


def _agent_out(kvs: list[tuple[str, Any]]) -> list[Any]:
    _m.flush()
    return [kv[1] for kv in kvs]


def _is_kafka(item: Any) -> bool:
    return item.__class__ is KafkaSinkMessage


def build_flow(
    source: Source[Any],
    kafka_sink: Sink[Any],
    redis_sink: Sink[Any],
    settings: Settings,
    *,
    reward_model: RewardModel | None = None,
    clock: Clock = time.time,
    flow_id: str = "rewardflow",
) -> Dataflow:
    """Wire the dataflow. ``kafka_sink`` gets ``KafkaSinkMessage``s (DLQ, rewards, policies);
    ``redis_sink`` gets per-agent snapshots (:func:`snapshot_item`)."""
    cfg = join_config(settings, reward_model)
    topics = settings.topics

    def builder(resume: bytes | None) -> AgentLogic:
        return AgentLogic(cfg, topics, clock, _restore(resume, cfg) if resume else None)

    flow = Dataflow(flow_id)
    msgs = op.input("kafka_in", flow, source)
    pkeys: dict[tuple[Any, Any], str] = {}
    parsed = op.flat_map_batch("parse", msgs, lambda ms: _parse_batch(ms, topics.dlq, pkeys))
    split = op.branch("valid", parsed, lambda p: p.__class__ is tuple)
    clocked = _clock("partition_clock", split.trues)
    keyed = op.flat_map_batch("key_by_agent", clocked, _values)
    results = op.stateful_batch("agent", keyed, builder)
    items = op.flat_map_batch("unkey", results, _agent_out)
    out = op.branch("route", items, _is_kafka)
    op.output("kafka_out", op.merge("kafka_merge", split.falses, out.trues), kafka_sink)
    op.output("redis_out", out.falses, redis_sink)
    return flow
