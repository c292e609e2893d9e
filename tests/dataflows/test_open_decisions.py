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
