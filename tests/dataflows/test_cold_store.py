"""The cold store: pieces of agent state written once, referenced from snapshots (no
services: a SQLite file in a temporary directory)."""

from __future__ import annotations

import pickle
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflows import cold_store
from dataflows.agent_state import AgentState
from dataflows.cold_store import ROUNDS, ColdStore, ColdStoreError
from dataflows.join_types import JoinConfig
from dataflows.reward_model import load_reward_model
from schemas.events import DecisionMade, FeedbackGiven


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return tmp_path / "cold-0.db"


@pytest.fixture()
def store(path: Path) -> Iterator[ColdStore]:
    s = ColdStore(path, grace=0.0)
    s.open()
    cold_store.activate(s)
    yield s
    cold_store.activate(None)
    s.close()


def _rows(path: Path) -> set[int]:
    with sqlite3.connect(path) as db:
        return {r for (r,) in db.execute("SELECT ref FROM pieces")}


def _reopen(old: ColdStore, path: Path) -> ColdStore:
    """The store as a restarted process opens it (what was not flushed is gone)."""
    old.close()
    new = ColdStore(path, grace=0.0)
    new.open()
    cold_store.activate(new)
    return new


def test_a_flush_commits_every_piece_put_before_it_and_only_those(store, path):
    refs = [store.put(bytes([i]) * 300_000) for i in range(8)]  # 2.4 MB: the writer starts
    store.flush(1)
    late = store.put(b"after the flush")
    again = _reopen(store, path)
    assert [again.get(r) for r in refs] == [bytes([i]) * 300_000 for i in range(8)]
    with pytest.raises(ColdStoreError, match=f"refers to piece {late}"):
        again.get(late)
    assert again.put(b"x") > max(refs)  # never a committed reference again
    again.close()


def test_a_released_piece_outlives_the_epochs_a_resume_could_need(store, path):
    ref = store.put(b"bucket")
    store.flush(1)
    store.release(ref)
    for epoch in range(2, 1 + ROUNDS):  # released during epoch 2: snapshot 2 is without it
        store.flush(epoch)
        store.collect()
        assert ref in _rows(path), epoch
    store.flush(1 + ROUNDS)  # epochs 2 and 3 committed: no resume point refers to it
    store.collect()  # (the writer thread's work, done here at once)
    assert ref in _rows(path)  # deleted in the open transaction ...
    store.flush(1 + ROUNDS)
    assert ref not in _rows(path)  # ... committed by the next flush
    assert store.stats() == {"pieces": 0, "bytes": 0, "waiting": 0}


def test_a_piece_released_before_any_flush_is_never_written(store, path):
    ref = store.put(b"changed again within the epoch")
    store.release(ref)
    store.flush(1)
    assert ref not in _rows(path)


def test_a_restart_keeps_what_the_restored_state_read_and_sweeps_the_rest(store, path):
    kept, orphan = store.put(b"in the resumed epoch"), store.put(b"of an epoch never resumed")
    released = store.put(b"released before the crash")
    store.flush(1)
    store.release(released)  # the crash loses this pending deletion
    again = _reopen(store, path)
    assert again.get(kept) == b"in the resumed epoch"  # Bytewax restores every shard first
    assert orphan in _rows(path) and released in _rows(path)  # until the first flush
    new = again.put(b"written after the restart")
    again.flush(1)
    assert _rows(path) == {kept, new}  # not orphan, nor released
    assert again.stats()["pieces"] == 2
    again.close()


def test_inline_bytes_without_a_store_and_a_clear_error_for_a_reference():
    assert cold_store.active() is None
    assert cold_store.freeze(b"abc") == b"abc" and cold_store.thaw(b"abc") == b"abc"
    cold_store.drop(b"abc")  # nothing to release
    with pytest.raises(ColdStoreError, match="no cold store is open"):
        cold_store.thaw(7)


def test_the_store_follows_the_recovery_directory(tmp_path):
    from dataflows.recovery_store import open_cold_store, recovery_dir

    assert open_cold_store(None, 0, grace=1.0) is None
    assert cold_store.active() is None
    store = open_cold_store(tmp_path / "rec", 1, grace=1.0)
    try:
        assert store is not None and cold_store.active() is store
        assert store.path == tmp_path / "rec" / "cold-1.db"
    finally:
        cold_store.activate(None)
        assert store is not None
        store.close()
    assert recovery_dir(["run.py", "mod:flow", "-r", "x", "-s", "1"]) == Path("x")


def _decision(i: int, ts: float) -> DecisionMade:
    d = DecisionMade(decision_id=uuid.UUID(int=i + 1), agent_id="a1", user_id=f"u{i % 7}",
                     action="x", propensity=0.5, explored=False, policy_version=0, bucket="*")
    return d.model_copy(update={"ts": d.ts.fromtimestamp(ts, d.ts.tzinfo)})


def test_an_agent_snapshots_references_and_restores_exactly_in_a_new_process(store, path):
    cfg = JoinConfig(load_reward_model(), idle=None, dedup_horizon=3600.0)
    st = AgentState("default", "a1", cfg)
    t0 = 1_700_000_000.0
    decisions = [_decision(i, t0 + i * 0.5) for i in range(2000)]
    for i, d in enumerate(decisions):
        st.ingest(d, ("t", 0, i), now=0.0)
    st.drain()
    blob = pickle.dumps(st)
    store.flush(1)
    # the bulk (2,000 open decisions, their ids) is in the cold store, not the snapshot
    assert str(decisions[0].decision_id).encode() not in blob and len(blob) < 20_000
    again = _reopen(store, path)
    restored: AgentState = pickle.loads(blob)  # noqa: S301 - our own snapshot
    restored.cfg = cfg
    assert list(restored.open) == list(st.open)
    assert len(restored.seen) == len(st.seen) == 2000
    assert restored.ingest(decisions[5], ("t", 0, 9999), now=0.0).duplicates == 1
    fb = FeedbackGiven(decision_id=decisions[-1].decision_id, agent_id="a1",
                       user_id=decisions[-1].user_id, kind="thumbs", value=1.0,
                       ts=decisions[-1].ts)
    out = restored.ingest(fb, ("t", 1, 0), now=0.0)  # at the watermark: applied at once
    assert [(r["decision_id"], r["closed_by"]) for r in out.rewards] == [
        (str(decisions[-1].decision_id), "feedback")]
    again.flush(1)  # the pieces the restored agent read survive the restart's sweep
    assert pickle.loads(pickle.dumps(restored)).counts == restored.counts  # noqa: S301
    again.close()


def test_a_snapshot_taken_without_a_store_moves_its_pieces_into_one_on_restore(path):
    from dataflows.dedup import ExpiringIds
    from dataflows.open_decisions import OpenDecisions

    ids, od = ExpiringIds(60.0), OpenDecisions(span=10.0)
    for i in range(100):
        ids.add(i, float(i))
        od.add(f"d{i}", ["u", float(i)], float(i))
    inline = pickle.dumps((ids, od))  # no store active: the pieces are bytes
    store = ColdStore(path, grace=0.0)
    store.open()
    cold_store.activate(store)
    try:
        ids2, od2 = pickle.loads(inline)  # noqa: S301 - our own snapshot
        store.flush(1)
        assert all(type(p) is int for ps in ids2._chunks.values() for p in ps)
        assert all(type(p) is int for p in od2._blobs.values())
        again = _reopen(store, path)
        ids3, od3 = pickle.loads(pickle.dumps((ids2, od2)))  # noqa: S301
        assert len(ids3) == 100 and list(od3) == [f"d{i}" for i in range(100)]
        again.close()
    finally:
        cold_store.activate(None)


def test_a_failed_write_stops_the_snapshot_with_the_store_named(store, path):
    store._db.execute("PRAGMA query_only=1")  # every write fails, as on a full disk
    store.put(b"piece")
    with pytest.raises(ColdStoreError, match="could not be committed"):
        store.flush(1)
    store.put(b"x" * cold_store.WRITE_AHEAD_BYTES)  # the writer takes this one
    for _ in range(100):
        if store._error is not None:
            break
        time.sleep(0.05)
    with pytest.raises(ColdStoreError, match="the writer failed"):
        store.flush(2)
