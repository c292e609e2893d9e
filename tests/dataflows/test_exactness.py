"""Issue 3's exactness: 100k mixed events through broker -> dataflow -> Redis equal an
independent computation, nothing is lost, and replaying the log changes nothing."""

from __future__ import annotations

import pytest

from dataflows.reward_model import load_reward_model
from stack.ports import free_port, wait_for_port
from stack.processes import start_dataflow, stop
from tests.dataflows.kafka_io import consume_all, produce
from tests.dataflows.mixed_stream import mixed_stream
from tests.dataflows.projection_io import GARBAGE_PREFIX, wait_consumed, without_counters
from tests.dataflows.reference import reference

pytestmark = pytest.mark.integration
WINDOW, LATENESS = 600.0, 2.0


@pytest.fixture()
def flow(settings, tmp_path):
    s = settings.model_copy(update={
        "dataflow_metrics_port": free_port(), "reward_window_seconds": WINDOW,
        "allowed_lateness_seconds": LATENESS, "idle_watermark_seconds": 86400.0,
        "snapshot_seconds": 2})
    proc = start_dataflow(s, log_path=tmp_path / "flow.log")
    wait_for_port("127.0.0.1", s.dataflow_metrics_port, 30)
    yield s
    stop(proc)


def test_projections_equal_independent_computation_and_replay_is_idempotent(
        flow, redis_client):
    s, r = flow, redis_client
    stream = mixed_stream(s.topics, n_decisions=43_000, window=WINDOW)
    model = load_reward_model()
    ref = reference(stream, model, WINDOW, LATENESS, s.history_length,
                    s.relationship_half_life_seconds)
    agents = sorted(ref["agents"])
    produce(s.kafka_bootstrap_servers, stream)

    parse_dlq = sum(1 for _, raw in stream if raw.startswith(GARBAGE_PREFIX))
    snap = wait_consumed(r, s, agents, len(stream), parse_dlq)

    # Counted in = applied + DLQ + duplicates + late + still buffered, nothing lost.
    c = {k: sum(d["summary"]["counts"][k] for d in snap.values())
         for k in ("in", "decisions", "joined", "dlq", "duplicates", "late", "agents")}
    buffered = sum(d["summary"]["buffered"] for d in snap.values())
    assert c["in"] + parse_dlq == len(stream)
    assert c["in"] == c["decisions"] + c["joined"] + c["dlq"] + c["duplicates"] + c["late"] \
        + c["agents"] + buffered
    rc = ref["counts"]
    assert c["duplicates"] == rc["duplicates"] and c["late"] == rc["late"]
    assert c["dlq"] + parse_dlq == rc["dlq"]
    assert buffered == 2 * len(agents)  # each agent's flush decision and signal
    assert c["decisions"] == rc["decisions"] - len(agents)
    assert c["joined"] == rc["joined"] - len(agents)

    # Rewards: the same decisions, values and closing reasons.
    rewards = {}
    for ev in consume_all(s.kafka_bootstrap_servers, s.topics.rewards, timeout=10):
        rewards[ev["decision_id"]] = (ev["reward"], ev["closed_by"])
    assert set(rewards) == set(ref["rewards"])
    for did, (val, by) in ref["rewards"].items():
        assert rewards[did][1] == by
        assert rewards[did][0] == pytest.approx(val, abs=1e-6)
    dlq = consume_all(s.kafka_bootstrap_servers, s.topics.dlq, timeout=10)
    assert len(dlq) == rc["dlq"]

    # Every projection equals the independent computation.
    for a in agents:
        got, want = snap[a], ref["agents"][a]
        assert got["summary"]["interactions"] == want["interactions"]
        assert got["summary"]["mean_reward"] == pytest.approx(want["mean_reward"], abs=1e-6)
        for w in ("1h", "24h", "7d"):
            rows = {int(k): v for k, v in got[w]["buckets"].items()}
            assert set(rows) == set(want["windows"][w]), (a, w)
            for start, row in want["windows"][w].items():
                assert rows[start][:3] == row[:3] and rows[start][4] == row[4]
                assert rows[start][3] == pytest.approx(row[3], abs=1e-6)
        assert {u: (v["interactions"], round(v["strength"], 6)) for u, v in got["rel"].items()} \
            == {u: (int(v[0]), round(v[2], 6)) for u, v in want["relationships"].items()}
        assert [x["decision_id"] for x in got["hist"]["recent"]] == want["recent"]
        assert {k: [v["count"], v["success"]] for k, v in got["hist"]["per_action"].items()} \
            == want["per_action"]
        assert got["policy"]["version"] >= 1

    # Replay the whole log (same events, new offsets): nothing changes but the counters.
    before = without_counters(snap)
    produce(s.kafka_bootstrap_servers, stream)
    after_snap = wait_consumed(r, s, agents, 2 * len(stream), 2 * parse_dlq)
    assert without_counters(after_snap) == before
    again = {ev["event_id"] for ev in consume_all(s.kafka_bootstrap_servers, s.topics.rewards,
                                                   timeout=10)}
    assert len(again) == len(ref["rewards"])
