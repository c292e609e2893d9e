"""OpenDecisions against the dict + heap of deadlines it replaced (property test)."""

from __future__ import annotations

import heapq
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.open_decisions import OpenDecisions

# (kind, value): add at ts + step, close the n-th open decision, join a signal, snapshot
OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from([0.0, 0.0, 0.5, 7.0, 40.0, 300.0])),
    st.tuples(st.just("pop"), st.integers(0, 50)),
    st.tuples(st.just("touch"), st.integers(0, 50)),
    st.tuples(st.just("pickle"), st.just(0)),
    st.tuples(st.just("seal"), st.sampled_from([0.0, 5.0, 40.0])),
), max_size=200)


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(0, 10_000))
def test_behaves_like_a_dict_with_a_heap_of_deadlines(ops, seed):
    od = OpenDecisions(span=37.5)
    ref: dict[str, list] = {}
    heap: list[tuple[float, str]] = []
    ts, n = 1_000.0, 0
    for kind, value in ops:
        if kind == "add":
            ts += value
            n += 1
            did = f"{(n * 7919 + seed) % 10_007:05d}-{n}"  # ids not in time order
            od.add(did, [did, ts], ts)
            ref[did] = [did, ts]
            heapq.heappush(heap, (ts, did))
        elif kind in ("pop", "touch") and ref:
            did = list(ref)[value % len(ref)]
            if kind == "pop":
                assert od.pop(did) == ref.pop(did)
            else:
                od.touch(did).append("signal")
                ref[did].append("signal")
        elif kind == "pickle":
            od = pickle.loads(pickle.dumps(od))
        elif kind == "seal":  # pickles ended buckets ahead of the snapshot: no visible change
            od.seal(ts - value)
        while heap and heap[0][1] not in ref:  # the heap's lazy pruning
            heapq.heappop(heap)
        first = od.first()
        if not heap:
            assert first is None
        else:
            assert first is not None and (first[2], first[0]) == heap[0]
            assert first[1] == ref[first[0]]
        assert len(od) == len(ref) and sorted(od) == sorted(ref)
        assert all(od[d] == r for d, r in ref.items())


def test_a_snapshot_pickles_only_the_buckets_that_changed():
    od = OpenDecisions(span=10.0)
    for i in range(100):
        od.add(f"d{i:03d}", ["u", float(i)], float(i))
    pickle.dumps(od)  # every bucket pickled once
    cached = dict(od._blobs)
    od.add("d100", ["u", 100.0], 100.0)  # the newest bucket
    od.pop("d000")  # the oldest
    od.touch("d055").append("signal")  # one in between
    state = od.__getstate__()["buckets"]
    same = [b for b, blob in state.items() if cached.get(b) is blob]
    assert sorted(set(state) - set(same)) == [0, 5, 10]
    assert len(same) == 8


def test_seal_pickles_ended_buckets_ahead_and_a_later_change_pickles_again():
    od = OpenDecisions(span=10.0)
    for i in range(30):
        od.add(f"d{i:02d}", ["u", float(i)], float(i))  # buckets 0, 1, 2
    od.seal(before=20.0)  # buckets 0 and 1 end by 20: pickled now, 2 waits
    assert sorted(od._blobs) == [0, 1]
    early = od._blobs[1]
    od.touch("d15").append("signal")  # a late join changes bucket 1
    assert 1 not in od._blobs
    od.seal(before=20.0)
    assert od._blobs[1] is not early
    assert pickle.loads(od._blobs[1])["d15"][0] == ["u", 15.0, "signal"]
    state = od.__getstate__()["buckets"]  # the snapshot pickles only bucket 2
    assert state[0] is od._blobs[0] and sorted(state) == [0, 1, 2]
    copy = pickle.loads(pickle.dumps(od))
    assert copy["d15"] == ["u", 15.0, "signal"] and len(copy) == 30


def test_an_agent_snapshotted_before_open_decisions_restores_and_closes_in_order():
    """A recovery snapshot of the older layout (a dict of open decisions, a heap of
    deadlines, every decision per user) restores into OpenDecisions and newest-per-user."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from dataflows.agent_state import AgentState
    from dataflows.join_types import JoinConfig
    from dataflows.reward_model import load_reward_model
    from schemas.events import DecisionMade, SignalObserved

    cfg = JoinConfig(load_reward_model(), idle=None, window=60.0)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    st = AgentState("default", "a1", cfg)
    ds = [DecisionMade(decision_id=uuid.UUID(int=i + 1), agent_id="a1", user_id="u",
                       action="x", propensity=0.5, explored=False, policy_version=0,
                       bucket="*", ts=t0 + timedelta(seconds=i)) for i in range(3)]
    for d in ds:
        st.ingest(d, ("t", 0, 0), now=0.0)
    st.advance(0.0, floor=(t0 + timedelta(seconds=5)).timestamp())
    state = st.__getstate__()
    records = {did: st.open[did] for did in st.open}
    state["open"] = dict(reversed(list(records.items())))  # any order
    state["deadlines"] = sorted((r[3] + 60.0, did) for did, r in records.items())
    state["by_user"] = {"u": [(r[3], did) for did, r in records.items()]}
    old = AgentState.__new__(AgentState)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    old.cfg = cfg
    assert sorted(old.open) == sorted(records) and old.by_user["u"][1] == str(ds[2].decision_id)
    sig = SignalObserved(agent_id="a1", user_id="u", kind="sentiment", value=0.5,
                         ts=t0 + timedelta(seconds=6))  # credited to the newest decision
    old.ingest(sig, ("t", 0, 1), now=0.0)
    out = old.advance(0.0, floor=(t0 + timedelta(seconds=100)).timestamp())
    assert [r["decision_id"] for r in out.rewards] == [str(d.decision_id) for d in ds]
    assert [r["n_signals"] for r in out.rewards] == [0, 0, 1]
