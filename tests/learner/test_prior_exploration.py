"""With a population prior, epsilon-greedy explores where the prior points, exactly."""

# ruff: noqa: S301 - unpickling our own learners

from __future__ import annotations

import pickle
import random

from dataflows.learner import make_learner
from schemas.agent import AgentSpec
from schemas.policy import PolicyDocument
from schemas.priors import Archetype, PriorDocument

ACTIONS = ["a", "b", "c", "d", "e"]
PRIOR = PriorDocument(template="t", version=3, actions=ACTIONS, strength=4.0, archetypes=[
    Archetype(name="A", size=3, values={"*": {"a": 0.8, "b": 0.2, "c": -0.6, "d": -0.8,
                                              "e": -0.8}}),
    Archetype(name="B", size=2, values={"*": {"a": -0.6, "b": 0.1, "c": 0.8, "d": -0.8,
                                              "e": -0.8}})])


def spec(algorithm: str | None = None) -> AgentSpec:
    return AgentSpec.model_validate({"persona": {"name": "x"}, "actions": ACTIONS,
                                     "template": "t", "epsilon": 0.2, "algorithm": algorithm})


def test_exploration_follows_the_archetype_posterior_and_stays_exact():
    lrn = make_learner("ag", "default", spec(), prior=PRIOR)
    lrn.update("*", "a", 1.0, 0.0)
    doc = PolicyDocument.model_validate(lrn.maybe_publish())
    bp = doc.buckets["*"]
    probs = doc.action_probabilities("*", ACTIONS)
    assert bp.probs is not None and abs(sum(probs.values()) - 1) < 1e-9
    assert max(probs, key=probs.__getitem__) == "a"  # the greedy action keeps 1 - epsilon
    # exploration goes to the other archetype's favourite, not evenly to hopeless actions
    assert probs["c"] > probs["b"] > 0 and probs["d"] == probs["e"] > 0
    assert probs["a"] >= 1 - bp.epsilon
    rng = random.Random(3)
    for _ in range(500):  # the propensity logged is the probability of the pick
        action, p, _ = doc.choose("*", ACTIONS, rng)
        assert p == probs[action]


def test_prior_pseudo_rewards_count_toward_epsilon_decay():
    with_prior = make_learner("ag", "default", spec(), prior=PRIOR).policy_dict()
    without = make_learner("ag", "default", spec())
    without.update("*", "a", 1.0, 0.0)
    eps_prior = with_prior["buckets"]["*"]["epsilon"]
    eps_none = without.policy_dict()["buckets"]["*"]["epsilon"]
    # 5 valued actions x strength 4 = 20 pseudo-rewards: 0.2 * 20 / (20 + 20); without a
    # prior the optimistic initial values count the same (4 per action), plus the reward
    assert eps_prior == 0.1 and eps_none == round(0.2 * 20 / (20 + 20 + 1), 6)


def test_ignored_favourite_moves_mass_to_the_next_archetype():
    lrn = make_learner("ag", "default", spec(), prior=PRIOR)
    for i in range(3):
        lrn.update("*", "a", -1.0, float(i))
    doc = lrn.maybe_publish()
    probs = doc["buckets"]["*"]["probs"]
    assert max(probs, key=probs.get) == "c"
    assert doc["evidence"]["prior.weight.B"] > 0.9


def test_without_a_prior_exploration_is_optimistic_and_exact():
    lrn = make_learner("ag", "default", spec())
    # a: 3 of 5 accepted, mean +0.2 > 0 (the old greedy settled on it); with 4 pseudo-rewards
    # at +0.5 it reads (1 + 2) / 9 = 0.33 < 0.5: the untried actions are tried first
    for i, r in enumerate([1.0, 1.0, -1.0, 1.0, -1.0]):
        lrn.update("*", "a", r, float(i))
    raw = lrn.maybe_publish()
    bp = raw["buckets"]["*"]
    assert bp["values"] == {"a": 0.2} and raw["explanation"].startswith("a now leads")
    eps = bp["epsilon"]
    assert eps == round(0.2 * 20 / (20 + 20 + 5), 6)
    untried = round(eps / 5 + (1 - eps) / 4, 6)
    assert bp["probs"] == {"a": round(eps / 5, 6), "b": untried, "c": untried, "d": untried,
                           "e": untried}
    doc = PolicyDocument.model_validate(raw)
    probs = doc.action_probabilities("*", ACTIONS)
    rng = random.Random(5)
    for _ in range(300):
        action, p, _ = doc.choose("*", ACTIONS, rng)
        assert p == probs[action]
    # a well-established leader keeps 1 - epsilon; without exploration it is played alone
    for i in range(20):
        lrn.update("*", "b", 1.0, 10.0 + i)
    doc = PolicyDocument.model_validate(lrn.maybe_publish())
    assert max(doc.buckets["*"].probs, key=doc.buckets["*"].probs.__getitem__) == "b"
    assert doc.action_probabilities("*", ACTIONS, explore=False)["b"] == 1.0


def test_detaching_the_prior_and_pickling_keep_it_consistent():
    lrn = make_learner("ag", "default", spec(), prior=PRIOR)
    lrn.update("*", "c", 1.0, 0.0)
    lrn.maybe_publish()
    clone = pickle.loads(pickle.dumps(lrn))
    assert clone.policy_dict() == lrn.policy_dict()
    lrn.set_prior(None)
    lrn.update("*", "c", 1.0, 1.0)
    bp = lrn.maybe_publish()["buckets"]["*"]  # back to the optimistic values, not the prior's
    eps = bp["epsilon"]
    assert eps == round(0.2 * 20 / (20 + 20 + 2), 6)
    assert bp["probs"] == {a: round(eps / 5 + (1 - eps if a == "c" else 0.0), 6)
                           for a in ACTIONS}
