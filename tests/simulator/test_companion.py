"""The companion world: signals move the right way with trait distance; the room-aware
distance is the expected distance over the rooms the world draws."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from schemas.events import FeedbackGiven, SignalObserved
from simulator.companion import (
    ROOMS,
    TRAITS,
    CompanionWorld,
    effective_taste,
    make_companion_people,
    make_companion_person,
    respond,
    room_context,
    room_distribution,
    room_trait_distance,
    satisfaction,
    trait_distance,
)


def _shifted(taste: dict[str, float], by: float) -> dict[str, float]:
    """Move every trait ``by`` away from the taste, towards the far end of [0, 1]."""
    return {t: v + by if v < 0.5 else v - by for t, v in taste.items()}


def _stats(dist: float, n: int = 600, room: int = 1) -> dict[str, float]:
    lat, length, sent, aband, reinv, replies = [], [], [], 0, 0, 0
    for i, person in enumerate(make_companion_people(6, seed=4)):
        traits = _shifted(effective_taste(person, room), dist)
        rng = random.Random(i)
        for _ in range(n):
            kinds = {s["kind"]: s["value"] for s in respond(person, traits, room, rng)["signals"]}
            if "reply_latency_ms" in kinds:
                replies += 1
                lat.append(kinds["reply_latency_ms"])
                length.append(kinds["message_length"])
                sent.append(kinds["sentiment"])
            aband += "abandonment" in kinds
            reinv += "reinvite" in kinds
    total = 6 * n
    return {
        "latency": float(np.median(lat)),
        "length": float(np.median(length)),
        "sentiment": float(np.mean(sent)),
        "abandonment": aband / total,
        "reinvite": reinv / total,
        "reply": replies / total,
    }


def test_signals_move_in_the_right_direction_with_trait_distance() -> None:
    near, mid, far = _stats(0.0), _stats(0.15), _stats(0.4)
    assert near["latency"] < mid["latency"] < far["latency"]
    assert near["length"] > mid["length"] > far["length"]
    assert near["sentiment"] > mid["sentiment"] > far["sentiment"]
    assert near["abandonment"] < mid["abandonment"] < far["abandonment"]
    assert near["reinvite"] > mid["reinvite"] > far["reinvite"]
    assert near["reply"] > far["reply"]


def test_satisfaction_falls_with_distance() -> None:
    person = make_companion_person(0, 9)
    taste = effective_taste(person, 1)
    prev = 1.0 + 1e-9
    for d in (0.0, 0.05, 0.1, 0.2, 0.3):
        s = satisfaction(person, _shifted(taste, d), 1)
        assert s < prev
        prev = s
    assert trait_distance(person, taste, 1) == 0.0


def test_rooms_shift_the_taste() -> None:
    person = make_companion_person(1, 9)
    dm, large = effective_taste(person, ROOMS["dm"]), effective_taste(person, ROOMS["large"])
    assert large["formality"] >= dm["formality"] and large["empathy"] <= dm["empathy"]
    assert satisfaction(person, dm, ROOMS["dm"]) > satisfaction(person, dm, ROOMS["large"])


def test_thumbs_are_sparse_and_agree_with_satisfaction() -> None:
    person = make_companion_person(2, 9)
    taste = effective_taste(person, 1)
    rng = random.Random(0)
    good = [f["value"] for _ in range(2000) for f in respond(person, taste, 1, rng)["feedback"]]
    bad = [
        f["value"]
        for _ in range(2000)
        for f in respond(person, _shifted(taste, 0.45), 1, rng)["feedback"]
    ]
    assert 0.04 < len(good) / 2000 < 0.12
    assert np.mean(good) > 0.8 and np.mean(bad) < -0.8


def test_world_is_seeded_and_events_validate() -> None:
    def run(seed: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        world = CompanionWorld(make_companion_person(0, seed), seed)
        out = []
        for i in range(200):
            ctx = world.context()
            traits = dict.fromkeys(TRAITS, (i % 5) / 4)
            out.append(
                (ctx, world.respond(traits, ctx, f"00000000-0000-0000-0000-{i:012d}", "agent-1"))
            )
        return out

    a, b = run(3), run(3)
    assert a == b and a != run(4)
    for _, res in a:
        for s in res["signals"]:
            SignalObserved.model_validate(s)
        for f in res["feedback"]:
            FeedbackGiven.model_validate(f)


@pytest.mark.parametrize("room", sorted(ROOMS.values()))
def test_bigger_rooms_reply_less(room: int) -> None:
    dm, here = _stats(0.1, n=200, room=1), _stats(0.1, n=200, room=room)
    assert here["reply"] <= dm["reply"] + 0.02


@pytest.mark.parametrize("rooms", [None, ["dm"], ["dm", "group"], ["small", "small", "large"]])
def test_room_distribution_is_the_law_of_room_context(rooms: list[str] | None) -> None:
    dist = room_distribution(rooms)
    assert sum(dist.values()) == pytest.approx(1.0)
    rng = random.Random(11)
    n = 20_000
    seen: dict[int, int] = {}
    for _ in range(n):
        size = room_context(rng, rooms)["room_size"]
        seen[size] = seen.get(size, 0) + 1
    assert set(seen) == set(dist)
    for size, p in dist.items():  # 4 standard errors at most
        assert abs(seen[size] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-9


def test_room_distribution_needs_a_room() -> None:
    with pytest.raises(ValueError):
        room_distribution([])


def test_room_trait_distance_is_the_expected_distance_over_the_rooms() -> None:
    person = make_companion_person(3, 9)
    traits = {"humor": 0.2, "empathy": 0.9, "formality": 0.4}  # the rest read as 0.5
    by_size = {size: trait_distance(person, traits, size) for size in ROOMS.values()}
    assert room_trait_distance(person, traits) == pytest.approx(sum(by_size.values()) / 4)
    assert room_trait_distance(person, traits, ["large"]) == by_size[40]
    expected = (2 * by_size[1] + by_size[12]) / 3
    assert room_trait_distance(person, traits, ["dm", "group", "dm"]) == pytest.approx(expected)
    full = {t: traits.get(t, 0.5) for t in TRAITS}
    assert room_trait_distance(person, full) == room_trait_distance(person, traits)


def test_only_a_single_room_taste_reaches_zero() -> None:
    person = make_companion_person(0, 1)
    for name, size in ROOMS.items():
        taste = effective_taste(person, size)
        assert room_trait_distance(person, taste, [name]) == 0.0
        assert room_trait_distance(person, taste) > 0.0  # the taste moves between rooms


def test_the_dm_taste_is_not_the_best_single_vector_over_rooms() -> None:
    """A vector between the rooms' tastes beats the DM taste, so closeness to the DM taste
    is the wrong target for one trait vector used in every room."""
    for person in make_companion_people(10, seed=0):
        dm = effective_taste(person, 1)
        sizes = list(ROOMS.values())
        mean = {t: float(np.mean([effective_taste(person, r)[t] for r in sizes])) for t in TRAITS}
        assert room_trait_distance(person, mean) < room_trait_distance(person, dm)


def test_the_world_measures_over_its_own_rooms() -> None:
    person = make_companion_person(1, 2)
    traits = dict.fromkeys(TRAITS, 0.3)
    assert CompanionWorld(person, 0).trait_distance(traits) == room_trait_distance(person, traits)
    dm_only = CompanionWorld(person, 0, rooms=["dm"])
    assert dm_only.trait_distance(traits) == trait_distance(person, traits, 1)
