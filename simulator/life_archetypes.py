"""The life world's vocabulary and its hidden archetypes (data for :mod:`simulator.life`).

Actions, day parts, days and meters; and per archetype, the logit of accepting each action
in each day part, the meter effects of an accepted action and the weight of each need.
:mod:`simulator.life` holds the dynamics (acceptance, meters, the oracle).

>>> sorted(ARCHETYPES), len(ACTIONS), SLOTS_PER_WEEK
(['introvert', 'night_owl', 'workhorse'], 10, 28)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ACTIONS: tuple[str, ...] = (
    "deep_work",
    "admin_work",
    "learn",
    "exercise",
    "meditate",
    "me_time",
    "family_time",
    "socialize",
    "sleep",
    "rest",
)
DAY_PARTS: tuple[str, ...] = ("morning", "afternoon", "evening", "night")
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
METERS: tuple[str, ...] = ("vitality", "cognition", "progress", "serenity", "connection")
SLOTS_PER_DAY = len(DAY_PARTS)
SLOTS_PER_WEEK = len(DAYS) * SLOTS_PER_DAY
WEEKEND = frozenset({"sat", "sun"})

# Logit levels of the archetype tables.
_H, _h, _m, _l, _L = 2.4, 1.0, 0.0, -1.3, -2.8

#: Meter change of an accepted action (vitality, cognition, progress, serenity, connection).
BASE_EFFECTS: dict[str, tuple[float, float, float, float, float]] = {
    "deep_work": (-0.06, -0.10, 0.15, -0.03, 0.00),
    "admin_work": (-0.03, -0.05, 0.08, -0.02, 0.00),
    "learn": (-0.03, -0.06, 0.06, 0.02, 0.00),
    "exercise": (0.10, 0.04, 0.00, 0.05, 0.01),
    "meditate": (0.02, 0.05, 0.00, 0.12, 0.00),
    "me_time": (0.04, 0.03, 0.00, 0.08, -0.02),
    "family_time": (-0.01, 0.00, 0.00, 0.04, 0.12),
    "socialize": (-0.05, 0.00, 0.00, 0.02, 0.15),
    "sleep": (0.20, 0.15, 0.00, 0.03, 0.00),
    "rest": (0.08, 0.06, 0.00, 0.03, 0.00),
}
@dataclass(frozen=True)
class Archetype:
    """A hidden preference profile.

    Attributes
    ----------
    name, description
        What it is called and what makes it different.
    table
        Logit of acceptance per day part and action.
    effects
        Meter change of each accepted action, in :data:`METERS` order.
    need_weights
        How much each meter's need matters to this archetype (multiplies ``need``).
    morning_vitality_cost
        Extra vitality spent by any accepted action but sleep/rest in the morning.
    """

    name: str
    description: str
    table: Mapping[str, Mapping[str, float]]
    effects: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: dict(BASE_EFFECTS))
    need_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    morning_vitality_cost: float = 0.0


def _row(default: float, **cells: float) -> dict[str, float]:
    row = dict.fromkeys(ACTIONS, default)
    row.update(cells)
    return row


def _effects(**overrides: tuple[float, ...]) -> dict[str, tuple[float, ...]]:
    eff: dict[str, tuple[float, ...]] = dict(BASE_EFFECTS)
    eff.update(overrides)
    return eff


ARCHETYPES: dict[str, Archetype] = {
    "night_owl": Archetype(
        name="night_owl",
        description="late chronotype: morning penalty, peaks in the evening and at night",
        table={
            "morning": _row(
                _L, sleep=_H, rest=_h, me_time=_m, meditate=_m, admin_work=_l, family_time=_l
            ),
            "afternoon": _row(_l, admin_work=_H, exercise=_h, learn=_m, me_time=_m, sleep=_L),
            "evening": _row(_l, deep_work=_H, socialize=_h, learn=_m, family_time=_m, sleep=_L),
            "night": _row(
                _l, learn=_H, deep_work=_h, me_time=_m, socialize=_m, exercise=_L, family_time=_L
            ),
        },
        morning_vitality_cost=0.05,
    ),
    "introvert": Archetype(
        name="introvert",
        description="low social tolerance: socializing is ignored and drains serenity",
        table={
            "morning": _row(_l, deep_work=_H, learn=_h, meditate=_m, exercise=_m, socialize=_L),
            "afternoon": _row(_l, learn=_H, admin_work=_h, deep_work=_m, exercise=_m, socialize=_L),
            "evening": _row(
                _l, me_time=_H, meditate=_h, family_time=_m, rest=_m, admin_work=_L, socialize=_L
            ),
            "night": _row(
                _l, sleep=_H, meditate=_h, rest=_m, me_time=_m, socialize=_L, exercise=_L
            ),
        },
        effects=_effects(socialize=(-0.08, -0.02, 0.0, -0.15, 0.08)),
        need_weights=(1.0, 1.0, 1.0, 1.2, 0.3),
    ),
    "workhorse": Archetype(
        name="workhorse",
        description="vitality recovers from work; rest and me-time are ignored",
        table={
            "morning": _row(
                _l, deep_work=_H, admin_work=_h, exercise=_m, learn=_m, sleep=_L, rest=_L
            ),
            "afternoon": _row(
                _l, deep_work=_H, admin_work=_h, learn=_m, socialize=_m, rest=_L, me_time=_L
            ),
            "evening": _row(
                _l, learn=_H, family_time=_h, deep_work=_m, socialize=_m, rest=_L, me_time=_L
            ),
            "night": _row(_l, sleep=_H, admin_work=_h, learn=_m, rest=_m, me_time=_L),
        },
        effects=_effects(
            deep_work=(0.05, -0.08, 0.15, 0.01, 0.00),
            admin_work=(0.04, -0.04, 0.08, 0.00, 0.00),
        ),
        need_weights=(0.6, 1.0, 1.3, 0.8, 0.8),
    ),
}
