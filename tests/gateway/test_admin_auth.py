"""Auth, tenancy, compile-rules upload and hot reload, feedback prompts, the keys CLI."""

from __future__ import annotations

import subprocess
import sys

import redis
from fastapi.testclient import TestClient

from gateway.keys import create_key
from gateway.main import create_app
from schemas.settings import Settings
from tests.gateway.conftest import SPEC

RULES_OK = """persona: "You are {name}, version two."
traits:
  humor:
    - {min: 0.0, max: 1.0, text: "Humor rule v2."}
"""
RULES_BAD = """persona: "x"
traits:
  humor:
    - {min: 0.0, max: 0.5, text: "ok"}
    - {min: 0.2, max: 1.5, text: "max is out of range"}
"""


def test_auth_tenancy_and_body_limit(settings: Settings, redis_client: redis.Redis) -> None:
    s = settings.model_copy(update={"auth_enabled": True, "max_body_bytes": 2048})
    acme = create_key(redis_client, s, "acme", admin=False)
    acme_admin = create_key(redis_client, s, "acme", admin=True)
    globex = create_key(redis_client, s, "globex", admin=False)
    with TestClient(create_app(s)) as c:
        assert c.put("/v1/agents/ava", json=SPEC).status_code == 401
        assert c.put("/v1/agents/ava", json=SPEC,
                     headers={"X-API-Key": "rfk_wrong"}).status_code == 401
        assert c.post("/v1/agents/ava/decide", json={"user_id": "u"}).status_code == 401
        a = {"X-API-Key": acme}
        assert c.put("/v1/agents/ava", json=SPEC, headers=a).status_code == 201
        assert c.post("/v1/agents/ava/decide", json={"user_id": "u"}, headers=a).status_code == 200
        g = {"X-API-Key": globex}
        assert c.post("/v1/agents/ava/decide", json={"user_id": "u"}, headers=g).status_code == 404
        assert c.get("/v1/agents/ava/policy", headers=g).status_code == 404
        # every key carries the tenant
        assert redis_client.exists(s.keys.agent("acme", "ava"))
        assert not redis_client.exists(s.keys.agent("default", "ava"))
        # admin scope for rules
        assert c.put("/v1/admin/rules", content=RULES_OK, headers=a).status_code == 403
        assert c.put("/v1/admin/rules", content=RULES_OK,
                     headers={"X-API-Key": acme_admin}).status_code == 200
        big = {"user_id": "u", "context": {f"k{i}": "x" * 40 for i in range(60)}}
        assert c.post("/v1/agents/ava/decide", json=big, headers=a).status_code == 413
        assert c.get("/healthz").status_code == 200
        # keys are stored hashed
        assert acme not in str(redis_client.hgetall(s.keys.api_keys()))


def test_rules_upload_hot_reload_and_line_numbers(client: TestClient, settings: Settings,
                                                  redis_client: redis.Redis) -> None:
    assert client.put("/v1/agents/ava", json=SPEC).status_code == 201
    before = client.post("/v1/agents/ava/decide", json={"user_id": "u"}).json()
    assert before["rules_version"] == 0 and "witty" in before["prompt"]["system"]
    r = client.put("/v1/admin/rules", content=RULES_OK,
                   headers={"content-type": "application/yaml"})
    assert r.status_code == 200 and r.json()["version"] == 1
    after = client.post("/v1/agents/ava/decide", json={"user_id": "u"}).json()
    assert after["rules_version"] == 1
    assert after["prompt"]["system"].startswith("You are Ava, version two.\nHumor rule v2.")
    # JSON works too and bumps the version
    r = client.put("/v1/admin/rules", json={"persona": "Hi {name}."})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert client.get("/v1/admin/rules").json()["version"] == 2
    # a rules change written by another gateway process is picked up after the cache TTL
    import time

    doc = redis_client.get(settings.keys.compile_rules("default"))
    redis_client.set(settings.keys.compile_rules("default"),
                     doc.replace('"version":2', '"version":7'))
    time.sleep(settings.policy_cache_seconds + 0.05)
    assert client.post("/v1/agents/ava/decide", json={"user_id": "u"}).json()[
        "rules_version"] == 7
    bad = client.put("/v1/admin/rules", content=RULES_BAD)
    assert bad.status_code == 422
    err = bad.json()["detail"][0]
    assert err["line"] == 5 and err["loc"] == ["body", "traits", "humor", 1, "max"]
    syntax = client.put("/v1/admin/rules", content="persona: x\ntraits: [\n  a: b\n")
    assert syntax.status_code == 422 and syntax.json()["detail"][0]["line"] >= 3
    unknown = client.put("/v1/admin/rules", content="persona: x\n\nbogus: 1\n")
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["line"] == 3
    assert client.get("/v1/admin/rules").json()["version"] == 7  # rejected ones not stored


def test_feedback_prompt_rate_limits(client: TestClient, settings: Settings,
                                     redis_client: redis.Redis) -> None:
    assert client.put("/v1/agents/ava", json=SPEC).status_code == 201
    url = "/v1/agents/ava/feedback-prompt"
    q = {"user_id": "u1", "session_seconds": 600, "agent_messages": 6}
    assert client.get(url, params=q).json()["prompt"] == "rating"
    # at most one rating a day for this agent+user
    second = client.get(url, params=q).json()
    assert second["prompt"] == "none" and second["candidates"] == ["rating"]
    assert client.get(url, params={**q, "user_id": "u2"}).json()["prompt"] == "rating"
    assert client.get(url, params={"user_id": "u3", "agent_messages": 5}).json()[
        "prompt"] == "thumbs"
    assert client.get(url, params={"user_id": "u3", "agent_messages": 4}).json()[
        "prompt"] == "none"
    assert client.get(url, params={"user_id": "u3", "agent_messages": 4,
                                   "explored": True}).json()["prompt"] == "thumbs"
    assert client.get(url, params={**q, "user_id": "u4", "intensity": "off"}).json()[
        "prompt"] == "none"
    # check-in after 7 days without feedback
    r = client.post("/v1/feedback", json={"agent_id": "ava", "user_id": "u5",
                                          "kind": "thumbs", "value": 1,
                                          "ts": "2020-01-01T00:00:00Z"})
    assert r.status_code == 202
    assert client.get(url, params={"user_id": "u5"}).json()["prompt"] == "check_in"
    assert client.get(url, params={"user_id": "u5"}).json()["prompt"] == "none"
    assert client.get("/v1/agents/nobody/feedback-prompt",
                      params={"user_id": "u"}).status_code == 404


def test_keys_cli(settings: Settings, redis_client: redis.Redis) -> None:
    env = {"REDIS_URL": settings.redis_url, "RF_KEY_PREFIX": settings.key_prefix,
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "gateway.keys", "create", "--tenant", "acme",
                          "--admin"], capture_output=True, text=True, env=env, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    key = out.stdout.strip()
    assert key.startswith("rfk_")
    from gateway.auth import hash_key

    rec = redis_client.hget(settings.keys.api_keys(), hash_key(key))
    assert '"tenant": "acme"' in rec and '"admin": true' in rec
