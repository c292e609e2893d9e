"""Priors end to end without services: gateway v0 == learner start, AgentUpserted carries the
prior into the dataflow's agent state, and the population step un-blends and refits on time."""

from __future__ import annotations

import uuid
from typing import Any

from dataflows.agent_state import AgentState, JoinConfig
from dataflows.learner import make_learner
from dataflows.population_flow import PopulationLogic
from dataflows.reward_model import load_reward_model
from gateway.state import initial_policy
from schemas.agent import AgentSpec
from schemas.events import AgentUpserted, DecisionMade, FeedbackGiven
from schemas.priors import Archetype, PriorDocument
from schemas.settings import Settings

ACTIONS = ["a", "b", "c"]
SPEC = AgentSpec.model_validate({"persona": {"name": "x"}, "actions": ACTIONS,
                                 "template": "coach", "epsilon": 0.1})
PRIOR = PriorDocument(template="coach", version=9, actions=ACTIONS, archetypes=[
    Archetype(name="arch0", size=6, values={"*": {"a": 0.8, "b": -0.6, "c": -0.5}}),
    Archetype(name="arch1", size=2, values={"*": {"a": -0.7, "b": 0.8, "c": -0.5}})])


def test_gateway_version0_equals_the_learners_start_from_the_same_prior():
    v0 = initial_policy("default", "ag", SPEC, PRIOR)
    lrn = make_learner("ag", "default", SPEC, prior=PRIOR)
    first = lrn.policy_dict()
    assert v0.buckets["*"].values == first["buckets"]["*"]["values"]
    assert {k: v for k, v in v0.evidence.items() if k.startswith("prior.")} == {
        k: v for k, v in first["evidence"].items() if k.startswith("prior.")}


def _events(likes: str, n: int) -> list[Any]:
    out: list[Any] = []
    for i in range(n):
        action = ACTIONS[i % 3]
        d = DecisionMade(decision_id=uuid.uuid4(), agent_id="ag", user_id="u", action=action,
                         propensity=1 / 3, explored=False, policy_version=0, bucket="*")
        out += [d, FeedbackGiven(decision_id=d.decision_id, agent_id="ag", user_id="u",
                                 kind="thumbs", value=1.0 if action == likes else -1.0,
                                 ts=d.ts)]
    return out


def test_agent_upserted_with_a_prior_starts_the_learner_from_it():
    st = AgentState("default", "ag", JoinConfig(load_reward_model(), idle=None))
    st.ingest(AgentUpserted(agent_id="ag", spec=SPEC, prior=PRIOR), ("agents", 0, 0), now=0.0)
    for ev in _events("b", 3):
        st.ingest(ev, ("x", 0, 0), now=0.0)
    out = st.drain()
    doc = out.policies[-1]
    assert st.learner.prior == PRIOR
    assert doc["evidence"]["prior.weight.arch1"] > 0.9  # b-lovers, from three rewards
    assert max(ACTIONS, key=doc["buckets"]["*"]["values"].__getitem__) == "b"
    # a later upsert without a prior (spec update) keeps the prior
    st.ingest(AgentUpserted(agent_id="ag", spec=SPEC), ("agents", 0, 1), now=0.0)
    st.drain()
    assert st.learner.prior == PRIOR


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _policy(agent: str, likes: str, prior: PriorDocument | None) -> tuple[str, tuple[Any, ...]]:
    lrn = make_learner(agent, "default", SPEC, prior=prior)
    for i in range(24):
        act = ACTIONS[i % 3]
        lrn.update("*", act, 1.0 if act == likes else -1.0, float(i))
    doc = lrn.maybe_publish()
    assert doc is not None
    return "default:coach", ("policy", agent, doc["buckets"], doc["evidence"], 1)


def test_population_refits_on_time_and_unblends_agents_that_started_from_its_prior():
    s = Settings(population_refit_every=1000, population_refit_seconds=2.0,
                 population_min_rewards=10)
    clock = Clock()
    logic = PopulationLogic(s, clock)
    out, _ = logic.on_batch([_policy(f"p{i}", "a" if i % 2 else "b", None) for i in range(8)])
    assert list(out) == [] and logic.notify_at() is not None
    clock.t += 2.5
    (first,), _ = logic.on_notify()
    assert first.version == 8 and len(first.archetypes) == 2 and logic.notify_at() is None
    # An agent that started from that prior publishes blended values; the population sees
    # its own means (+1 for the liked action), not values pulled toward the prior.
    key, item = _policy("late", "c", first)
    assert item[2]["*"]["values"]["c"] < 0.99  # blended with the prior
    logic.on_batch([(key, item)])
    assert logic.pop is not None
    own, n = logic.pop.tables["late"]["*"]["c"]
    assert abs(own - 1.0) < 1e-3 and n == 8  # weights are published to 4 decimals
    # a busy template: refit every 3 tables, but at most once per second
    busy = PopulationLogic(s.model_copy(update={"population_refit_every": 3}), clock)
    fits = [len(list(busy.on_batch([_policy(f"b{i}", "a" if i % 2 else "b", None)])[0]))
            for i in range(12)]
    assert fits[:3] == [0, 0, 1] and sum(fits[3:]) == 0  # the clock did not move
    assert busy.notify_at() is not None
    clock.t += 1.0
    (again,), _ = busy.on_notify()
    assert again.version == 12
    snap = logic.snapshot()
    restored = PopulationLogic(s, clock, snap)
    assert restored.pop is not None and restored.pop.tables == logic.pop.tables
    assert restored.priors.keys() == {8}
