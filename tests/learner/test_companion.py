"""Companion world: learned traits move toward each person's hidden taste, inside bounds.

"Toward the taste" is measured over the rooms the person is met in
(:func:`simulator.companion.room_trait_distance`): the agent has one trait vector for every
room, while the person's taste shifts with the room."""

from __future__ import annotations

import random

import pytest

from bench.learning import RewardflowCompanion, companion_reward, companion_spec, run_companion
from bench.learning_companion import LaggedCompanion
from dataflows.reward_model import load_reward_model
from schemas.agent import AgentSpec
from simulator import companion as comp


def play(person: comp.CompanionPerson, seed: int, n: int) -> tuple[float, float, list[dict]]:
    model = load_reward_model()
    spec = AgentSpec.model_validate(companion_spec())
    pol = RewardflowCompanion("epsilon_greedy")
    agent = f"t{seed}-{person.person_id}"
    pol.register(agent, spec)
    world = comp.CompanionWorld(person, seed)
    rng = random.Random(f"{seed}:{agent}")
    start = world.trait_distance(pol.traits_now(agent))
    seen = []
    for t in range(n):
        ctx = world.context()
        _, traits, token = pol.decide(agent, ctx, rng)
        out = world.respond(traits, ctx)
        pol.learn(agent, token, companion_reward(model, out), float(t))
        seen.append(dict(pol.traits_now(agent)))
        for tr, v in traits.items():  # what was actually sent, probes included
            lo, hi = spec.bounds_for(tr)
            assert lo - 1e-9 <= v <= hi + 1e-9
    return start, world.trait_distance(pol.traits_now(agent)), seen


@pytest.mark.parametrize("seed", [0, 1])
def test_traits_move_toward_taste_and_stay_in_bounds(seed):
    spec = AgentSpec.model_validate(companion_spec())
    for person in comp.make_companion_people(4, seed=seed):
        start, end, seen = play(person, seed, 800)
        for traits in seen:
            for tr, v in traits.items():
                lo, hi = spec.bounds_for(tr)
                assert lo <= v <= hi
        assert end < start, (person.person_id, start, end)


def test_run_companion_reports_the_room_aware_distance_and_the_dm_one():
    people = comp.make_companion_people(3, seed=7)
    res = run_companion(people, RewardflowCompanion("epsilon_greedy"), 60, seed=7, block=20)
    start = dict(AgentSpec.model_validate(companion_spec()).traits)
    rows = res["per_person"]
    assert [r[0] for r in rows] == [f"c7-{p.person_id}" for p in people]
    for person, (_, d0, d1, dm0, dm1) in zip(people, rows, strict=True):
        assert d0 == comp.room_trait_distance(person, start)
        assert dm0 == comp.trait_distance(person, start, 1)
        assert d1 > 0.0 and dm1 >= 0.0
    assert res["trait_distance_start"] == pytest.approx(sum(r[1] for r in rows) / 3)
    assert res["trait_distance_end"] == pytest.approx(sum(r[2] for r in rows) / 3)
    assert res["dm_trait_distance_start"] == pytest.approx(sum(r[3] for r in rows) / 3)
    assert res["people_closer_at_end"] == pytest.approx(sum(r[2] < r[1] for r in rows) / 3)
    assert res["dm_people_closer_at_end"] == pytest.approx(sum(r[4] < r[3] for r in rows) / 3)
    assert len(res["trait_distance_curve"]) == 2 + 60 // 20  # start, t=0, each block end


def test_lagged_companion_learns_each_reward_lag_decisions_late():
    pol = LaggedCompanion("epsilon_greedy", lag=3)
    spec = AgentSpec.model_validate(companion_spec())
    pol.register("a", spec)
    rng = random.Random(0)
    ctx = {"room": "dm", "room_size": 1}
    for t in range(5):
        _, _, token = pol.decide("a", ctx, rng)
        pol.learn("a", token, 1.0, float(t))
        assert pol.learners["a"].total_rewards == max(0, t + 1 - 3)
    assert pol.name == "rewardflow-epsilon_greedy-lag3"
