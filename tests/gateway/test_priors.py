"""Population priors in the gateway: version 0 of a new agent and the AgentUpserted event."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

from schemas.priors import Archetype, PriorDocument
from schemas.settings import Settings
from tests.gateway.conftest import SPEC, read_topic

TEMPLATED: dict[str, Any] = {**SPEC, "template": "companion", "context_keys": ["slot"]}


def _prior() -> PriorDocument:
    return PriorDocument(
        template="companion", version=40, actions=SPEC["actions"], agents=12,
        explanation=("2 archetypes from 12 agents (held-out log-likelihood +3.1 per agent "
                     "over one archetype)."), archetypes=[
            Archetype(name="arch0", size=9, values={
                "slot=morning": {"reply": 0.8, "ask_question": -0.4, "stay_quiet": -0.6},
                "*": {"reply": 0.5, "ask_question": 0.0, "stay_quiet": -0.5}}),
            Archetype(name="arch1", size=3, values={
                "slot=morning": {"reply": -0.8, "ask_question": 0.2, "stay_quiet": 0.9},
                "*": {"reply": -0.5, "ask_question": 0.1, "stay_quiet": 0.6}})])


def test_new_agent_of_a_template_starts_from_its_prior(client: TestClient, settings: Settings,
                                                       redis_client) -> None:
    assert client.get("/v1/templates/companion/prior").status_code == 404
    assert client.get("/v1/templates/bad%20name/prior").status_code == 422
    prior = _prior()
    redis_client.set(settings.keys.prior("default", "companion"), prior.model_dump_json())
    assert client.get("/v1/templates/companion/prior").json()["version"] == 40

    assert client.put("/v1/agents/new1", json=TEMPLATED).status_code == 201
    pol = orjson.loads(redis_client.get(settings.keys.policy("default", "new1")))
    assert pol["version"] == 0
    # population-share weighted (9:3) archetype values
    morning = pol["buckets"]["slot=morning"]
    assert morning["values"] == {"reply": 0.4, "ask_question": -0.25, "stay_quiet": -0.225}
    assert morning["counts"] == {} and morning["epsilon"] == SPEC["epsilon"]
    assert pol["evidence"] == {"prior.version": 40.0, "prior.weight.arch0": 0.75,
                               "prior.weight.arch1": 0.25}
    assert "population prior of template 'companion' (v40" in pol["explanation"]
    # the very first decision already follows the prior (exploration off for this one)
    d = client.post("/v1/agents/new1/decide", json={"user_id": "u", "context": {
        "slot": "morning", "no_explore": True}}).json()
    assert d["action"] == "reply" and d["policy_version"] == 0

    # an agent without a template, and an update of one that already learned: no prior
    assert client.put("/v1/agents/plain", json=SPEC).status_code == 201
    learned = {**pol, "version": 3, "agent_id": "new1"}
    redis_client.set(settings.keys.policy("default", "new1"), orjson.dumps(learned))
    assert client.put("/v1/agents/new1", json=TEMPLATED).status_code == 200
    plain = orjson.loads(redis_client.get(settings.keys.policy("default", "plain")))
    assert plain["buckets"] == {} and plain["explanation"] == "initial policy"

    events = read_topic(settings.kafka_bootstrap_servers, settings.topics.agents, 3)
    by_agent = [(e["agent_id"], e["prior"]) for e in events]
    first = next(p for a, p in by_agent if a == "new1" and p is not None)
    assert PriorDocument.model_validate(first) == prior
    assert sorted((a, p is None) for a, p in by_agent) == [
        ("new1", False), ("new1", True), ("plain", True)]


def test_an_unreadable_prior_is_ignored(client: TestClient, settings: Settings,
                                        redis_client) -> None:
    redis_client.set(settings.keys.prior("default", "companion"), b'{"template": 1}')
    assert client.put("/v1/agents/x1", json=TEMPLATED).status_code == 201
    pol = orjson.loads(redis_client.get(settings.keys.policy("default", "x1")))
    assert pol["buckets"] == {} and pol["explanation"] == "initial policy"
