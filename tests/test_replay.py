"""``stack.replay``: a JSONL log replayed twice through broker -> dataflow -> Redis leaves
every projection as the first replay left it, and adds no reward."""

from __future__ import annotations

import csv
import io

import orjson
import pytest

from stack.ports import free_port, wait_for_port
from stack.processes import start_dataflow, stop
from stack.replay import convert_obd, replay, route
from tests.dataflows.kafka_io import consume_all, wait_until
from tests.dataflows.mixed_stream import mixed_stream

pytestmark = pytest.mark.integration
GARBAGE = [b"this is not json", b'{"type": "RewardComputed", "agent_id": "ag1"}',
           b'{"type": "SignalObserved", "agent_id": "ag1", "value": "x"}']


def _projections(r, s, agents):
    out = {}
    for a in agents:
        raw = r.hget(s.keys.summary("default", a), "doc")
        if raw is None:
            return None
        summary = orjson.loads(raw)
        out[a] = {
            "summary": {k: summary[k] for k in ("interactions", "mean_reward",
                                                "last_reward_at", "policy_version")},
            "counts_in": summary["counts"]["in"],
            **{w: orjson.loads(r.get(s.keys.projection("default", a, w)) or b"null")
               for w in ("1h", "24h", "7d")},
            "hist": orjson.loads(r.get(s.keys.history("default", a)) or b"null"),
            "policy": r.get(s.keys.policy("default", a)),
        }
    return out


@pytest.fixture()
def flow(settings, tmp_path):
    s = settings.model_copy(update={"dataflow_metrics_port": free_port(),
                                    "allowed_lateness_seconds": 2.0,
                                    "idle_watermark_seconds": 86400.0,
                                    "snapshot_seconds": 2})
    proc = start_dataflow(s, log_path=tmp_path / "flow.log")
    wait_for_port("127.0.0.1", s.dataflow_metrics_port, 30)
    yield s
    stop(proc)


def test_replaying_a_log_twice_changes_no_projection(flow, redis_client, tmp_path):
    s, r = flow, redis_client
    stream = mixed_stream(s.topics, n_decisions=150, agents=8, users=5, seed=11)
    log = tmp_path / "events.jsonl"
    lines = [payload for _, payload in stream]
    # Bad lines go in the middle (the flow must DLQ them, not the replayer drop them).
    lines[10:10] = GARBAGE
    log.write_bytes(b"\n".join(lines) + b"\n\n")
    agents = sorted({orjson.loads(p)["agent_id"] for p in lines if p not in GARBAGE})
    n = len(lines)

    first = replay(log, s, progress=False, check=True)
    assert first["produced"] == n and first["blank_lines"] == 1
    assert first["delivery_failures"] == 0
    assert [u["line"] for u in first["unroutable_first"]] == [11, 12]
    assert first["invalid_lines"] == 1  # the schema check reports, but does not reject
    assert first["invalid_first"][0]["line"] == 13
    assert first["produced_per_topic"][s.topics.decisions] == sum(
        1 for t, _ in stream if t == s.topics.decisions)

    def settled(rounds):
        def pred():
            snap = _projections(r, s, agents)
            if snap is None:
                return None
            ingested = sum(d["counts_in"] for d in snap.values())
            return snap if ingested + rounds * len(GARBAGE) == rounds * n else None
        return pred

    def rewards(expected):
        ids = {ev["event_id"] for ev in consume_all(s.kafka_bootstrap_servers,
                                                     s.topics.rewards, timeout=5)}
        return ids if len(ids) >= expected else None

    snap1 = wait_until(settled(1), timeout=20, interval=0.2)
    n_rewards = sum(d["summary"]["interactions"] for d in snap1.values())
    assert n_rewards > 0
    ids1 = wait_until(lambda: rewards(n_rewards), timeout=10, interval=0.2)
    dlq = consume_all(s.kafka_bootstrap_servers, s.topics.dlq, timeout=5)
    assert sum(1 for d in dlq if d["step"] == "parse") == len(GARBAGE)

    second = replay(log, s, progress=False)
    assert second["produced"] == n
    snap2 = wait_until(settled(2), timeout=20, interval=0.2)
    strip = lambda snap: {a: {k: v for k, v in d.items() if k != "counts_in"}  # noqa: E731
                          for a, d in snap.items()}
    assert strip(snap2) == strip(snap1)
    assert {a: d["counts_in"] for a, d in snap2.items()} == \
        {a: 2 * d["counts_in"] for a, d in snap1.items()}
    ids2 = {ev["event_id"] for ev in consume_all(s.kafka_bootstrap_servers, s.topics.rewards,
                                                  timeout=5)}
    assert ids2 == ids1


def test_route_and_convert_obd(tmp_path):
    from schemas.topics import Topics

    t = Topics("x")
    assert route(b'{"type": "FeedbackGiven", "agent_id": "a"}', t)[:2] == ("x.signals", b"a")
    assert route(b'{"type": "AgentUpserted", "agent_id": "a"}', t)[0] == "x.agents"
    assert route(b"[1, 2]", t)[3] == "not a JSON object"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["", "timestamp", "item_id", "position", "click", "propensity_score",
                "user_feature_0"])
    w.writerow([0, "2019-11-24 00:00:17.134322+00:00", 14, 1, 0, 0.0125, "abc"])
    w.writerow([1, "2019-11-24 00:00:22.000000+00:00", 7, 2, 1, 0.0125, "def"])
    w.writerow([2, "garbage", 7, 2, 1, 0.0125, "def"])
    src = tmp_path / "obd.csv"
    src.write_text(buf.getvalue())
    dst = tmp_path / "obd.jsonl"
    counts = convert_obd(src, dst)
    assert counts == {"decisions": 2, "feedback": 1, "bad_rows": 1}
    first = dst.read_bytes()
    convert_obd(src, dst)
    assert dst.read_bytes() == first  # deterministic ids: re-converting is idempotent
    from schemas.events import parse_event
    evs = [parse_event(line) for line in first.splitlines()]
    assert [e.type for e in evs] == ["DecisionMade", "DecisionMade", "FeedbackGiven"]
    assert evs[2].decision_id == evs[1].decision_id and evs[1].bucket == "position=2"
