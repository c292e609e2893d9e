"""Trait probes: smaller steps after reversals, wider probes while rewards are flat."""

# ruff: noqa: S301 - unpickling our own learners

from __future__ import annotations

import pickle
import random

from dataflows.learner import make_learner
from dataflows.learner.traits import MAX_PROBE_DELTA
from schemas.agent import AgentSpec

SPEC = AgentSpec.model_validate({"persona": {"name": "x"}, "actions": ["a"],
                                 "traits": {"humor": 0.5, "warmth": 0.5}, "probe_share": 0.5})


def feed(lrn, rng: random.Random, n: int, reward) -> list[dict]:
    """``n`` decisions, half of them probes of a random trait and sign; publish after each."""
    docs = []
    for i in range(n):
        probe = None
        if rng.random() < 0.5:
            trait = rng.choice(["humor", "warmth"])
            probe = (trait, rng.choice([-1.0, 1.0]) * lrn.current_delta)
        lrn.update("*", "a", reward(probe, rng), float(i), probe=probe)
        doc = lrn.maybe_publish()
        if doc is not None:
            docs.append(doc)
    return docs


def test_a_reversal_halves_the_step():
    lrn = make_learner("ag", "default", SPEC, probe_min_count=3)
    for sign in (1.0, -1.0):
        for i in range(3):
            lrn.update("*", "a", 0.5 * sign, float(i), probe=("humor", 0.1))
            lrn.update("*", "a", -0.5 * sign - 0.01 * i, float(i), probe=("humor", -0.1))
        lrn.maybe_publish()
    assert lrn.traits["humor"] == 0.525  # +0.05, then back by half a step
    assert lrn.trait_moves["humor"] == (-1.0, 0.025)


def test_flat_rewards_widen_the_probes_and_a_clear_cost_narrows_them():
    lrn = make_learner("ag", "default", SPEC, probe_min_count=6)
    rng = random.Random(0)
    docs = feed(lrn, rng, 400, lambda probe, r: r.gauss(0.0, 0.3))  # no direction at all
    assert lrn.current_delta > 0.1
    assert any("probe delta 0.1 -> 0.2" in d["explanation"] for d in docs)
    assert all(d["probe"]["delta"] <= MAX_PROBE_DELTA for d in docs)
    # now every probe costs: the traits sit at a peak
    docs = feed(lrn, rng, 400, lambda probe, r: r.gauss(-0.5 if probe else 0.5, 0.3))
    assert lrn.current_delta == 0.1 and lrn.probe_backoff >= 1
    assert any("near a peak" in d["explanation"] for d in docs)
    clone = pickle.loads(pickle.dumps(lrn))
    assert clone.policy_dict() == lrn.policy_dict()


def test_traits_with_a_slope_move_without_widening_the_probes():
    lrn = make_learner("ag", "default", SPEC, probe_min_count=6)
    want = {"humor": 1.0, "warmth": -1.0}  # more humor and less warmth pay

    def slope(probe, r):
        return r.gauss(0.3 * want[probe[0]] * (1 if probe[1] > 0 else -1) if probe else 0.0, 0.3)

    docs = feed(lrn, random.Random(1), 300, slope)
    assert lrn.current_delta == 0.1
    assert lrn.traits["humor"] > 0.6 and lrn.traits["warmth"] < 0.4
    assert not any("probe delta" in d["explanation"] for d in docs)


def test_traitless_agents_keep_no_probe_state():
    lrn = make_learner("ag", "default", AgentSpec(persona={"name": "x"}, actions=["a"]))
    for i in range(50):
        lrn.update("*", "a", 0.1, float(i))
        lrn.maybe_publish()
    assert lrn.level_stats is None and lrn.probe_level == 0


def test_rounding_never_stretches_a_step_past_max_step():
    """Hypothesis found 0.8515625 - 0.0625 rounding to 0.789062 (a 0.0625005 step)."""
    from schemas.policy import SafetyRules

    spec = AgentSpec(persona={"name": "x"}, actions=["a"], traits={"warmth": 0.8515625})
    rules = SafetyRules.model_validate({"default": {"max_step": 0.0625}})
    lrn = make_learner("ag", "default", spec, safety=rules, probe_min_count=3, probe_z=0.5)
    for i, (r, sign) in enumerate([(0.0, -1), (0.0, -1), (0.0, 1), (0.0, 1), (0.0, 1),
                                   (1.0, -1)]):
        lrn.update("*", "a", r, float(i), probe=("warmth", 0.1 * sign))
        lrn.maybe_publish()
    assert 0.8515625 - lrn.traits["warmth"] == 0.0625
