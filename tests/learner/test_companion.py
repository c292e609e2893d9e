"""Companion world: learned traits move toward each person's hidden taste, inside bounds."""

from __future__ import annotations

import random

import pytest

from bench.learning import RewardflowCompanion, companion_reward, companion_spec
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
    start = comp.trait_distance(person, pol.traits_now(agent), 1)
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
    return start, comp.trait_distance(person, pol.traits_now(agent), 1), seen


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
