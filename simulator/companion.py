"""The companion world: people with hidden trait tastes who answer an agent implicitly.

A companion agent talks with people in rooms, from a DM to a large group. Each decision
carries the agent's ``traits`` (humor, empathy, assertiveness, formality, curiosity in
[0, 1], possibly with one trait probed by +/-delta). Each simulated person has a hidden
*taste*: the trait values they like best, how much each trait matters to them and how
tolerant they are. Rooms shift the taste: in bigger rooms people want a little more humor
and formality and a little less empathy (intimacy belongs in DMs).

How close the agent's traits are to the (room-shifted) taste gives a satisfaction::

    d = sqrt(sum_t w_t (trait_t - taste_t)^2 / sum_t w_t)    # weighted RMS distance
    s = exp(-(d / tolerance)^2)                              # 1 = perfect match

and ``s`` drives the implicit signals (the kinds of :mod:`schemas.kinds`):

==================  =====================================================================
reply_latency_ms    the person replies with probability ``0.3 + 0.65 s`` (less in big
                    rooms); latency is log-normal with median ``90 s * exp(-2.3 s)``
message_length      characters of the reply, log-normal around ``15 + 185 s``
sentiment           ``1.6 (s - 0.5)`` plus noise, clipped to [-1, 1]
abandonment         no reply, and with probability ``0.6 (1 - s)`` the person leaves (1.0)
reinvite            with probability ``0.4 s^2`` the person invites the agent back (1.0)
thumbs (feedback)   sparse: with probability 0.08, +1 if ``s`` plus noise is above 0.5 else -1
==================  =====================================================================

Everything is pure and seeded: :func:`respond` takes an explicit ``random.Random``.

>>> p = make_companion_person(0, seed=1)
>>> good = satisfaction(p, effective_taste(p, 1), room_size=1)
>>> bad = satisfaction(p, {t: 1.0 - v for t, v in effective_taste(p, 1).items()}, room_size=1)
>>> round(good, 3), bad < 0.5
(1.0, True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRAITS: tuple[str, ...] = ("humor", "empathy", "assertiveness", "formality", "curiosity")
#: Room kinds and their sizes (number of people in the room).
ROOMS: dict[str, int] = {"dm": 1, "small": 4, "group": 12, "large": 40}
#: Taste shift per unit of ``log10(room_size)`` (a 40-person room is about 1.6 units).
ROOM_SHIFT: dict[str, float] = {"humor": 0.08, "empathy": -0.10, "formality": 0.10}
#: A trait the agent does not send reads as this value.
DEFAULT_TRAIT = 0.5
THUMBS_RATE = 0.08


@dataclass(frozen=True)
class CompanionPerson:
    """A person with a hidden taste for the agent's traits.

    Attributes
    ----------
    person_id
        Stable id, e.g. ``"companion-3"``.
    taste
        Preferred value of each trait in a DM.
    weights
        How much each trait matters (positive).
    tolerance
        Distance at which satisfaction falls to ``1/e``.
    chattiness
        Scales reply probability and message length.
    """

    person_id: str
    taste: Mapping[str, float]
    weights: Mapping[str, float]
    tolerance: float
    chattiness: float


def make_companion_person(index: int, seed: int) -> CompanionPerson:
    """Person ``index``; the same arguments give the same person.

    >>> make_companion_person(2, 5) == make_companion_person(2, 5)
    True
    >>> make_companion_person(2, 5).taste == make_companion_person(3, 5).taste
    False
    """
    rng = np.random.default_rng([seed, 1_000_003, index])
    taste = {t: round(float(rng.beta(2.0, 2.0)), 6) for t in TRAITS}
    weights = {t: round(float(rng.uniform(0.5, 2.0)), 6) for t in TRAITS}
    tolerance = round(float(rng.uniform(0.15, 0.3)), 6)
    chattiness = round(float(rng.uniform(0.7, 1.3)), 6)
    return CompanionPerson(f"companion-{index}", taste, weights, tolerance, chattiness)


def make_companion_people(n: int, seed: int) -> list[CompanionPerson]:
    """``n`` people."""
    return [make_companion_person(i, seed) for i in range(n)]


def effective_taste(person: CompanionPerson, room_size: int) -> dict[str, float]:
    """The person's taste in a room of ``room_size`` people.

    >>> p = make_companion_person(0, 1)
    >>> effective_taste(p, 40)["formality"] > effective_taste(p, 1)["formality"]
    True
    """
    units = math.log10(max(1, room_size))
    return {
        t: min(1.0, max(0.0, v + ROOM_SHIFT.get(t, 0.0) * units)) for t, v in person.taste.items()
    }


def trait_distance(person: CompanionPerson, traits: Mapping[str, float], room_size: int) -> float:
    """Weighted RMS distance of the agent's ``traits`` from the person's taste in this room.

    >>> p = make_companion_person(0, 1)
    >>> trait_distance(p, effective_taste(p, 4), 4)
    0.0
    """
    taste = effective_taste(person, room_size)
    num = sum(
        person.weights[t] * (float(traits.get(t, DEFAULT_TRAIT)) - taste[t]) ** 2 for t in TRAITS
    )
    return math.sqrt(num / sum(person.weights.values()))


def satisfaction(person: CompanionPerson, traits: Mapping[str, float], room_size: int) -> float:
    """``exp(-(d / tolerance)^2)`` in (0, 1]; 1 when the traits match the taste exactly."""
    d = trait_distance(person, traits, room_size)
    return math.exp(-((d / person.tolerance) ** 2))


def room_distribution(rooms: Sequence[str] | None = None) -> dict[int, float]:
    """Probability of each room size under :func:`room_context` with the same ``rooms``.

    :func:`room_context` draws a room name uniformly from ``rooms`` (default: every room of
    :data:`ROOMS`), so a size's probability is the share of the names with that size.

    >>> room_distribution()
    {1: 0.25, 4: 0.25, 12: 0.25, 40: 0.25}
    >>> room_distribution(["dm", "dm", "large"])
    {1: 0.6666666666666666, 40: 0.3333333333333333}
    """
    names = list(rooms) if rooms is not None else list(ROOMS)
    if not names:
        msg = "no rooms"
        raise ValueError(msg)
    out: dict[int, float] = {}
    for name in names:
        out[ROOMS[name]] = out.get(ROOMS[name], 0.0) + 1.0 / len(names)
    return out


def room_trait_distance(
    person: CompanionPerson, traits: Mapping[str, float], rooms: Sequence[str] | None = None
) -> float:
    """Expected :func:`trait_distance` of ``traits`` over the rooms the person is met in.

    The agent sends one trait vector everywhere, while the person's taste shifts with the
    room (:func:`effective_taste`). Closeness to the DM taste is then the wrong target: the
    traits that serve this person best sit between the tastes of the rooms they are met in.
    This measure is::

        D(traits) = sum_r P(r) * trait_distance(person, traits, r)

    with ``P`` the :func:`room_distribution` of ``rooms`` (the law of
    :func:`room_context`, so of :meth:`CompanionWorld.context`) over room sizes ``r``: the
    weighted RMS distance to the person's taste in each room, averaged. It can only be zero
    when the taste is the same in all those rooms (a person met only in DMs, say); otherwise
    its minimum is positive, so compare values (start vs end), not against zero.

    Parameters
    ----------
    person
        The person, with their hidden DM taste and trait weights.
    traits
        The agent's traits; a missing trait reads as :data:`DEFAULT_TRAIT`.
    rooms
        Room names as given to :func:`room_context` (default: every room of :data:`ROOMS`).

    Returns
    -------
    float
        The expected weighted RMS distance, in trait units.

    Examples
    --------
    >>> p = make_companion_person(0, 1)
    >>> dm = effective_taste(p, 1)
    >>> room_trait_distance(p, dm, rooms=["dm"])
    0.0
    >>> d = [trait_distance(p, dm, size) for size in (1, 4, 12, 40)]
    >>> room_trait_distance(p, dm) == sum(d) / 4 > 0.0
    True
    >>> middle = effective_taste(p, 12)  # nearer to every room's taste on average
    >>> room_trait_distance(p, middle) < room_trait_distance(p, dm)
    True
    """
    return sum(
        prob * trait_distance(person, traits, size)
        for size, prob in room_distribution(rooms).items()
    )


def room_context(rng: random.Random, rooms: Sequence[str] | None = None) -> dict[str, Any]:
    """A random room for the next message: ``{"room": "dm", "room_size": 1}``.

    >>> room_context(random.Random(0))
    {'room': 'large', 'room_size': 40}
    """
    name = rng.choice(list(rooms) if rooms is not None else list(ROOMS))
    return {"room": name, "room_size": ROOMS[name]}


def respond(
    person: CompanionPerson,
    traits: Mapping[str, float],
    room_size: int,
    rng: random.Random,
    decision_id: str | None = None,
    agent_id: str = "agent",
) -> dict[str, Any]:
    """How the person reacts to one agent message with ``traits`` in a room.

    Returns ``{"satisfaction": s, "signals": [...], "feedback": [...]}``; signals and
    feedback are dicts with the fields of ``SignalObserved`` / ``FeedbackGiven`` (ready for
    ``RewardflowClient.signals`` and ``.feedback``).

    >>> p = make_companion_person(0, 1)
    >>> out = respond(p, effective_taste(p, 1), 1, random.Random(3), "d1", "a1")
    >>> [s["kind"] for s in out["signals"]]
    ['reply_latency_ms', 'message_length', 'sentiment', 'reinvite']
    """
    s = satisfaction(person, traits, room_size)
    base = {"decision_id": decision_id, "agent_id": agent_id, "user_id": person.person_id}
    signals: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    room_damp = 1.0 / (1.0 + 0.15 * math.log2(max(1, room_size)))
    p_reply = min(1.0, (0.3 + 0.65 * s) * room_damp * person.chattiness)
    if rng.random() < p_reply:
        latency = 90_000.0 * math.exp(-2.3 * s) * math.exp(rng.gauss(0.0, 0.5))
        length = (15.0 + 185.0 * s) * person.chattiness * math.exp(rng.gauss(0.0, 0.4))
        sentiment = 1.6 * (s - 0.5) + rng.gauss(0.0, 0.25)
        signals += [
            {**base, "kind": "reply_latency_ms", "value": round(min(latency, 86_400_000.0), 1)},
            {**base, "kind": "message_length", "value": float(max(1, round(length)))},
            {**base, "kind": "sentiment", "value": round(min(1.0, max(-1.0, sentiment)), 4)},
        ]
    elif rng.random() < 0.6 * (1.0 - s):
        signals.append({**base, "kind": "abandonment", "value": 1.0})
    if rng.random() < 0.4 * s * s:
        signals.append({**base, "kind": "reinvite", "value": 1.0})
    if rng.random() < THUMBS_RATE:
        up = s + rng.gauss(0.0, 0.15) > 0.5
        feedback.append({**base, "kind": "thumbs", "value": 1.0 if up else -1.0})
    return {"satisfaction": s, "signals": signals, "feedback": feedback}


def companion_agent_spec(probe_traits: bool = True) -> dict[str, Any]:
    """An agent spec for the companion world: neutral traits, rooms as context.

    >>> from schemas.agent import AgentSpec
    >>> AgentSpec.model_validate(companion_agent_spec()).context_keys
    ['room']
    """
    return {
        "persona": {"name": "Companion", "description": "A friendly companion in chats."},
        "traits": dict.fromkeys(TRAITS, DEFAULT_TRAIT),
        "actions": ["reply", "ask_question", "share_story", "stay_quiet"],
        "context_keys": ["room"],
        "template": "companion",
        "epsilon": 0.1,
        "explore": probe_traits,
    }


@dataclass
class CompanionWorld:
    """One person's companion world with its own seeded RNG.

    >>> w = CompanionWorld(make_companion_person(0, 1), seed=2)
    >>> ctx = w.context()
    >>> out = w.respond(dict.fromkeys(TRAITS, 0.5), ctx, decision_id="d1", agent_id="a")
    >>> 0.0 < out["satisfaction"] <= 1.0
    True
    """

    person: CompanionPerson
    seed: int
    rooms: Sequence[str] | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.person.person_id}")

    def context(self) -> dict[str, Any]:
        """The room of the next message."""
        return room_context(self.rng, self.rooms)

    def trait_distance(self, traits: Mapping[str, float]) -> float:
        """:func:`room_trait_distance` of ``traits`` over this world's rooms."""
        return room_trait_distance(self.person, traits, self.rooms)

    def respond(
        self,
        traits: Mapping[str, float],
        context: Mapping[str, Any],
        decision_id: str | None = None,
        agent_id: str = "agent",
    ) -> dict[str, Any]:
        """The person's reaction to a message with ``traits`` in the room of ``context``."""
        return respond(
            self.person, traits, int(context.get("room_size", 1)), self.rng, decision_id, agent_id
        )
