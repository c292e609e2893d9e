"""Watermark ticks: feedback is released by the input's partition clocks, never early."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from dataflows.agent_state import AgentState, JoinConfig
from dataflows.agent_step import ShardLogic
from dataflows.reward_model import load_reward_model
from dataflows.source import Parsed, TickConfig, kafka_partition
from dataflows.ticks import Tick, TickClock
from schemas.events import AgentSpec, AgentUpserted, DecisionMade, FeedbackGiven

T0 = datetime(2026, 11, 1, tzinfo=UTC)
D0, D1, S0, S1 = ("t.decisions", 0), ("t.decisions", 1), ("t.signals", 0), ("t.signals", 1)
EVERY = frozenset({D0, D1, S0, S1})
TOPICS = SimpleNamespace(rewards="t.rewards", policies="t.policies", dlq="t.dlq")


def _cfg() -> JoinConfig:
    # no wall-clock idle fallback: only the agent's own events and the ticks move watermarks
    return JoinConfig(load_reward_model(), lateness=0.5, idle=None)


def _pair(agent: str, at: float) -> tuple[DecisionMade, FeedbackGiven]:
    d = DecisionMade(decision_id=uuid.uuid4(), agent_id=agent, user_id="u", action="x",
                     propensity=0.5, explored=False, policy_version=0, bucket="*",
                     ts=T0 + timedelta(seconds=at))
    f = FeedbackGiven(decision_id=d.decision_id, agent_id=agent, user_id="u", kind="thumbs",
                      value=1.0, ts=T0 + timedelta(seconds=at + 0.1))
    return d, f


def _item(ev: Any, pk: tuple[str, int], offset: int, newest: float | None) -> Parsed:
    return Parsed((f"default:{ev.agent_id}", ev, (pk[0], pk[1], offset, newest),
                   ev.model_dump_json().encode()))


def _tick(pk: tuple[str, int], at: float) -> Tick:
    return Tick((pk, (T0 + timedelta(seconds=at)).timestamp(), EVERY))


def _rewards(items: Any) -> list[dict[str, Any]]:
    import orjson
    return [orjson.loads(m.value) for m in items
            if getattr(m, "topic", None) == "t.rewards"]


def test_ticks_release_feedback_once_every_data_partition_has_passed_it() -> None:
    shard = ShardLogic(_cfg(), TOPICS, lambda: 0.0, None)
    d, f = _pair("a", 10.0)
    out, _ = shard.on_batch([_item(d, D0, 0, None), _item(f, S0, 0, None)])
    assert _rewards(out) == []  # the agent's own watermark is below its feedback
    shard.notify_at()
    # three partitions are past the feedback, one has not told its clock: no bound yet
    out, _ = shard.on_batch([_tick(D0, 20), _tick(D1, 20), _tick(S0, 20)])
    assert _rewards(out) == [] and shard.ticks.floor == -math.inf
    shard.notify_at()
    # the last one is behind it (plus the allowed lateness): still no release
    out, _ = shard.on_batch([_tick(S1, 10.5)])
    assert _rewards(out) == []
    shard.notify_at()
    out, _ = shard.on_batch([_tick(S1, 10.7)])
    rewards = _rewards(out)
    assert [(r["decision_id"], r["closed_by"]) for r in rewards] == [
        (str(d.decision_id), "feedback")]


def test_a_tick_after_an_event_does_not_make_that_event_late() -> None:
    """Items are applied in stream order: an event before a tick sees the older bound."""
    shard = ShardLogic(_cfg(), TOPICS, lambda: 0.0, None)
    for pk in (D1, S0, S1):
        shard.on_batch([_tick(pk, 50)])
    d, f = _pair("a", 10.0)
    # D0 read its decision (ts 10), then ticked its clock (30): the decision comes first
    out, _ = shard.on_batch([_item(d, D0, 0, None), _tick(D0, 30), _item(f, S0, 1, 10.0)])
    st = shard.agents["default:a"].state
    assert st is not None and st.counts["late"] == 1  # the feedback: behind the bound (29.5)
    assert st.counts["decisions"] == 1 and st.open  # the decision was not late


def test_control_events_behind_the_watermark_apply_at_it() -> None:
    st = AgentState("default", "a", _cfg())
    d, f = _pair("a", 10.0)
    st.ingest(d, ("t.decisions", 0, 0, None), now=0.0)
    st.ingest(f, ("t.signals", 0, 0, None), now=0.0)
    st.advance(0.0, floor=(T0 + timedelta(seconds=30)).timestamp())
    assert st.counts["rewards"] == 1 and st.counts["late"] == 0
    spec = AgentSpec(persona={"name": "A"}, actions=["x", "y"], template="coach")
    up = AgentUpserted(agent_id="a", spec=spec, ts=T0)  # far behind the watermark
    st.ingest(up, ("t.agents", 0, 0, None), now=0.0)
    st.drain()
    assert st.counts["late"] == 0 and st.counts["agents"] == 1 and st.template == "coach"
    st.ingest(up, ("t.agents", 0, 1, None), now=0.0)  # the same event again: a duplicate
    assert st.counts["duplicates"] == 1 and st.counts["agents"] == 1
    # beyond the dedup horizon a replayed control event can no longer be recognised: late
    old = AgentUpserted(agent_id="a", spec=spec, ts=T0 - timedelta(days=2))
    st.ingest(old, ("t.agents", 0, 2, None), now=0.0)
    assert st.counts["late"] == 1 and st.counts["agents"] == 1


def test_tick_clock_waits_for_every_partition_and_only_moves_forward() -> None:
    c = TickClock(lateness=0.25)
    assert c.tell(_tick(D0, 5)) == -math.inf
    for pk in (D1, S0, S1):
        c.tell(_tick(pk, 7))
    assert c.complete and c.floor == _tick(D0, 4.75)[1]
    c.tell(_tick(D0, 3))  # an older clock never lowers the bound
    assert c.floor == _tick(D0, 4.75)[1]


def test_tick_config_finds_the_data_partitions() -> None:
    cfg = TickConfig(0.1, 0.25, ["t.agents"])
    parts = ["0-t.agents", "1-t.agents", "0-t.decisions", "1-t.signals"]
    assert cfg.data_partitions(parts) == {("t.decisions", 0), ("t.signals", 1)}
    assert cfg.data_partitions(["iterable"]) is None  # not Kafka partitions: no ticks
    assert TickConfig(0, 0.25, []).data_partitions(parts) is None  # ticks off
    assert kafka_partition("12-a-b") == ("a-b", 12)


def test_idle_fallback_waits_while_an_input_partition_is_starting() -> None:
    """A feedback read before its decision's partition answered a fetch is not released alone
    (it would be dead-lettered as an unknown decision): the cause of a flaky test."""
    from dataflows.metrics import InputClock

    saved = InputClock.last
    try:
        _starting_case()
    finally:
        InputClock.last = saved


def _starting_case() -> None:
    from dataflows.metrics import InputClock

    now = [1000.0]
    cfg = JoinConfig(load_reward_model(), lateness=0.25, idle=0.25)
    shard = ShardLogic(cfg, TOPICS, lambda: now[0], None)
    d, f = _pair("a", 0.0)
    starting = object()
    InputClock.starting.add(starting)
    try:
        InputClock.last = now[0]
        out, _ = shard.on_batch([_item(f, S0, 0, None)])
        shard.notify_at()
        for _ in range(3):  # quiet for long enough, but the decisions' partition has not begun
            now[0] += 5.0
            shard.on_notify()
            shard.notify_at()
        st = shard.agents["default:a"].state
        assert st is not None and st.counts["dlq"] == 0 and len(st.buffer) == 1
    finally:
        InputClock.starting.discard(starting)
    out, _ = shard.on_batch([_item(d, D0, 0, None)])  # the decision arrives: both apply
    shard.notify_at()
    now[0] += 5.0
    InputClock.last = now[0] - 5.0
    out, _ = shard.on_notify()
    assert [r["closed_by"] for r in _rewards(out)] == ["feedback"]
    assert st.counts["dlq"] == 0


def test_a_stalled_flow_does_not_pass_for_quiet_input() -> None:
    """Nothing is polled while the flow itself stalls; the idle fallback must not count that
    time, or what was produced meanwhile arrives behind the watermark and is dropped late."""
    from dataflows.metrics import InputClock

    now = [1000.0]
    cfg = JoinConfig(load_reward_model(), lateness=0.25, idle=0.25)
    shard = ShardLogic(cfg, TOPICS, lambda: now[0], None)
    d, _ = _pair("a", 0.0)
    f = FeedbackGiven(decision_id=d.decision_id, agent_id="a", user_id="u", kind="thumbs",
                      value=1.0, ts=d.ts + timedelta(seconds=3.0))  # produced during the stall
    saved = (InputClock.last, InputClock.polled)
    try:
        InputClock.last = InputClock.polled = now[0]
        shard.on_batch([_item(d, D0, 0, None)])  # buffered: no signal seen yet
        shard.notify_at()
        now[0] += 5.0  # the flow stalls for 5 s: no poll, no input
        shard.on_notify()
        shard.notify_at()
        st = shard.agents["default:a"].state
        assert st is not None
        InputClock.last = InputClock.polled = now[0]  # the first poll after it reads f
        shard.on_batch([_item(f, S0, 0, None)])
        shard.notify_at()
        assert st.counts["late"] == 0
        now[0] += 1.0  # now the input is polled and quiet: the fallback releases both
        InputClock.polled = now[0]
        out, _ = shard.on_notify()
        assert [r["closed_by"] for r in _rewards(out)] == ["feedback"]
    finally:
        InputClock.last, InputClock.polled = saved
