"""Population priors: archetypes found from the population; new people read fast."""

# ruff: noqa: S301 - unpickling our own learners

from __future__ import annotations

import pickle

from bench.learning import interactions_to_target, rewardflow_backend, train_prior
from simulator.life import make_people
from simulator.runner import run_life


def test_prior_finds_archetypes_and_speeds_up_new_people():
    prior = train_prior(seed=0, per_archetype=4, weeks=4, algorithm="ucb")
    assert len(prior.archetypes) >= 2
    people = make_people(2, seed=0)
    with_prior = run_life(people, rewardflow_backend(0, "ucb", prior=prior), weeks=1, seed=0,
                          progress=False)
    without = run_life(people, rewardflow_backend(0, "ucb"), weeks=1, seed=0, progress=False)
    hits_p = interactions_to_target(with_prior.records)
    hits_n = interactions_to_target(without.records)
    horizon = 29
    fast = sorted(h or horizon for h in hits_p.values())
    slow = sorted(h or horizon for h in hits_n.values())
    assert fast[len(fast) // 2] <= 8, hits_p
    assert sum(fast) < sum(slow)


def test_learner_with_prior_pickles_and_weighs_archetypes():
    from dataflows.learner import make_learner
    from schemas.agent import AgentSpec
    from schemas.priors import Archetype, PriorDocument

    prior = PriorDocument(template="t", actions=["a", "b"], archetypes=[
        Archetype(name="A", size=5, values={"*": {"a": 0.9, "b": -0.9}}),
        Archetype(name="B", size=5, values={"*": {"a": -0.9, "b": 0.9}})])
    spec = AgentSpec(persona={"name": "x"}, actions=["a", "b"], template="t")
    lrn = make_learner("ag", "default", spec, prior=prior)
    lrn.update("*", "a", -1.0, 0.0)
    doc = lrn.maybe_publish()
    assert doc["evidence"]["prior.weight.B"] > 0.9
    assert doc["buckets"]["*"]["values"]["b"] > 0.5  # untried, but the prior says yes
    clone = pickle.loads(pickle.dumps(lrn))
    assert clone.policy_dict() == lrn.policy_dict()


def test_learning_sweep_reports_each_arm_per_archetype(capsys) -> None:
    """``bench.learning_sweep life`` at its smallest: both arms, each archetype's figures."""
    from bench.learning_sweep import sweep_life

    rows = sweep_life([0], ["epsilon_greedy"], per_archetype=1, weeks=1,
                      train_per_archetype=1, train_weeks=1)
    assert set(rows) == {"epsilon_greedy|prior|0", "epsilon_greedy|no prior|0"}
    for per in rows.values():
        assert set(per) == {"night_owl", "introvert", "workhorse"}
        for fig in per.values():
            assert 0 < fig["week4"] <= 1.5
            assert len(fig["hits"]) == 1 and fig["median"] == fig["hits"][0]
    out = capsys.readouterr().out
    assert "pooled over seeds" in out and "no prior" in out
