"""The population flow under ``run_main`` with TestingSource/TestingSink (no services)."""

from __future__ import annotations

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflows.learner import make_learner
from dataflows.population_flow import build_flow
from schemas.agent import AgentSpec
from schemas.events import AgentUpserted, dump_event
from schemas.priors import PriorDocument
from schemas.settings import Settings

# live hand-offs off: these tests are about fitting (tests/dataflows/test_prior_handoff.py)
S = Settings(topic_prefix="p", population_refit_every=1000, population_refit_seconds=3600,
             population_min_rewards=10, population_handoff_seconds=0)
ACTIONS = ["a", "b", "c"]


def _msg(key: bytes | None, value: bytes, topic: str, offset: int) -> KafkaSourceMessage:
    return KafkaSourceMessage(key, value, topic=topic, partition=0, offset=offset)


def _spec(template: str | None = "coach") -> AgentSpec:
    return AgentSpec.model_validate({"persona": {"name": "x"}, "actions": ACTIONS,
                                     "template": template})


def _policy_msg(agent: str, likes: str, offset: int, n: int = 30) -> KafkaSourceMessage:
    """A PolicyUpdated as the main flow publishes it: the real learner's document."""
    lrn = make_learner(agent, "default", _spec())
    for i in range(n):
        act = ACTIONS[i % 3]
        lrn.update("*", act, 1.0 if act == likes else -1.0, float(i))
    doc = lrn.maybe_publish()
    assert doc is not None
    ev = {"event_id": f"00000000-0000-4000-8000-{offset:012d}", "tenant": "default",
          "ts": "2026-01-01T00:00:00Z", "schema_version": 1, "type": "PolicyUpdated",
          "agent_id": agent, "version": doc["version"], "policy": doc}
    return _msg(agent.encode(), orjson.dumps(ev), S.topics.policies, offset)


def _agent_msg(agent: str, offset: int, template: str | None = "coach") -> KafkaSourceMessage:
    ev = AgentUpserted(agent_id=agent, spec=_spec(template))
    return _msg(agent.encode(), dump_event(ev), S.topics.agents, offset)


def _run(msgs: list[KafkaSourceMessage]) -> tuple[list[PriorDocument], list[KafkaSinkMessage]]:
    kafka: list[KafkaSinkMessage] = []
    redis: list[PriorDocument] = []
    run_main(build_flow(TestingSource(msgs), TestingSink(kafka), TestingSink(redis), S))
    return redis, kafka


def test_two_tastes_become_two_archetypes_and_bad_policies_go_to_dlq():
    msgs: list[KafkaSourceMessage] = []
    for i in range(12):
        agent = f"ag{i}"
        likes = "a" if i % 2 else "b"
        if i == 0:  # its policy is read before its registration: still counted
            msgs += [_policy_msg(agent, likes, 100 + i), _agent_msg(agent, i)]
        else:
            msgs += [_agent_msg(agent, i), _policy_msg(agent, likes, 100 + i)]
    msgs.append(_msg(None, b"not json", S.topics.policies, 500))
    msgs.append(_msg(None, b"{", S.topics.agents, 501))  # the main flow dead-letters this one
    msgs += [_agent_msg("solo", 600, template=None), _policy_msg("solo", "c", 601)]
    priors, kafka = _run(msgs)
    assert len(priors) == 1  # one refit at the end of input
    doc = priors[0]
    assert (doc.tenant, doc.template, doc.agents) == ("default", "coach", 12)
    assert sorted(a.size for a in doc.archetypes) == [6, 6]
    favourites = sorted(max(ACTIONS, key=a.values["*"].__getitem__) for a in doc.archetypes)
    assert favourites == ["a", "b"]
    assert doc.version == 12
    dlq = [orjson.loads(m.value) for m in kafka]
    assert [(d["step"], d["reason"], d["offset"]) for d in dlq] == [
        ("population", "invalid JSON", 500)]
    assert all(m.topic == S.topics.dlq for m in kafka)


def test_refit_every_n_tables_and_an_agent_that_changes_template_leaves():
    s = S.model_copy(update={"population_refit_every": 6})
    msgs: list[KafkaSourceMessage] = []
    for i in range(6):
        msgs += [_agent_msg(f"ag{i}", i), _policy_msg(f"ag{i}", "a" if i % 2 else "b", 100 + i)]
    msgs.append(_agent_msg("ag0", 50, template="other"))
    kafka: list[KafkaSinkMessage] = []
    redis: list[PriorDocument] = []
    run_main(build_flow(TestingSource(msgs), TestingSink(kafka), TestingSink(redis), s))
    assert [(d.version, d.agents) for d in redis] == [(6, 6), (7, 5)]
    assert kafka == []


def test_prior_sink_writes_only_newer_versions(settings, redis_client):
    from dataflows.population_run import PriorRedisSink

    part = PriorRedisSink(settings.redis_url, settings.keys).build("prior_out", 0, 1)
    key = settings.keys.prior("default", "coach")

    def doc(v: int) -> PriorDocument:
        return PriorDocument(template="coach", version=v, explanation=f"v{v}")

    try:
        part.write_batch([doc(5), doc(4)])  # coalesced: the newest of a batch
        assert orjson.loads(redis_client.get(key))["version"] == 5
        part.write_batch([doc(3)])  # a replay after recovery: older, skipped
        assert orjson.loads(redis_client.get(key))["version"] == 5
        part.write_batch([doc(7)])
        assert orjson.loads(redis_client.get(key))["explanation"] == "v7"
    finally:
        part.close()
