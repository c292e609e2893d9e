"""The life-management world: people with hidden archetypes who Accept or Ignore suggestions.

A week has 28 slots (7 days x 4 day parts: morning, afternoon, evening, night). In each slot
the agent suggests one of 10 action types; the person accepts it with a probability that
depends on their hidden profile, the slot and five meters in [0, 1]:

============  ==========================================================================
Vitality      physical energy; sleep, rest and exercise restore it
Cognition     mental freshness; deep work and learning spend it, sleep restores it
Progress      getting things done; deep work, admin and learning build it
Serenity      calm; meditation and me-time build it, socializing can cost it
Connection    closeness to others; family time and socializing build it
============  ==========================================================================

Acceptance model
----------------
``P(accept | action, slot, meters) = sigmoid(logit)`` with::

    logit = table[day_part][action]          # the archetype's daily rhythm (+ personal noise)
          + weekend[action]     (sat, sun)    # work is less welcome on weekends
          + kappa * need(action, meters)      # an action is welcome when it restores a low
                                              # meter, unwelcome when it spends a low one

``need`` is ``sum_m w_m * effect[action][m] * (0.5 - meter_m) * 10``: moderate (about +/-1
logit at the extremes of the meters). The day part x action table dominates on purpose: a
learner keyed by ``day_part`` alone (the agent's default ``context_keys``) can get close to
the oracle, while the oracle, which sees the meters and the weekday, stays a bit ahead.

An accepted action moves the meters by ``effect[action]``; an ignored one leaves the person
to their own devices (a little progress is lost). Every slot each meter also moves 15% of
the way back to its baseline 0.5 (homeostasis), so meters stay in a plausible range under
any policy, yet a policy that keeps spending one meter does pay for it.

Archetypes
----------
``night_owl`` (late chronotype, *morning penalty*)
    Mornings are for sleeping in: anything but sleep or rest is ignored before noon, and
    non-rest actions in the morning also cost extra vitality. Best: sleep in the morning,
    admin in the afternoon, deep work in the evening, learning at night.
``introvert`` (*low social tolerance*)
    Socializing is nearly always ignored and costs a lot of serenity when accepted; the
    connection meter barely matters to them. Best: deep work in the morning, learning in
    the afternoon, me-time in the evening, sleep at night.
``workhorse`` (*vitality recovers from work*)
    Work restores rather than drains their vitality; rest and me-time feel like guilt and
    are ignored. Best: deep work in the morning and afternoon, learning in the evening,
    sleep at night.

People of an archetype differ by seed: every cell of the table gets personal noise, the
meter sensitivity ``kappa`` varies, and the starting meters differ.

Under these settings the uniform-random policy is accepted about 35-37% of the time and the
oracle about 82-91% (in expectation, 8 weeks, 12 seeds; see ``tests/simulator``).

>>> person = make_person("night_owl", 0, seed=7)
>>> state = initial_state(person)
>>> context(state)["day_part"], context(state)["day"]
('morning', 'mon')
>>> oracle_action(person, state)
'sleep'
>>> round(accept_probs(person, state)["sleep"], 2) > round(random_expected(person, state), 2)
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simulator.life_archetypes import (
    ACTIONS,
    ARCHETYPES,
    DAY_PARTS,
    DAYS,
    METERS,
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    WEEKEND,
    Archetype,
)

#: Feedback the person gives: Accept -> ("accept", 1.0), Ignore -> ("ignore", -1.0).
ACCEPT_FEEDBACK: tuple[str, float] = ("accept", 1.0)
IGNORE_FEEDBACK: tuple[str, float] = ("ignore", -1.0)

#: Every slot each meter moves ``HOMEOSTASIS`` of the way back to ``BASELINE``.
BASELINE = 0.5
HOMEOSTASIS = 0.15
#: Meter change of an ignored suggestion: the person does their own thing.
IGNORED: tuple[float, float, float, float, float] = (0.0, 0.0, -0.01, 0.0, 0.0)
#: Logit change on weekends.
WEEKEND_SHIFT: dict[str, float] = {
    "deep_work": -0.8,
    "admin_work": -0.8,
    "family_time": 0.5,
    "socialize": 0.4,
    "exercise": 0.3,
}
NEED_CENTER = 0.5


@dataclass(frozen=True)
class Person:
    """One simulated person: an archetype made personal by a seed.

    Attributes
    ----------
    person_id
        Stable id, e.g. ``"night_owl-0"``.
    archetype
        Name of the hidden archetype (the agent never sees it).
    logits
        ``(4, 10)`` array: table logit per day part and action, with personal noise.
    kappa
        Sensitivity to meter needs.
    start_meters
        Meters at the first slot.
    """

    person_id: str
    archetype: str
    logits: np.ndarray
    kappa: float
    start_meters: tuple[float, ...]

    @property
    def profile(self) -> Archetype:
        return ARCHETYPES[self.archetype]


@dataclass(frozen=True)
class LifeState:
    """Where a person is: the absolute slot number and the five meters."""

    slot: int
    meters: tuple[float, ...]

    @property
    def week(self) -> int:
        return self.slot // SLOTS_PER_WEEK

    @property
    def day(self) -> str:
        return DAYS[(self.slot % SLOTS_PER_WEEK) // SLOTS_PER_DAY]

    @property
    def day_part(self) -> str:
        return DAY_PARTS[self.slot % SLOTS_PER_DAY]


def make_person(archetype: str, index: int, seed: int, noise: float = 0.35) -> Person:
    """Make person ``index`` of ``archetype``; the same arguments give the same person.

    >>> a, b = make_person("introvert", 0, 1), make_person("introvert", 0, 1)
    >>> bool((a.logits == b.logits).all()), a.start_meters == b.start_meters
    (True, True)
    >>> bool((a.logits == make_person("introvert", 1, 1).logits).all())
    False
    """
    profile = ARCHETYPES[archetype]
    arch_no = sorted(ARCHETYPES).index(archetype)
    rng = np.random.default_rng([seed, arch_no, index])
    base = np.array([[profile.table[dp][a] for a in ACTIONS] for dp in DAY_PARTS])
    logits = base + rng.normal(0.0, noise, size=base.shape)
    kappa = float(rng.uniform(0.8, 1.2))
    start = tuple(float(x) for x in rng.uniform(0.45, 0.7, size=len(METERS)))
    return Person(f"{archetype}-{index}", archetype, logits, kappa, start)


def make_people(
    per_archetype: int, seed: int, archetypes: Sequence[str] | None = None
) -> list[Person]:
    """``per_archetype`` people of each archetype (all of them by default), archetype-major.

    >>> [p.person_id for p in make_people(1, seed=0)]
    ['night_owl-0', 'introvert-0', 'workhorse-0']
    """
    names = list(archetypes) if archetypes is not None else list(ARCHETYPES)
    return [make_person(a, i, seed) for a in names for i in range(per_archetype)]


def initial_state(person: Person) -> LifeState:
    """The person's state at slot 0 (Monday morning of week 0)."""
    return LifeState(0, person.start_meters)


def _level(x: float) -> str:
    return "low" if x < 0.35 else "high" if x > 0.7 else "mid"


def context(state: LifeState) -> dict[str, str]:
    """What the agent is told: day part, day, and a coarse level of each meter.

    >>> context(LifeState(5, (0.2, 0.5, 0.9, 0.5, 0.5)))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'day_part': 'afternoon', 'day': 'tue', 'vitality': 'low', 'cognition': 'mid',
     'progress': 'high', 'serenity': 'mid', 'connection': 'mid'}
    """
    ctx = {"day_part": state.day_part, "day": state.day}
    ctx.update({m: _level(v) for m, v in zip(METERS, state.meters, strict=True)})
    return ctx


#: :func:`numeric_context`'s reading of a meter level.
LEVEL_VALUE = {"low": 0.0, "mid": 0.5, "high": 1.0}


def numeric_context(ctx: dict[str, str]) -> dict[str, str | float]:
    """:func:`context` with its meter levels as numbers (low 0, mid 0.5, high 1) and a
    ``weekend`` flag: the same information, as features for linear scoring.

    >>> numeric_context({"day_part": "night", "day": "sat", "vitality": "low"})
    {'day_part': 'night', 'day': 'sat', 'vitality': 0.0, 'weekend': 1.0}
    """
    out: dict[str, str | float] = {k: LEVEL_VALUE.get(v, v) for k, v in ctx.items()}
    out["weekend"] = 1.0 if ctx.get("day") in WEEKEND else 0.0
    return out


#: The features :func:`numeric_context` adds, for an agent's ``features``.
NUMERIC_FEATURES: tuple[str, ...] = (*METERS, "weekend")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def accept_logit(person: Person, state: LifeState, action: str) -> float:
    """The hidden logit of acceptance (see the module docstring)."""
    profile = person.profile
    a = ACTIONS.index(action)
    logit = float(person.logits[DAY_PARTS.index(state.day_part), a])
    if state.day in WEEKEND:
        logit += WEEKEND_SHIFT.get(action, 0.0)
    eff = profile.effects[action]
    need = sum(
        w * e * (NEED_CENTER - v) * 10.0
        for w, e, v in zip(profile.need_weights, eff, state.meters, strict=True)
    )
    return logit + person.kappa * need


def accept_prob(person: Person, state: LifeState, action: str) -> float:
    """Hidden truth: ``P(accept | action, state)``."""
    return _sigmoid(accept_logit(person, state, action))


def accept_probs(person: Person, state: LifeState) -> dict[str, float]:
    """``P(accept)`` of every action in ``state``."""
    return {a: accept_prob(person, state, a) for a in ACTIONS}


def oracle_action(person: Person, state: LifeState) -> str:
    """The action with the highest true acceptance probability in ``state`` (myopic oracle).

    >>> oracle_action(make_person("workhorse", 0, 3), LifeState(0, (0.5,) * 5))
    'deep_work'
    """
    probs = accept_probs(person, state)
    return max(ACTIONS, key=lambda a: probs[a])


def oracle_expected(person: Person, state: LifeState) -> float:
    """Acceptance probability of the oracle's action."""
    return max(accept_probs(person, state).values())


def random_expected(person: Person, state: LifeState) -> float:
    """Expected acceptance of the uniform-random policy in ``state``."""
    return float(np.mean(list(accept_probs(person, state).values())))


def step(person: Person, state: LifeState, action: str, accepted: bool) -> LifeState:
    """The next state after suggesting ``action`` and the person accepting it or not.

    >>> p = make_person("workhorse", 0, 3)
    >>> s = LifeState(0, (0.5,) * 5)
    >>> step(p, s, "deep_work", True).meters[0] > step(p, s, "deep_work", False).meters[0]
    True
    """
    profile = person.profile
    delta = list(profile.effects[action] if accepted else IGNORED)
    if accepted and state.day_part == "morning" and action not in ("sleep", "rest"):
        delta[0] -= profile.morning_vitality_cost
    meters = tuple(
        min(1.0, max(0.0, v + d + HOMEOSTASIS * (BASELINE - v)))
        for v, d in zip(state.meters, delta, strict=True)
    )
    return LifeState(state.slot + 1, meters)


def feedback_for(accepted: bool) -> tuple[str, float]:
    """The explicit feedback the person sends: ``("accept", 1.0)`` or ``("ignore", -1.0)``."""
    return ACCEPT_FEEDBACK if accepted else IGNORE_FEEDBACK


@dataclass
class LifeWorld:
    """One person's world with its own seeded RNG for Accept/Ignore draws.

    >>> w = LifeWorld(make_person("introvert", 0, 1), seed=5)
    >>> out = w.respond("deep_work")
    >>> sorted(out)
    ['accepted', 'action', 'context', 'expected', 'oracle_action', 'oracle_expected', \
'random_expected', 'slot']
    >>> w.state.slot
    1
    """

    person: Person
    seed: int
    state: LifeState = field(init=False)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.state = initial_state(self.person)
        self.rng = random.Random(f"{self.seed}:{self.person.person_id}")

    def context(self) -> dict[str, str]:
        return context(self.state)

    def respond(self, action: str) -> dict[str, object]:
        """The person's answer to ``action`` in the current slot; advances one slot."""
        s = self.state
        probs = accept_probs(self.person, s)
        p = probs[action]
        accepted = self.rng.random() < p
        best = max(ACTIONS, key=lambda a: probs[a])
        out: dict[str, object] = {
            "slot": s.slot,
            "context": context(s),
            "action": action,
            "expected": p,
            "accepted": accepted,
            "oracle_action": best,
            "oracle_expected": probs[best],
            "random_expected": float(np.mean(list(probs.values()))),
        }
        self.state = step(self.person, s, action, accepted)
        return out
