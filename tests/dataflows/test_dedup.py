"""ExpiringIds: the dedup memory of an agent (pure, no services)."""

from __future__ import annotations

import math
import pickle
import random
import uuid

import pytest

from dataflows.agent_state import AgentState
from dataflows.dedup import ExpiringIds
from dataflows.join_types import JoinConfig
from dataflows.reward_model import load_reward_model
from schemas.events import DecisionMade, FeedbackGiven


def test_expiry_keeps_an_id_for_the_horizon_and_at_most_one_span_longer() -> None:
    rng = random.Random(3)
    span, horizon = 10.0, 100.0
    ids = ExpiringIds(span)
    added: dict[int, float] = {}
    for i in range(5000):
        ts = i * 0.1 + rng.uniform(-2.0, 0.0)
        ids.add(i, ts)
        added[i] = ts
        if i % 37 == 0:
            before = i * 0.1 - horizon
            ids.expire(before)
            for key, t in added.items():
                if t >= before:
                    assert key in ids, (key, t, before)  # never forgotten within the horizon
                elif t < before - span:
                    assert key not in ids, (key, t, before)  # nor kept beyond a span more
    assert len(ids) == sum(1 for k in added if k in ids)


def test_each_snapshot_pickles_only_the_ids_added_since_the_last() -> None:
    ids = ExpiringIds(60.0)
    for i in range(300):
        ids.add(uuid.UUID(int=i + 1).int, float(i))  # buckets [0,60) .. [240,300)
    first = ids.__getstate__()["chunks"]
    assert {b: len(p) for b, p in first.items()} == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    ids.add(uuid.UUID(int=1000).int, 299.5)
    second = ids.__getstate__()["chunks"]
    assert second[0][0] is first[0][0]  # kept, not pickled again
    assert pickle.loads(second[4][1]) == [uuid.UUID(int=1000).int]  # only the new id
    ids.seal(before=125.0)  # [0,60) and [60,120) are final: one chunk each already
    assert ids.__getstate__()["chunks"][1][0] is first[1][0]
    ids.seal(before=300.0)  # [240,300) is final: its two chunks become one
    merged = ids.__getstate__()["chunks"][4]
    assert len(merged) == 1 and len(pickle.loads(merged[0])) == 61
    copy = pickle.loads(pickle.dumps(ids))
    assert len(copy) == 301
    assert all(uuid.UUID(int=i + 1).int in copy for i in range(300))


def test_an_id_filed_late_into_a_sealed_bucket_survives_the_snapshot() -> None:
    ids = ExpiringIds(60.0)
    ids.add("early", 10.0)
    ids.seal(before=120.0)
    ids.add("control event applied late", 20.0)  # e.g. a rollback behind the watermark
    assert len(ids.__getstate__()["chunks"][0]) == 2  # a chunk of its own
    copy = pickle.loads(pickle.dumps(ids))
    assert "control event applied late" in copy and "early" in copy
    ids.seal(before=120.0)
    assert len(ids.__getstate__()["chunks"][0]) == 1  # merged again


def test_a_snapshot_of_the_layout_before_chunks_restores() -> None:
    old = {"span": 60.0, "buckets": {0: pickle.dumps(["a", "b"]), 1: ["c"]}}
    ids = ExpiringIds.__new__(ExpiringIds)
    ids.__setstate__(old)
    assert sorted(k for k in "abcd" if k in ids) == ["a", "b", "c"]
    ids.add("d", 70.0)
    copy = pickle.loads(pickle.dumps(ids))
    assert len(copy) == 4 and "d" in copy


def test_span_must_be_positive() -> None:
    with pytest.raises(ValueError, match="span must be > 0"):
        ExpiringIds(0.0)


def _decision(ts_offset: float = 0.0) -> DecisionMade:
    d = DecisionMade(decision_id=uuid.uuid4(), agent_id="a1", user_id="u", action="x",
                     propensity=0.5, explored=False, policy_version=0, bucket="*")
    return d.model_copy(update={"ts": d.ts.fromtimestamp(d.ts.timestamp() + ts_offset,
                                                         d.ts.tzinfo)})


def test_an_agent_restored_from_its_snapshot_still_counts_a_duplicate_once() -> None:
    cfg = JoinConfig(load_reward_model(), idle=None, dedup_horizon=3600.0)
    st = AgentState("default", "a1", cfg)
    events = [_decision(i) for i in range(50)]
    for ev in events:
        st.ingest(ev, ("t", 0, 0), now=0.0)
    st.drain()
    restored = pickle.loads(pickle.dumps(st))
    restored.cfg = cfg
    out = restored.ingest(events[10], ("t", 0, 1), now=0.0)
    assert out.duplicates == 1
    assert restored.counts["duplicates"] == 1


def test_a_snapshot_of_the_older_layout_restores() -> None:
    cfg = JoinConfig(load_reward_model(), idle=None)
    st = AgentState("default", "a1", cfg)
    ev = _decision()
    st.ingest(ev, ("t", 0, 0), now=0.0)
    st.drain()
    state = st.__getstate__()
    state["seen"] = {ev.event_id.int: ev.ts.timestamp()}  # as snapshotted before
    state["closed"] = {}
    old = AgentState.__new__(AgentState)
    old.__setstate__(state)
    old.cfg = cfg
    assert old.ingest(ev, ("t", 0, 1), now=0.0).duplicates == 1
    assert isinstance(old.seen, ExpiringIds) and isinstance(old.closed, ExpiringIds)
    fresh = _decision(1.0)
    assert old.ingest(fresh, ("t", 0, 2), now=0.0).duplicates == 0  # new ids file as before
    assert fresh.event_id.int in old.seen


def test_state_growth_bench_runs_and_keeps_every_id_within_the_horizon(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bench import state_growth

    st, _ = state_growth.build(hours=0.05, rate=2.0, progress=False)
    assert len(st.seen) == st.counts["in"] - st.counts["duplicates"] - st.counts["late"] > 300
    assert state_growth.main(["--hours", "0.05", "--rate", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for row in ("snapshot (agent touched this epoch)", "restore", "prune (every 512 events)"):
        assert row in out


def test_an_agent_merges_the_chunks_of_buckets_its_watermark_passed_as_it_goes() -> None:
    cfg = JoinConfig(load_reward_model(), idle=None, dedup_horizon=3200.0)  # 100 s buckets
    st = AgentState("default", "a1", cfg)
    t0 = 1_700_000_000.0
    for i in range(1200):  # 20 minutes, a decision and its feedback a second
        d = _decision()
        d = d.model_copy(update={"ts": d.ts.fromtimestamp(t0 + i, d.ts.tzinfo)})
        st.ingest(d, ("t", 0, i), now=0.0)
        st.ingest(FeedbackGiven(decision_id=d.decision_id, agent_id="a1", user_id="u",
                                kind="thumbs", value=1.0, ts=d.ts), ("s", 0, i), now=0.0)
    span = st.seen.span
    last = math.floor((st.wm - span) / span)  # every bucket that ended a span ago or more
    chunks = st.seen._chunks
    assert all(len(chunks[b]) == 1 for b in chunks if b < last)
    assert sum(len(pickle.loads(p)) for b in chunks if b < last for p in chunks[b]) \
        == sum(len(st.seen._buckets[b]) for b in chunks if b < last) > 900
    copy = pickle.loads(pickle.dumps(st))
    assert len(copy.seen) == len(st.seen) == 2400
