"""When to ask a user for feedback: pure rules; the rate-limit state lives in Redis.

>>> from gateway.rules import FeedbackRules
>>> r = FeedbackRules()
>>> plan(r, "normal", session_seconds=300, agent_messages=6, explored=False,
...      last_feedback_age=None).kinds
['rating']
>>> plan(r, "normal", session_seconds=10, agent_messages=5, explored=False,
...      last_feedback_age=3600).kinds
['thumbs']
>>> plan(r, "off", session_seconds=900, agent_messages=10, explored=True,
...      last_feedback_age=None).kinds
[]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.rules import FeedbackRules

Intensity = Literal["off", "low", "normal", "high"]
#: How each intensity scales the intervals (larger = asks less often).
SCALE: dict[str, float] = {"low": 2.0, "normal": 1.0, "high": 0.5}


@dataclass(frozen=True, slots=True)
class FeedbackPlan:
    """Candidate prompts (before the Redis rate limits) with the reason of each."""

    kinds: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    rating_ttl_seconds: int = 86400
    check_in_ttl_seconds: int = 7 * 86400


def plan(
    rules: FeedbackRules,
    intensity: Intensity,
    *,
    session_seconds: float,
    agent_messages: int,
    explored: bool,
    last_feedback_age: float | None,
) -> FeedbackPlan:
    """Which prompts are due, by priority: rating, check_in, thumbs."""
    if intensity == "off":
        return FeedbackPlan()
    scale = SCALE[intensity]
    kinds: list[str] = []
    reasons: dict[str, str] = {}
    meaningful = (session_seconds >= rules.meaningful_session_seconds * scale
                  and agent_messages >= max(1, round(rules.meaningful_agent_messages * scale)))
    if meaningful:
        kinds.append("rating")
        reasons["rating"] = (f"meaningful session ({session_seconds:.0f}s, "
                             f"{agent_messages} messages)")
    check_in_after = rules.check_in_after_days * 86400 * scale
    if last_feedback_age is not None and last_feedback_age >= check_in_after:
        kinds.append("check_in")
        reasons["check_in"] = f"no feedback for {last_feedback_age / 86400:.1f} days"
    every = max(1, round(rules.thumbs_every_messages * scale))
    if agent_messages > 0 and agent_messages % every == 0:
        kinds.append("thumbs")
        reasons["thumbs"] = f"every {every}th agent message"
    elif explored and intensity != "low":
        kinds.append("thumbs")
        reasons["thumbs"] = "the agent tried something new"
    return FeedbackPlan(
        kinds=kinds,
        reasons=reasons,
        rating_ttl_seconds=int(rules.rating_every_hours * 3600 * scale),
        check_in_ttl_seconds=int(check_in_after),
    )
