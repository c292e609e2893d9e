"""Population priors through the running system: dataflow + population process + gateway,
real broker and Redis.

Sixteen agents of one template learn two opposite tastes through the dataflow (10 like
``a``, 6 like ``b``); the population process clusters their published policies into two
archetypes and writes the template's prior; a new agent of that template registered through
the gateway starts from it (version 0 leans to the majority's ``a``) and, after a few rewards
saying it likes ``b``, follows the ``b`` archetype.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from schemas.agent import AgentSpec
from schemas.events import AgentUpserted, DecisionMade, EventBase, FeedbackGiven
from stack.ports import free_port
from stack.processes import start_population, stop
from tests.dataflows.kafka_io import consume_all, produce, wait_until
from tests.running_stack import running_stack

pytestmark = pytest.mark.integration

ACTIONS = ["a", "b", "c"]
SPEC: dict[str, Any] = {"persona": {"name": "Coach"}, "actions": ACTIONS, "template": "coach",
                        "epsilon": 0.1}


@pytest.fixture()
def stack(settings, tmp_path):
    s = settings.model_copy(update={
        "gateway_port": free_port(), "dataflow_metrics_port": free_port(),
        "snapshot_seconds": 1, "idle_watermark_seconds": 0.2, "allowed_lateness_seconds": 0.1,
        "population_refit_every": 100, "population_refit_seconds": 1.0,
        "population_min_rewards": 10,
        "population_recovery_dir": str(tmp_path / "recovery-population"),
        "population_metrics_port": free_port()})
    with running_stack(s, tmp_path, population=True) as client:
        yield s, client


def _population_events(n_a: int, n_b: int, rewards: int) -> list[tuple[str, EventBase]]:
    """Registrations, then decisions and feedback in event-time order across agents (the
    flow counts an event older than its partition's newest event as late)."""
    spec = AgentSpec.model_validate(SPEC)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    agents = [(f"pop{i}", "a" if i < n_a else "b") for i in range(n_a + n_b)]
    out: list[tuple[str, EventBase]] = [
        ("agents", AgentUpserted(agent_id=a, spec=spec, ts=t0)) for a, _ in agents]
    for j in range(rewards):
        for i, (agent, likes) in enumerate(agents):
            ts = t0 + timedelta(seconds=10 * j + 1, milliseconds=i)
            action = ACTIONS[(i + j) % 3]
            d = DecisionMade(decision_id=uuid.uuid4(), agent_id=agent, user_id="u",
                             action=action, propensity=1 / 3, explored=False,
                             policy_version=0, bucket="*", ts=ts, template="coach")
            f = FeedbackGiven(decision_id=d.decision_id, agent_id=agent, user_id="u",
                              kind="thumbs", value=1.0 if action == likes else -1.0,
                              ts=ts + timedelta(seconds=1))
            out += [("decisions", d), ("signals", f)]
    return out


def test_new_agent_starts_from_the_template_prior_and_follows_its_archetype(stack):
    s, client = stack
    topics = {"agents": s.topics.agents, "decisions": s.topics.decisions,
              "signals": s.topics.signals}
    produce(s.kafka_bootstrap_servers,
            [(topics[t], ev) for t, ev in _population_events(10, 6, rewards=15)])

    def prior() -> dict[str, Any] | None:
        try:
            doc = client.prior("coach")
        except Exception:  # noqa: BLE001 - 404 until the population process wrote one
            return None
        return doc if doc["agents"] == 16 and len(doc["archetypes"]) == 2 else None

    doc = wait_until(prior, timeout=30, interval=0.2)
    likes = {max(ACTIONS, key=a["values"]["*"].__getitem__): a for a in doc["archetypes"]}
    assert sorted(likes) == ["a", "b"]
    assert (likes["a"]["size"], likes["b"]["size"]) == (10, 6)

    assert client.upsert_agent("newbie", SPEC)["created"] is True
    v0 = client.policy("newbie")
    assert v0["version"] == 0 and v0["evidence"]["prior.version"] == doc["version"]
    star = v0["buckets"]["*"]["values"]
    assert max(ACTIONS, key=star.__getitem__) == "a"  # the majority's taste, before evidence
    ev = [e for e in consume_all(s.kafka_bootstrap_servers, s.topics.agents)
          if e["agent_id"] == "newbie"]
    assert len(ev) == 1 and ev[0]["prior"]["version"] == doc["version"]

    # This person likes b: a few rewards move the agent to the b archetype.
    for _ in range(4):
        d = client.decide("newbie", "u1", {})
        client.feedback(d["decision_id"], "newbie", "u1", "thumbs",
                        1.0 if d["action"] == "b" else -1.0)
        seen = int(d["policy_version"])

        def newer(seen: int = seen) -> bool:
            return int(client.policy("newbie")["version"]) > seen

        wait_until(newer, timeout=5, interval=0.02)
    pol = client.policy("newbie")
    b_arch = likes["b"]["name"]
    assert pol["evidence"][f"prior.weight.{b_arch}"] > 0.9, pol["evidence"]
    star = pol["buckets"]["*"]["values"]
    assert max(ACTIONS, key=star.__getitem__) == "b", star
    assert sum(pol["buckets"]["*"]["counts"].values()) == 4
    assert consume_all(s.kafka_bootstrap_servers, s.topics.dlq) == []


def test_live_agents_are_handed_the_prior_through_the_broker(settings, tmp_path):
    """The population process hands its prior to the template's live agents (PriorAssigned
    on the agents topic, keyed by agent); two co-partitioned flow processes apply them, each
    agent's next version is blended with the prior and weighs the archetype of its taste."""
    s = settings.model_copy(update={
        "gateway_port": free_port(), "dataflow_metrics_port": free_port(),
        "dataflow_processes": 2, "snapshot_seconds": 1, "idle_watermark_seconds": 0.2,
        "allowed_lateness_seconds": 0.1, "population_refit_every": 100,
        "population_refit_seconds": 1.0, "population_min_rewards": 10,
        "population_handoff_min_rewards": 10,
        "population_recovery_dir": str(tmp_path / "recovery-population"),
        "population_metrics_port": free_port()})
    topics = {"agents": s.topics.agents, "decisions": s.topics.decisions,
              "signals": s.topics.signals}
    with running_stack(s, tmp_path, population=True) as client:
        produce(s.kafka_bootstrap_servers,
                [(topics[t], ev) for t, ev in _population_events(10, 6, rewards=15)])

        def handed() -> list[dict[str, Any]]:
            return [e for e in consume_all(s.kafka_bootstrap_servers, s.topics.agents)
                    if e["type"] == "PriorAssigned"]

        events = wait_until(handed, timeout=40, interval=0.5)
        version = events[0]["prior"]["version"]
        assert {e["prior"]["version"] for e in events} == {version}  # one hand-off a day
        archetypes = events[0]["prior"]["archetypes"]
        likes = {a["name"]: max(ACTIONS, key=a["values"]["*"].__getitem__)
                 for a in archetypes}
        assert sorted(likes.values()) == ["a", "b"]
        for e in events:
            agent = e["agent_id"]
            taste = "a" if int(agent.removeprefix("pop")) < 10 else "b"

            def blended(agent: str = agent) -> dict[str, Any] | None:
                pol = client.policy(agent)
                return pol if pol["evidence"].get("prior.version") == version else None

            pol = wait_until(blended, timeout=15, interval=0.2)
            weights = {name: pol["evidence"][f"prior.weight.{name}"] for name in likes}
            assert likes[max(weights, key=weights.__getitem__)] == taste, (agent, weights)
        notes = {}
        for p in consume_all(s.kafka_bootstrap_servers, s.topics.policies):
            notes.setdefault(p["agent_id"], []).append(p["policy"]["explanation"])
        for e in events:
            assert any(n.startswith(f"population prior v{version} ")
                       for n in notes[e["agent_id"]]), notes[e["agent_id"]]
    assert consume_all(s.kafka_bootstrap_servers, s.topics.dlq) == []  # none misrouted


def _policy_events(n_agents: int, rounds: int) -> list[tuple[str, Any]]:
    """PolicyUpdated events as the main flow publishes them (real learner documents)."""
    from dataflows.learner import make_learner
    from schemas.events import PolicyUpdated

    spec = AgentSpec.model_validate(SPEC)
    learners = {f"k{i}": make_learner(f"k{i}", "default", spec) for i in range(n_agents)}
    out: list[tuple[str, Any]] = [("agents", AgentUpserted(agent_id=a, spec=spec))
                                  for a in learners]
    for j in range(rounds):
        for i, (agent, lrn) in enumerate(learners.items()):
            likes = "a" if i % 2 else "b"
            for k in range(3):
                act = ACTIONS[(j + k) % 3]
                lrn.update("*", act, 1.0 if act == likes else -1.0, float(j))
            doc = lrn.maybe_publish()
            assert doc is not None
            out.append(("policies", PolicyUpdated(agent_id=agent, version=doc["version"],
                                                  policy=doc)))
    return out


def test_population_process_recovers_after_sigkill_without_losing_or_double_counting(
        settings, tmp_path, redis_client):
    from stack.processes import kill

    s = settings.model_copy(update={
        "snapshot_seconds": 1, "population_refit_every": 1000, "population_refit_seconds": 0.5,
        "population_min_rewards": 10, "population_metrics_port": free_port(),
        "population_recovery_dir": str(tmp_path / "recovery-population")})
    topics = {"agents": s.topics.agents, "policies": s.topics.policies}
    events = _policy_events(10, rounds=8)
    half = len(events) // 2
    n_policies = sum(1 for t, _ in events if t == "policies")
    key = s.keys.prior("default", "coach")

    def prior(min_version: int) -> dict[str, Any] | None:
        raw = redis_client.get(key)
        doc = orjson.loads(raw) if raw else None
        return doc if doc and doc["version"] >= min_version else None

    produce(s.kafka_bootstrap_servers, [(topics[t], ev) for t, ev in events[:half]])
    proc = start_population(s, log_path=tmp_path / "population.log")
    try:
        first = wait_until(lambda: prior(1), timeout=30, interval=0.1)
        time.sleep(1.5)  # at least one snapshot
        kill(proc)
        produce(s.kafka_bootstrap_servers, [(topics[t], ev) for t, ev in events[half:]])
        proc = start_population(s, log_path=tmp_path / "population.log")
        final = wait_until(lambda: prior(n_policies), timeout=30, interval=0.1)
        time.sleep(1.5)  # nothing after the last table
        assert prior(n_policies + 1) is None
    finally:
        stop(proc)
    # every table absorbed exactly once: the version counts them
    assert first["version"] < final["version"] == n_policies
    assert final["agents"] == 10 and sorted(a["size"] for a in final["archetypes"]) == [5, 5]
