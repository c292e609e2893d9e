"""Live prior hand-off: the population flow's ``PriorAssigned`` events and the main flow
applying them (Bytewax testing runtime, no services; the broker round trip is in
``tests/test_population_loop.py``)."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflows import flow as main_flow
from dataflows import population_flow
from dataflows.learner import make_learner
from dataflows.population_metrics import PopulationMetrics
from schemas.agent import AgentSpec
from schemas.events import (
    AgentUpserted,
    DecisionMade,
    FeedbackGiven,
    PriorAssigned,
    derived_id,
    dump_event,
    parse_event,
)
from schemas.priors import PriorDocument
from schemas.settings import Settings
from tests.dataflows.streams import T0, to_messages

ACTIONS = ["a", "b", "c"]
DAY = 86400.0
S = Settings(topic_prefix="p", population_refit_every=7, population_refit_seconds=3600,
             population_min_refit_seconds=0, population_min_rewards=10,
             population_handoff_seconds=DAY, population_handoff_min_rewards=28)


def _spec(template: str = "coach") -> AgentSpec:
    return AgentSpec.model_validate({"persona": {"name": "x"}, "actions": ACTIONS,
                                     "template": template})


class _Agents:
    """Learners whose published documents feed the population flow, as the main flow's do."""

    def __init__(self) -> None:
        self.learners: dict[str, object] = {}
        self.offsets = itertools.count(1000)

    def policy(self, agent: str, likes: str, rewards: int, day: int) -> KafkaSourceMessage:
        lrn = self.learners.setdefault(agent, make_learner(agent, "default", _spec()))
        while lrn.total_rewards < rewards:  # type: ignore[attr-defined]
            act = ACTIONS[lrn.total_rewards % 3]  # type: ignore[attr-defined]
            lrn.update("*", act, 1.0 if act == likes else -1.0, 0.0)  # type: ignore[attr-defined]
        doc = lrn.policy_dict()  # type: ignore[attr-defined]
        ts = (T0 + timedelta(days=day)).isoformat()
        ev = {"event_id": str(uuid.uuid4()), "tenant": "default", "ts": ts,
              "schema_version": 1, "type": "PolicyUpdated", "agent_id": agent,
              "version": doc["version"], "policy": doc}
        return KafkaSourceMessage(agent.encode(), orjson.dumps(ev), topic=S.topics.policies,
                                  partition=0, offset=next(self.offsets))


def _registered(agents: list[str]) -> list[KafkaSourceMessage]:
    return [KafkaSourceMessage(a.encode(), dump_event(AgentUpserted(agent_id=a, spec=_spec())),
                               topic=S.topics.agents, partition=0, offset=i)
            for i, a in enumerate(agents)]


def _population(msgs: list[KafkaSourceMessage]) -> tuple[list[PriorDocument],
                                                         list[KafkaSinkMessage]]:
    kafka: list[KafkaSinkMessage] = []
    redis: list[PriorDocument] = []
    ticks = itertools.count(0.0, 10.0)  # wall clock: 10 s per call, so no refit is held back
    flow = population_flow.build_flow(TestingSource(msgs, batch_size=1), TestingSink(kafka),
                                      TestingSink(redis), S, clock=lambda: next(ticks),
                                      metrics=PopulationMetrics())
    run_main(flow)
    return redis, kafka


def test_live_agents_get_the_prior_once_they_have_enough_rewards_and_at_most_daily():
    agents = [f"ag{i}" for i in range(6)] + ["young"]
    likes = {a: "a" if i % 2 else "b" for i, a in enumerate(agents)}
    src = _Agents()
    msgs = _registered(agents)
    # day 0: six agents with 30 rewards, one with 12 -> a fit with two archetypes, handed
    # to the six; an hour later: another fit, no hand-off; day 1: the young one has 30 too
    msgs += [src.policy(a, likes[a], 12 if a == "young" else 30, 0) for a in agents]
    msgs += [src.policy(a, likes[a], 14 if a == "young" else 31, 0) for a in agents]
    msgs += [src.policy(a, likes[a], 32, 1) for a in agents]
    priors, kafka = _population(msgs)

    assert all(m.topic == S.topics.agents for m in kafka)  # no dead letters
    handed = [parse_event(m.value) for m in kafka]
    assert all(isinstance(e, PriorAssigned) for e in handed)
    assert [m.key for m in kafka] == [e.agent_id.encode() for e in handed]  # keyed by agent
    versions = sorted({e.prior.version for e in handed})
    assert len(versions) == 2 and len(priors) == 3  # three fits, two hand-offs
    first = sorted(e.agent_id for e in handed if e.prior.version == versions[0])
    second = sorted(e.agent_id for e in handed if e.prior.version == versions[1])
    assert first == [f"ag{i}" for i in range(6)]
    assert second == sorted(agents)
    by_version = {p.version: p for p in priors}
    for e in handed:
        assert e.prior == by_version[e.prior.version] and len(e.prior.archetypes) == 2
        assert e.template == "coach"
        assert e.event_id == derived_id("prior", "default", "coach", e.prior.version,
                                        e.agent_id)
        day = 0 if e.prior.version == versions[0] else 1
        assert e.ts == T0 + timedelta(days=day)  # the population's event time


def test_priors_handed_off_are_kept_for_unblending_past_the_newest_fits():
    logic = population_flow.PopulationLogic(
        S.model_copy(update={"population_refit_every": 1}), clock=itertools.count().__next__,
        metrics=PopulationMetrics())
    src = _Agents()
    agents = [f"ag{i}" for i in range(6)]

    def feed(rewards: int, day: int) -> list[object]:
        out: list[object] = []
        for i, a in enumerate(agents):
            msg = src.policy(a, "a" if i % 2 else "b", rewards, day)
            item = population_flow.parse(msg, S.topics.policies)
            _, routed = population_flow.join_template(("coach", None, 0), item[1])
            out += logic.on_batch([("default:coach", routed[0][1])])[0]
        return out

    handed = [x for x in feed(30, 0) if isinstance(x, KafkaSinkMessage)]
    version = parse_event(handed[0].value).prior.version  # type: ignore[attr-defined]
    for r in range(31, 40):  # many more fits the same day: none handed off
        assert not [x for x in feed(r, 0) if isinstance(x, KafkaSinkMessage)]
    assert version in logic.priors and len(logic.priors) == population_flow.KEEP_PRIORS + 1
    restored = population_flow.PopulationLogic(S, clock=lambda: 0.0, resume=logic.snapshot(),
                                               metrics=PopulationMetrics())
    assert restored.handoff.versions == [version] and restored.handoff.last is not None


def _main_run(events) -> tuple[list[dict], list[dict]]:
    settings = Settings(topic_prefix="t", reward_window_seconds=60, idle_watermark_seconds=None)
    kafka: list[KafkaSinkMessage] = []
    redis: list[dict] = []
    run_main(main_flow.build_flow(TestingSource(to_messages(events)), TestingSink(kafka),
                                  TestingSink(redis), settings))
    policies = [orjson.loads(m.value) for m in kafka if m.topic == "t.policies"]
    return policies, [r for r in redis if r["agent_id"] == "ava"]


def test_the_flow_applies_an_assigned_prior_in_event_time_and_publishes_at_once():
    from schemas.priors import Archetype

    prior = PriorDocument(template="coach", version=42, agents=6, actions=ACTIONS, archetypes=[
        Archetype(name="arch0", size=3, values={"*": {"a": 0.8, "b": -0.6, "c": -0.6}}),
        Archetype(name="arch1", size=3, values={"*": {"a": -0.6, "b": 0.8, "c": -0.6}})])
    assigned = PriorAssigned(event_id=derived_id("prior", "default", "coach", 42, "ava"),
                             agent_id="ava", template="coach", prior=prior,
                             ts=T0 + timedelta(seconds=35))
    other = PriorAssigned(agent_id="ava", template="another", prior=prior.model_copy(
        update={"template": "another", "version": 43}), ts=T0 + timedelta(seconds=36))
    events: list[tuple[str, object]] = [
        ("t.agents", AgentUpserted(agent_id="ava", spec=_spec(), ts=T0))]
    for i in range(6):  # ava likes b
        ts = T0 + timedelta(seconds=10 * i + 1)
        d = DecisionMade(decision_id=uuid.uuid4(), agent_id="ava", user_id="u",
                         action=ACTIONS[i % 3], propensity=1 / 3, explored=False,
                         policy_version=0, bucket="*", ts=ts)
        events += [("t.decisions", d), ("t.signals", FeedbackGiven(
            decision_id=d.decision_id, agent_id="ava", user_id="u", kind="thumbs",
            value=1.0 if d.action == "b" else -1.0, ts=ts + timedelta(seconds=1)))]
        if i == 3:  # read before the watermark passes its time: applied at 35 s
            events += [("t.agents", assigned), ("t.agents", other)]
    events.append(("t.agents", assigned))  # a replayed hand-off, read long after
    policies, snaps = _main_run(events)

    handed = [p for p in policies if p["policy"]["evidence"].get("prior.version") == 42.0]
    assert handed, [p["policy"]["explanation"] for p in policies]
    first = handed[0]["policy"]
    assert first["explanation"].startswith("population prior v42 of template 'coach'")
    # applied in event-time order: after the 4 rewards up to 35 s, before the later ones
    assert first["evidence"]["rewards"] == 4.0
    assert first["evidence"]["prior.weight.arch1"] > 0.9  # ava's rewards say "likes b"
    assert first["buckets"]["*"]["values"]["b"] > first["buckets"]["*"]["values"]["a"]
    assert not any("another" in p["policy"]["explanation"] for p in policies)
    final = max(snaps, key=lambda r: r["seq"])["summary"]
    assert final["counts"]["agents"] == 3  # the registration, the hand-off, the other template's
    assert final["counts"]["duplicates"] == 1  # the repeated hand-off
