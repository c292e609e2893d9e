"""Recovery and scale-out on the real broker and Redis: a SIGKILLed flow, a restarted Redis
(AOF), a SIGKILLed and restarted broker and a 2-worker flow all end with exactly the
projections of an independent computation, nothing lost and nothing counted twice."""

from __future__ import annotations

import pickle
import re
import sqlite3
from pathlib import Path

import pytest

from dataflows.reward_model import load_reward_model
from stack.broker import EmbeddedBroker, create_topics
from stack.object_store import ObjectStore
from stack.ports import free_port, wait_for_port
from stack.processes import kill, start_dataflow, stop
from tests.dataflows.kafka_io import consume_all, produce, wait_until
from tests.dataflows.mixed_stream import mixed_stream
from tests.dataflows.projection_io import GARBAGE_PREFIX, read_agents, wait_consumed
from tests.dataflows.reference import reference

pytestmark = pytest.mark.integration
WINDOW, LATENESS = 600.0, 2.0


def _settings(settings):
    return settings.model_copy(update={
        "dataflow_metrics_port": free_port(), "reward_window_seconds": WINDOW,
        "allowed_lateness_seconds": LATENESS, "idle_watermark_seconds": 86400.0,
        "snapshot_seconds": 1, "dataflow_batch_size": 200})


def _start(s, tmp_path, name, workers=1):
    proc = start_dataflow(s, workers=workers, log_path=tmp_path / f"{name}.log")
    wait_for_port("127.0.0.1", s.dataflow_metrics_port, 30)
    return proc


def _ingested(r, s, agents):
    snap = read_agents(r, s, agents)
    return sum(d["summary"]["counts"]["in"] for d in snap.values()) if snap else 0


def _check_against_reference(snap, ref, s):
    counts = {k: sum(d["summary"]["counts"][k] for d in snap.values())
              for k in ("duplicates", "late", "dlq", "decisions", "joined")}
    rc = ref["counts"]
    n_agents = len(ref["agents"])
    assert counts["duplicates"] == rc["duplicates"]
    assert counts["late"] == rc["late"]
    assert counts["decisions"] == rc["decisions"] - n_agents
    assert counts["joined"] == rc["joined"] - n_agents
    for a, want in ref["agents"].items():
        got = snap[a]
        assert got["summary"]["interactions"] == want["interactions"], a
        assert got["summary"]["mean_reward"] == pytest.approx(want["mean_reward"], abs=1e-6)
        rows = {int(k): v[:3] for k, v in got["7d"]["buckets"].items()}
        assert rows == {k: v[:3] for k, v in want["windows"]["7d"].items()}
        assert [x["decision_id"] for x in got["hist"]["recent"]] == want["recent"]
    rewards = {ev["event_id"]: ev for ev in consume_all(s.kafka_bootstrap_servers,
                                                         s.topics.rewards, timeout=10)}
    assert {ev["decision_id"] for ev in rewards.values()} == set(ref["rewards"])
    assert len(rewards) == len(ref["rewards"])  # replayed output carries the same ids


@pytest.fixture()
def stream_and_ref(settings):
    s = _settings(settings)
    stream = mixed_stream(s.topics, n_decisions=6000, agents=12, seed=9, window=WINDOW)
    ref = reference(stream, load_reward_model(), WINDOW, LATENESS, s.history_length,
                    s.relationship_half_life_seconds)
    garbage = sum(1 for _, raw in stream if raw.startswith(GARBAGE_PREFIX))
    return s, stream, ref, garbage


def _cold_pieces(s) -> int:
    """Committed pieces in the flow's cold store (0 before its first epoch end)."""
    path = Path(s.recovery_dir) / "cold-0.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return db.execute("SELECT count(*) FROM pieces").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not created yet
            return 0


def _resumable(s) -> bool:
    """Whether Bytewax has committed an epoch whose input positions are past offset 0 (a
    restart would resume there). The cold store commits each epoch's pieces before Bytewax
    commits the epoch, so pieces on disk alone do not mean that."""
    path = Path(s.recovery_dir) / "part-0.sqlite3"
    if not path.exists():
        return False
    try:
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT ser_change FROM snaps WHERE step_id = 'rewardflow.kafka_in' AND "
                "snap_epoch <= (SELECT max(commit_epoch) FROM commits)").fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or busy: ask again
        return False
    return any(pickle.loads(blob)["inner"] > 0 for (blob,) in rows if blob)  # noqa: S301


@pytest.mark.parametrize("core", ["python", "native"])
def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
        core, stream_and_ref, redis_client, tmp_path):
    s, stream, ref, garbage = stream_and_ref
    s = s.model_copy(update={"agent_core": core})  # RF_AGENT_CORE of the flow process
    agents = sorted(ref["agents"])
    half = len(stream) // 2
    produce(s.kafka_bootstrap_servers, stream[:half])
    proc = _start(s, tmp_path, "flow1")
    # an epoch end has snapshotted the agents (their bulk in the cold store) and Bytewax
    # has committed it before the kill
    wait_until(lambda: _ingested(redis_client, s, agents) > half // 3 and _cold_pieces(s) > 0
               and _resumable(s), timeout=60, interval=0.05)
    kill(proc)  # SIGKILL: no chance to flush or snapshot
    produce(s.kafka_bootstrap_servers, stream[half:])
    assert _ingested(redis_client, s, agents) < len(stream) - garbage
    proc = _start(s, tmp_path, "flow2")
    try:
        snap = wait_consumed(redis_client, s, agents, len(stream), garbage)
        _check_against_reference(snap, ref, s)
    finally:
        stop(proc)
    # the restart resumed from those snapshots (not from the start of the topics), reading
    # their pieces back from the cold store
    restarted = (tmp_path / "flow2.log").read_text()
    pieces = re.search(r"cold store \S+cold-0\.db: (\d+) pieces", restarted)
    assert pieces is not None and int(pieces.group(1)) > 0, restarted[-2000:]
    resumed = [int(n) for n in re.findall(r"first offset (\d+)", restarted)]
    assert resumed and max(resumed) > 0, restarted[-2000:]


def test_redis_restart_mid_stream_loses_nothing(stream_and_ref, redis_client, redis_server,
                                                tmp_path):
    s, stream, ref, garbage = stream_and_ref
    agents = sorted(ref["agents"])
    produce(s.kafka_bootstrap_servers, stream)
    proc = _start(s, tmp_path, "flow")
    try:
        wait_until(lambda: _ingested(redis_client, s, agents) > len(stream) // 3, timeout=60,
                   interval=0.05)
        redis_server.restart()  # SIGTERM + start on the same port; AOF keeps what was written
        snap = wait_consumed(redis_client, s, agents, len(stream), garbage)
        _check_against_reference(snap, ref, s)
    finally:
        stop(proc)


@pytest.fixture()
def durable_broker(tmp_path):
    """A broker of its own whose log lives in an object store, so it survives a restart."""
    store = ObjectStore(log_path=tmp_path / "s3.log").start()
    b = EmbeddedBroker(storage=store.storage_url, env=store.client_env(),
                       log_path=tmp_path / "broker.log").start()
    yield b
    b.stop()
    store.stop()


def test_broker_sigkill_and_restart_mid_stream_loses_nothing_and_counts_nothing_twice(
        stream_and_ref, durable_broker, redis_client, tmp_path):
    s, stream, ref, garbage = stream_and_ref
    s = s.model_copy(update={"kafka_bootstrap_servers": durable_broker.bootstrap})
    create_topics(s.kafka_bootstrap_servers, s.topics.all, s.topic_partitions)
    agents = sorted(ref["agents"])
    half = len(stream) // 2
    produce(s.kafka_bootstrap_servers, stream[:half])
    proc = _start(s, tmp_path, "flow")
    try:
        wait_until(lambda: _ingested(redis_client, s, agents) > half // 3, timeout=60,
                   interval=0.05)
        durable_broker.restart(hard=True)  # SIGKILL the broker, start it on the same log
        assert _ingested(redis_client, s, agents) < len(stream) - garbage
        produce(s.kafka_bootstrap_servers, stream[half:])  # producers carry on after it
        snap = wait_consumed(redis_client, s, agents, len(stream), garbage)
        _check_against_reference(snap, ref, s)
        assert proc.poll() is None  # the flow rode the outage out; it was not restarted
    finally:
        stop(proc)


def test_one_and_two_workers_give_the_same_projections_and_policies(
        settings, redis_client, tmp_path):
    runs = []
    for workers in (1, 2):
        base = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}w{workers}",
                                           "key_prefix": f"{settings.key_prefix}w{workers}",
                                           "recovery_dir": str(tmp_path / f"rec{workers}")})
        create_topics(base.kafka_bootstrap_servers, base.topics.all, 2)
        s = _settings(base)
        stream = mixed_stream(s.topics, n_decisions=3000, agents=8, seed=4, window=WINDOW)
        garbage = sum(1 for _, raw in stream if raw.startswith(GARBAGE_PREFIX))
        agents = [f"ag{i}" for i in range(8)]
        produce(s.kafka_bootstrap_servers, stream)
        proc = _start(s, tmp_path, f"w{workers}", workers=workers)
        try:
            runs.append(wait_consumed(redis_client, s, agents, len(stream), garbage))
        finally:
            stop(proc)
    one, two = runs
    assert one == two
    assert all(d["policy"]["version"] > 10 for d in one.values())

