"""HTTP contract against the real broker and Redis."""

from __future__ import annotations

import time

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.main import create_app
from schemas.events import parse_event
from schemas.policy import BucketPolicy, PolicyDocument
from schemas.settings import Settings
from tests.gateway.conftest import SPEC, read_topic


def test_register_decide_feedback_signals_emit_events(client: TestClient, settings: Settings,
                                                      redis_client) -> None:
    r = client.put("/v1/agents/ava", json=SPEC)
    assert r.status_code == 201, r.text
    assert client.put("/v1/agents/ava", json=SPEC).status_code == 200
    assert redis_client.sismember(settings.keys.agents_index("default"), "ava")
    pol = orjson.loads(redis_client.get(settings.keys.policy("default", "ava")))
    assert pol["version"] == 0 and pol["traits"]["humor"] == 0.9
    assert pol["explanation"] == "initial policy"

    d = client.post("/v1/agents/ava/decide",
                    json={"user_id": "u1", "context": {"slot": "morning", "n": 3}})
    assert d.status_code == 200, d.text
    body = d.json()
    assert body["action"] in SPEC["actions"]
    assert body["bucket"] == "slot=morning"
    assert body["policy_version"] == 0 and body["rules_version"] == 0
    assert body["prompt"]["system"].startswith("You are Ava.")
    assert {"temperature", "max_tokens"} <= set(body["prompt"]["params"])
    assert body["should_reply"] is True and body["model"] == "small-chat"
    # no values learned yet: every action ties, so each has probability 1/3
    assert abs(body["propensity"] - 1 / 3) < 1e-9 and body["explored"] is False

    f = client.post("/v1/feedback", json={"decision_id": body["decision_id"], "agent_id": "ava",
                                          "user_id": "u1", "kind": "rating", "value": 4})
    assert f.status_code == 202, f.text
    s = client.post("/v1/signals", json={"signals": [
        {"decision_id": body["decision_id"], "agent_id": "ava", "user_id": "u1",
         "kind": "reply_latency_ms", "value": 1200},
        {"agent_id": "ava", "user_id": "u1", "kind": "session_end",
         "ts": "2026-01-01T00:00:00Z"},
    ]})
    assert s.status_code == 202 and s.json()["accepted"] == 2

    bs = settings.kafka_bootstrap_servers
    agents = read_topic(bs, settings.topics.agents, 2)
    assert [a["type"] for a in agents] == ["AgentUpserted", "AgentUpserted"]
    assert agents[0]["_key"] == "ava" and agents[0]["tenant"] == "default"
    (dec,) = read_topic(bs, settings.topics.decisions, 1)
    ev = parse_event(orjson.dumps({k: v for k, v in dec.items() if k != "_key"}))
    assert ev.type == "DecisionMade" and dec["_key"] == "ava"
    assert dec["decision_id"] == body["decision_id"] == dec["event_id"]
    assert dec["action"] == body["action"] and dec["propensity"] == body["propensity"]
    assert dec["context"] == {"slot": "morning", "n": 3} and dec["traits"]["humor"] == 0.9
    assert dec["rules_version"] == 0 and dec["user_id"] == "u1"
    sig = read_topic(bs, settings.topics.signals, 3)
    assert sorted(e["type"] for e in sig) == ["FeedbackGiven", "SignalObserved", "SignalObserved"]
    fb = next(e for e in sig if e["type"] == "FeedbackGiven")
    assert fb["kind"] == "rating" and fb["value"] == 4 and fb["decision_id"] == body["decision_id"]
    end = next(e for e in sig if e.get("kind") == "session_end")
    assert end["ts"].startswith("2026-01-01T00:00:00")

    metrics = client.get("/metrics").text
    assert "rewardflow_gateway_decisions_total{" in metrics
    assert 'rewardflow_gateway_feedback_total{kind="rating"} 1.0' in metrics
    assert 'rewardflow_gateway_signals_total{kind="session_end"} 1.0' in metrics
    assert 'route="/v1/agents/{agent_id}/decide"' in metrics
    assert "rewardflow_gateway_epsilon_count 1.0" in metrics


def test_decide_follows_policy_and_probe(settings: Settings, redis_client) -> None:
    s = settings.model_copy(update={"policy_cache_seconds": 0.0})
    with TestClient(create_app(s)) as c:
        assert c.put("/v1/agents/ava", json=SPEC).status_code == 201
        doc = PolicyDocument(
            agent_id="ava", version=4, parent_version=3, epsilon=0.0, traits={"humor": 0.9},
            trait_bounds={"humor": (0.1, 0.95)},
            buckets={"slot=evening": BucketPolicy(values={"ask_question": 1.0}, epsilon=0.0)},
            probe={"share": 1.0, "delta": 0.1, "traits": ["humor"]},
            reply_probability={"slot=evening": 0.2},
        )
        redis_client.set(s.keys.policy("default", "ava"), doc.model_dump_json())
        # a re-registration never overwrites a learned policy
        assert c.put("/v1/agents/ava", json=SPEC).status_code == 200
        assert c.get("/v1/agents/ava/policy").json()["version"] == 4
        deltas = set()
        for _ in range(20):
            b = c.post("/v1/agents/ava/decide",
                       json={"user_id": "u", "context": {"slot": "evening"}}).json()
            assert b["action"] == "ask_question" and b["propensity"] == 1.0
            assert b["policy_version"] == 4 and b["should_reply"] is False
            assert b["probe"]["trait"] == "humor"
            assert 0.1 <= b["traits"]["humor"] <= 0.95
            deltas.add(b["probe"]["delta"])
        assert deltas <= {0.05, -0.1} and len(deltas) == 2  # clipped at the upper bound 0.95


def test_validation_errors_name_the_field(client: TestClient) -> None:
    assert client.put("/v1/agents/ava", json=SPEC).status_code == 201
    r = client.post("/v1/agents/ava/decide", content=b'{"user_id": "u", ',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/v1/feedback", json={"agent_id": "ava", "user_id": "u",
                                          "kind": "thumbs", "value": 3})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "value"]
    r = client.post("/v1/feedback", json={"agent_id": "ava", "user_id": "u",
                                          "kind": "rating", "value": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "value"]
    r = client.post("/v1/feedback", json={"agent_id": "ava", "user_id": "u",
                                          "kind": "love", "value": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
    r = client.post("/v1/signals", json={"signals": [
        {"agent_id": "ava", "user_id": "u", "kind": "sentiment", "value": 0.1},
        {"agent_id": "ava", "user_id": "u", "kind": "blink", "value": 1}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "signals", 1, "kind"]
    r = client.put("/v1/agents/bob", json={**SPEC, "actions": []})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "actions"]
    r = client.post("/v1/agents/ava/decide", json={"context": {}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "user_id"]
    r = client.get("/v1/agents/ava/projection?window=2h")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "window"]


def test_unknown_agent_is_404(client: TestClient) -> None:
    assert client.post("/v1/agents/nobody/decide", json={"user_id": "u"}).status_code == 404
    assert client.get("/v1/agents/nobody").status_code == 404
    assert client.get("/v1/agents/nobody/policy").status_code == 404
    assert client.get("/v1/agents/nobody/policy/versions").status_code == 404
    assert client.get("/v1/agents/nobody/projection").status_code == 404
    assert client.get("/v1/agents/nobody/users/u").status_code == 404
    r = client.post("/v1/feedback", json={"agent_id": "nobody", "user_id": "u",
                                          "kind": "thumbs", "value": 1})
    assert r.status_code == 404


def test_projection_relationship_and_versions(client: TestClient, settings: Settings,
                                              redis_client) -> None:
    assert client.put("/v1/agents/ava", json=SPEC).status_code == 201
    empty = client.get("/v1/agents/ava/projection?window=24h").json()
    assert empty["window"]["window"] == "24h" and empty["window"]["count"] == 0
    assert empty["summary"]["interactions"] == 0 and empty["history"]["recent"] == []
    k = settings.keys
    redis_client.hset(k.summary("default", "ava"), mapping={
        "seq": 5, "doc": orjson.dumps({"agent_id": "ava", "seq": 5, "interactions": 4})})
    redis_client.set(k.projection("default", "ava", "1h"),
                     orjson.dumps({"window": "1h", "count": 4, "mean_reward": 0.5}))
    redis_client.set(k.relationship("default", "ava", "u1"),
                     orjson.dumps({"user_id": "u1", "interactions": 2, "strength": 1.5}))
    p = client.get("/v1/agents/ava/projection").json()
    assert p["summary"]["interactions"] == 4 and p["window"]["count"] == 4
    assert client.get("/v1/agents/ava/users/u1").json()["strength"] == 1.5
    assert client.get("/v1/agents/ava/users/u2").json() == {
        "user_id": "u2", "interactions": 0, "mean_reward": 0.0, "strength": 0.0,
        "last_ts": None}
    v1 = PolicyDocument(agent_id="ava", version=1, parent_version=0, traits={"humor": 0.5})
    redis_client.hset(k.policy_history("default", "ava"), "1", v1.model_dump_json())
    redis_client.set(k.policy("default", "ava"), v1.model_dump_json())
    versions = client.get("/v1/agents/ava/policy/versions").json()["versions"]
    assert [v["version"] for v in versions] == [0, 1]
    assert client.get("/v1/agents/ava").json()["persona"]["name"] == "Ava"
    # admin rollback asks the learner (the only writer of versions) to republish version 0
    rb = client.post("/v1/agents/ava/policy/rollback", json={"version": 0})
    assert rb.status_code == 202
    assert rb.json()["target_version"] == 0 and rb.json()["current_version"] == 1
    evs = read_topic(settings.kafka_bootstrap_servers, settings.topics.agents, 2)
    ev = [e for e in evs if e["type"] == "PolicyRollbackRequested"][0]
    assert ev["target_version"] == 0 and ev["policy"]["traits"]["humor"] == 0.9
    assert client.post("/v1/agents/ava/policy/rollback", json={"version": 7}).status_code == 404


def test_readyz_reports_redis_down(settings: Settings) -> None:
    from stack.ports import free_port

    s = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(create_app(s)) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["down"] == ["redis"] and r.json()["kafka"] == "ok"
        d = c.post("/v1/agents/ava/decide", json={"user_id": "u"})
        assert d.status_code == 503 and "redis" in d.json()["detail"]


def test_readyz_reports_kafka_down(settings: Settings) -> None:
    from stack.ports import free_port

    s = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    with TestClient(create_app(s)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["down"] == ["kafka"]
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = c.put("/v1/agents/ava", json=SPEC).status_code
            if status == 503:
                break
            time.sleep(0.2)
        assert status == 503


@pytest.mark.parametrize("size", [10, 70_000])
def test_body_limit(client: TestClient, size: int) -> None:
    payload = {"signals": [{"agent_id": "ava", "user_id": "u" * 100, "kind": "sentiment",
                            "value": 0.0}] * (size // 130 + 1)}
    r = client.post("/v1/signals", json=payload)
    assert r.status_code == (413 if size > 64 * 1024 else 202)
