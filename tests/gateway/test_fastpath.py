"""The decide fast path answers exactly as the FastAPI route does (real broker and Redis)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import redis
from fastapi.testclient import TestClient

from gateway.fastpath import DecideFastPath
from gateway.keys import create_key
from gateway.main import create_app
from schemas.settings import Settings
from stack.ports import free_port
from tests.gateway.conftest import SPEC, read_topic

DECIDE = "/v1/agents/ava/decide"


@contextmanager
def pair(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    """The gateway with the fast path and without it, same settings, same rng seed."""
    with TestClient(create_app(settings)) as fast, \
            TestClient(create_app(settings, decide_fast_path=False)) as slow:
        for c in (fast, slow):
            c.app.state.rf.rng = random.Random(7)  # type: ignore[attr-defined]
        yield fast, slow


def _same(fast: TestClient, slow: TestClient, method: str, url: str, **kw: Any) -> Any:
    a = fast.request(method, url, **kw)
    b = slow.request(method, url, **kw)
    assert (a.status_code, a.content) == (b.status_code, b.content), (url, kw)
    assert a.headers.multi_items() == b.headers.multi_items()
    return a


def _uses_fast_path(client: TestClient) -> bool:
    stack = client.app.middleware_stack  # type: ignore[attr-defined]
    while stack is not None:
        if isinstance(stack, DecideFastPath):
            return stack.handlers is not None
        stack = getattr(stack, "app", None)
    return False


def test_same_responses_events_and_metrics(settings: Settings) -> None:
    with pair(settings) as (fast, slow):
        assert _uses_fast_path(fast) and not _uses_fast_path(slow)
        assert fast.put("/v1/agents/ava", json=SPEC).status_code == 201
        ok = {"user_id": "u1", "context": {"slot": "morning", "n": 3, "x": 1.5, "dm": True},
              "ts": "2026-01-01T09:00:00.5+02:00"}
        for _ in range(3):
            r = _same(fast, slow, "POST", DECIDE, json=ok)
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        for body in [b'{"user_id": "u", ', b"[]", b"", b'"x"', b'{"user_id": ""}',
                     b'{"user_id": "u", "extra": 1}', b'{"user_id": 5}',
                     b'{"user_id": "u", "ts": "2026-01-01T00:00:00"}',
                     b'{"user_id": "u", "context": {"k": [1]}}',
                     orjson.dumps({"user_id": "u", "context": {f"k{i}": i for i in range(65)}})]:
            r = _same(fast, slow, "POST", DECIDE, content=body,
                      headers={"content-type": "application/json"})
            assert r.status_code == 422
        assert _same(fast, slow, "POST", DECIDE, json={"context": {}}).json()["detail"][0][
            "loc"] == ["body", "user_id"]
        for path in ["/v1/agents/bad%20id/decide", "/v1/agents/" + "a" * 65 + "/decide"]:
            r = _same(fast, slow, "POST", path, json={"user_id": "u"})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "agent_id"]
        assert _same(fast, slow, "POST", "/v1/agents/nobody/decide",
                     json={"user_id": "u"}).status_code == 404
        assert _same(fast, slow, "GET", DECIDE).status_code == 405
        r = _same(fast, slow, "POST", DECIDE + "/", json={"user_id": "u"},
                  follow_redirects=False)
        assert r.status_code == 307
        # identical DecisionMade events (same seed, same ts) for the three decisions of each
        events = read_topic(settings.kafka_bootstrap_servers, settings.topics.decisions, 6)
        assert len(events) == 6
        by_id: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            by_id.setdefault(e["decision_id"], []).append(e)
        assert len(by_id) == 3 and all(a == b for a, b in by_id.values())
        assert all(e["ts"] == "2026-01-01T07:00:00.500000Z" for e in events)
        # metrics: the fast path labels its requests with the route template
        m_fast, m_slow = fast.get("/metrics").text, slow.get("/metrics").text
        for text in (m_fast, m_slow):
            for status, n in (("200", 3), ("422", 13), ("404", 1)):
                line = ('rewardflow_gateway_requests_total{method="POST",'
                        f'route="/v1/agents/{{agent_id}}/decide",status="{status}"}} {n}.0')
                assert line in text.splitlines(), status
            assert "rewardflow_gateway_epsilon_count 3.0" in text
        decisions = [line for line in m_fast.splitlines()
                     if line.startswith("rewardflow_gateway_decisions_total{")]
        assert decisions == [line for line in m_slow.splitlines()
                             if line.startswith("rewardflow_gateway_decisions_total{")]


def test_same_auth_errors(settings: Settings, redis_client: redis.Redis) -> None:
    s = settings.model_copy(update={"auth_enabled": True})
    key = create_key(redis_client, s, "acme", admin=False)
    other = create_key(redis_client, s, "globex", admin=False)
    with pair(s) as (fast, slow):
        assert fast.put("/v1/agents/ava", json=SPEC, headers={"X-API-Key": key}
                        ).status_code == 201
        for headers, status in (({}, 401), ({"X-API-Key": "rfk_wrong"}, 401),
                                ({"X-API-Key": other}, 404), ({"X-API-Key": key}, 200)):
            r = _same(fast, slow, "POST", DECIDE, json={"user_id": "u"}, headers=headers)
            assert r.status_code == status
        assert fast.post(DECIDE, json={"user_id": "u"}).headers["www-authenticate"] == "X-API-Key"


def test_same_503_when_redis_is_down(settings: Settings) -> None:
    s = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with pair(s) as (fast, slow):
        r = _same(fast, slow, "POST", DECIDE, json={"user_id": "u"})
        assert r.status_code == 503 and r.json()["detail"].startswith("redis unavailable")


def test_kafka_down_is_503_and_counted_once(settings: Settings,
                                            redis_client: redis.Redis) -> None:
    s = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    redis_client.set(s.keys.agent("default", "ava"), orjson.dumps(SPEC))
    with TestClient(create_app(s)) as c:
        deadline = time.monotonic() + 5
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(c.post(DECIDE, json={"user_id": "u"}).status_code)
            if statuses[-1] == 503:
                break
            time.sleep(0.2)
        assert statuses[-1] == 503
        r = c.post(DECIDE, json={"user_id": "u"})
        assert r.status_code == 503 and r.json() == {"detail": "kafka is unavailable"}
        text = c.get("/metrics").text
        assert (f'rewardflow_gateway_produce_errors_total{{topic="{s.topics.decisions}"}} '
                f"{statuses.count(503) + 1}.0") in text
