"""The shared contract every learner meets: clones, pickles small, deterministic, exact."""

# ruff: noqa: S301 - unpickling our own learners

from __future__ import annotations

import copy
import pickle
import random

import pytest

from dataflows.learner import LEARNERS, make_learner
from schemas.agent import AgentSpec
from schemas.policy import PolicyDocument

ACTIONS = ["a", "b", "c", "d"]


def spec_for(algo: str, **extra: object) -> AgentSpec:
    return AgentSpec.model_validate({
        "persona": {"name": "x"}, "actions": ACTIONS, "context_keys": ["k"],
        "traits": {"humor": 0.5, "warmth": 0.4}, "trait_bounds": {"humor": [0.2, 0.8]},
        "algorithm": algo, "epsilon": 0.3, **extra})


def drive(lrn, n: int = 300, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        probe = (rng.choice(["humor", "warmth"]), rng.choice([-0.1, 0.1])) \
            if rng.random() < 0.4 else None
        lrn.update(f"k={i % 3}", rng.choice(ACTIONS), rng.uniform(-1, 1), float(i), probe=probe)
        doc = lrn.maybe_publish()
        if doc is not None:
            docs.append(doc)
    return docs


@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_deterministic_under_seed(algo):
    a = drive(make_learner("ag", "t", spec_for(algo)))
    b = drive(make_learner("ag", "t", spec_for(algo)))
    assert a == b and a


@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_clones_and_pickles_small(algo):
    lrn = make_learner("ag", "t", spec_for(algo))
    drive(lrn, 200)
    blob = pickle.dumps(lrn, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) < 12_000, len(blob)  # no RNG, no River bandit objects in the state
    for clone in (pickle.loads(blob), copy.deepcopy(lrn)):
        assert clone.policy_dict() == lrn.policy_dict()
        # the clone continues exactly like the original
        assert drive(clone, 100, seed=9) == drive(pickle.loads(blob), 100, seed=9)


@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_published_distribution_is_exact(algo):
    """The propensity choose() returns is the probability of the pick, and sums to one."""
    lrn = make_learner("ag", "t", spec_for(algo))
    docs = drive(lrn, 120)
    doc = PolicyDocument.model_validate(docs[-1])
    for bucket in ("k=0", "k=1", "k=9"):
        probs = doc.action_probabilities(bucket, ACTIONS)
        assert abs(sum(probs.values()) - 1) < 1e-9
        assert all(p > 0 for p in probs.values())  # every action stays reachable
        rng = random.Random(1)
        counts = dict.fromkeys(ACTIONS, 0)
        for _ in range(4000):
            action, prop, _ = doc.choose(bucket, ACTIONS, rng)
            assert prop == probs[action]
            counts[action] += 1
        for a in ACTIONS:
            assert abs(counts[a] / 4000 - probs[a]) < 0.035


def test_algorithm_follows_a_late_spec():
    lrn = make_learner("ag", "t", None)
    lrn.update("k=1", "a", 1.0, 0.0)
    lrn.set_spec(spec_for("thompson"))
    doc = lrn.maybe_publish()
    assert doc["algorithm"] == "thompson" and "probs" in doc["buckets"]["k=1"]
    assert pickle.loads(pickle.dumps(lrn)).algorithm == "thompson"


def test_rollback_publishes_a_new_version_with_old_values():
    lrn = make_learner("ag", "t", spec_for("epsilon_greedy"))
    drive(lrn, 50)
    old = lrn.policy_dict()
    drive(lrn, 50, seed=3)
    cur = lrn.version
    lrn.rollback(old, ts=1e6)
    doc = lrn.maybe_publish()
    assert doc["version"] == cur + 1 and doc["parent_version"] == cur
    assert doc["explanation"] == f"rolled back to v{old['version']}."
    for b, bp in old["buckets"].items():
        assert doc["buckets"][b]["values"] == pytest.approx(bp["values"])
    assert doc["traits"] == old["traits"]
