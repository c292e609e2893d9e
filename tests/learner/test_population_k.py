"""How many archetypes a template's population has (dataflows.population_k via Population.fit).

Agents' value tables are drawn like the learner publishes them: per day part and action a
mean reward over a few rewards (binomial noise on a personal taste), plus the ``*`` bucket
that pools them. Three well-separated archetypes must come out as three, from 12 agents as
from 18; one taste as one; and no archetype may rest on fewer than ``min_size`` agents.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.learning import train_prior
from dataflows.population import Population
from dataflows.population_k import choose_k, cluster, loglik, min_cluster_size

ACTIONS = [f"act{i}" for i in range(10)]
PARTS = ["morning", "afternoon", "evening", "night"]


def taste(archetype: int) -> np.ndarray:
    """(day parts, actions): each archetype likes two actions of its own per day part."""
    t = np.full((len(PARTS), len(ACTIONS)), -0.5)
    for i in range(len(PARTS)):
        t[i, (3 * archetype + i) % 10] = t[i, (3 * archetype + i + 1) % 10] = 0.8
    return t


def buckets(rng: np.random.Generator, t: np.ndarray) -> dict[str, Any]:
    """A policy's ``buckets`` block for a person of taste ``t`` (personal noise, 2-11
    binomial rewards per cell)."""
    p = np.clip((t + rng.normal(0.0, 0.15, t.shape) + 1.0) / 2.0, 0.02, 0.98)
    n = rng.integers(2, 12, t.shape)
    wins = rng.binomial(n, p)
    out: dict[str, Any] = {}
    for i, part in enumerate(PARTS):
        vals = {a: 2.0 * wins[i, j] / n[i, j] - 1.0 for j, a in enumerate(ACTIONS) if n[i, j]}
        out[f"day_part={part}"] = {"values": vals,
                                   "counts": {a: int(n[i, j]) for j, a in enumerate(ACTIONS)}}
    tot_n, tot_w = n.sum(axis=0), wins.sum(axis=0)
    out["*"] = {"values": {a: 2.0 * tot_w[j] / tot_n[j] - 1.0 for j, a in enumerate(ACTIONS)
                           if tot_n[j]},
                "counts": {a: int(tot_n[j]) for j, a in enumerate(ACTIONS)}}
    return out


def population(archetypes: list[int], seed: int) -> Population:
    """One agent per entry of ``archetypes`` (its archetype's index)."""
    rng = np.random.default_rng(seed)
    pop = Population("default", "life", actions=ACTIONS)
    for i, a in enumerate(archetypes):
        pop.observe(f"ag{i}-{a}", buckets(rng, taste(a)))
    return pop


def groups(pop: Population, seed: int = 0) -> tuple[list[int], list[set[int]]]:
    """The prior's archetype sizes and, per archetype, the true archetypes of its agents
    (each agent goes to the archetype that explains its rewards best)."""
    doc = pop.fit(seed=seed)
    agents, cells, mean, count = pop.evidence()
    values = np.array([[a.values[b][act] for b, act in cells] for a in doc.archetypes])
    best = loglik(mean, count, values).argmax(axis=1)
    truth = [int(ag.rsplit("-", 1)[1]) for ag in agents]
    found = [{t for t, b in zip(truth, best, strict=True) if b == j}
             for j in range(len(doc.archetypes))]
    return [a.size for a in doc.archetypes], found


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("per", [4, 6])
def test_three_separated_archetypes_are_three_from_12_and_from_18_agents(per, seed):
    pop = population([a for a in range(3) for _ in range(per)], seed=seed)
    sizes, found = groups(pop, seed)
    assert sizes == [per, per, per]
    assert sorted(map(sorted, found)) == [[0], [1], [2]]  # each archetype is one taste


@pytest.mark.parametrize("per", [4, 6])
def test_trained_epsilon_greedy_life_populations_give_three_archetypes(per):
    # The measured problem: 12 epsilon-greedy agents of the life world (3 archetypes) gave 5-6
    # archetypes, 18 gave one. Their tables are sparse (one favourite per day part, a failed
    # exploration or two elsewhere) and every seed's people differ.
    found = [train_prior(seed, per, weeks=4, algorithm="epsilon_greedy") for seed in range(6)]
    ks = [len(doc.archetypes) for doc in found]
    assert sum(k == 3 for k in ks) >= 5, ks
    assert all(2 <= k <= 5 and min(a.size for a in doc.archetypes) >= 3
               for k, doc in zip(ks, found, strict=True)), ks


@pytest.mark.parametrize("n", [12, 24])
@pytest.mark.parametrize("seed", range(3))
def test_one_homogeneous_population_is_one_archetype(n, seed):
    doc = population([0] * n, seed=seed).fit(seed=seed)
    assert [a.size for a in doc.archetypes] == [n]
    assert "no split predicts" in doc.explanation


@pytest.mark.parametrize("tastes", [[0, 1], [0, 0, 1], [0, 1, 2], [0, 0, 1, 1], [0, 0, 0, 1, 1]])
def test_tiny_populations_are_one_archetype(tastes):
    # fewer than 2 x min_size (3) agents: even opposite tastes make no archetype of one or two
    doc = population(tastes, seed=0).fit(seed=0)
    assert [a.size for a in doc.archetypes] == [len(tastes)]
    assert "too few agents" in doc.explanation


def test_min_size_is_a_parameter_and_two_small_groups_split_at_exactly_twice_it():
    pop = population([0, 0, 0, 1, 1, 1], seed=0)
    assert sorted(a.size for a in pop.fit(seed=0).archetypes) == [3, 3]
    assert [a.size for a in pop.fit(seed=0, min_size=4).archetypes] == [6]


@pytest.mark.parametrize("seed", range(4))
def test_no_archetype_from_a_pair_of_outliers(seed):
    # 5 + 5 agents of two tastes and 2 of a third: the pair is no archetype of its own (it
    # may join a few others), and the two big tastes stay apart
    sizes, found = groups(population([0] * 5 + [1] * 5 + [2] * 2, seed=seed), seed)
    assert 2 <= len(sizes) <= 3 and min(sizes) >= 3
    assert not any({0, 1} <= f for f in found)


def test_min_share_bounds_archetypes_of_large_populations():
    # 100 agents: an archetype needs 5 (5%); 4 agents of a fourth taste are not one
    assert min_cluster_size(100) == 5
    pop = population([0] * 32 + [1] * 32 + [2] * 32 + [3] * 4, seed=2)
    sizes, found = groups(pop, seed=2)
    assert 3 <= len(sizes) <= 4 and min(sizes) >= 5
    assert found.count({3}) == 0  # the outliers are never an archetype alone
    assert not any(len(f - {3}) > 1 for f in found)  # the three big tastes stay apart


def test_fit_is_deterministic_under_the_seed_and_archetypes_pool_the_evidence():
    pop = population([a for a in range(3) for _ in range(4)], seed=3)
    first, again = pop.fit(seed=5), pop.fit(seed=5)
    assert [a.values for a in first.archetypes] == [a.values for a in again.archetypes]
    assert first.explanation == again.explanation
    # each archetype's favourite in each day part is one its taste likes
    liked = {a: {(f"day_part={p}", ACTIONS[j]) for i, p in enumerate(PARTS)
                 for j in np.flatnonzero(taste(a)[i] > 0)} for a in range(3)}
    for arch in first.archetypes:
        favs = {(b, max(row, key=row.__getitem__)) for b, row in arch.values.items() if b != "*"}
        assert any(favs <= s for s in liked.values())


def test_choose_k_directly_on_evidence_matrices():
    rng = np.random.default_rng(4)
    centres_ = rng.choice([-0.8, 0.8], size=(3, 20))
    mean = np.clip(np.repeat(centres_, 4, axis=0) + rng.normal(0, 0.3, (12, 20)), -1, 1)
    count = rng.integers(1, 10, (12, 20)).astype(float)
    k, gain = choose_k(mean, count, seed=0)
    assert k == 3 and gain[3] > 0 and gain[4] == -np.inf  # 4 x 3 agents: k=4 needs 12
    res = cluster(mean, count, 3, seed=0, min_size=3)
    assert res is not None and sorted(np.bincount(res[0]).tolist()) == [4, 4, 4]
    assert cluster(mean, count, 5, seed=0, min_size=3) is None  # 5 x 3 > 12 agents


def test_more_agents_than_the_sample_still_fit_every_agent():
    pop = population([a % 3 for a in range(650)], seed=5)
    doc = pop.fit(seed=0)
    assert sorted(a.size for a in doc.archetypes) == [216, 217, 217]
