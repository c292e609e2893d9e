"""Projection documents the dataflow writes to Redis and the gateway serves.

All of them are JSON strings under the keys of :class:`schemas.keys.Keys`; ``summary`` also
holds ``seq``, the number of input events applied to the agent so far, which the dataflow's
Redis writes use as a guard so that replayed output never overwrites newer state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Window = Literal["1h", "24h", "7d"]
#: Window length and the width of the buckets it is summed from, in seconds.
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (3600, 300),
    "24h": (86400, 3600),
    "7d": (7 * 86400, 6 * 3600),
}


class Summary(BaseModel):
    agent_id: str
    tenant: str = "default"
    seq: int = 0
    interactions: int = 0
    mean_reward: float = 0.0
    last_reward_at: datetime | None = None
    watermark: datetime | None = None
    policy_version: int = 0


class WindowAggregate(BaseModel):
    """Rewards of decisions made in ``[start, end)``: the last ``window`` up to the watermark,
    at the resolution of its buckets (5 min for 1h, 1 h for 24h, 6 h for 7d)."""

    window: Window
    start: datetime | None = None
    end: datetime | None = None
    count: int = 0
    positive: int = 0
    negative: int = 0
    mean_reward: float = 0.0
    engagement: float = Field(default=0.0, description="share of decisions that got any signal")
    success_rate: float = Field(default=0.0, description="share of decisions with reward > 0")


class Relationship(BaseModel):
    user_id: str
    interactions: int = 0
    mean_reward: float = 0.0
    strength: float = Field(default=0.0, description="sum of rewards, halved every half-life")
    last_ts: datetime | None = None


class Outcome(BaseModel):
    decision_id: str
    action: str
    bucket: str
    reward: float
    ts: datetime


class ActionStats(BaseModel):
    count: int = 0
    success: int = 0

    @property
    def success_rate(self) -> float:
        return self.success / self.count if self.count else 0.0


class History(BaseModel):
    recent: list[Outcome] = Field(default_factory=list)
    per_action: dict[str, ActionStats] = Field(default_factory=dict)
    per_bucket: dict[str, dict[str, ActionStats]] = Field(default_factory=dict)


#: Per-bucket tuple layout: count, positive, negative, reward sum, engaged.
BucketRow = list[float]


def _isoformat(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def window_totals(window: str, buckets: dict[int, BucketRow], as_of: float,
                  fmt: Callable[[float], str] = _isoformat) -> dict[str, Any]:
    """Sum the buckets of ``window`` that fall in the last window up to ``as_of`` (plain data).

    ``buckets`` maps a bucket's start (epoch seconds, a multiple of the bucket width) to
    ``[count, positive, negative, reward_sum, engaged]``; ``fmt`` formats the bounds (the
    dataflow passes a memoized one).

    >>> t = window_totals("1h", {0: [2, 1, 1, 0.5, 1], 3600: [1, 1, 0, 1.0, 1]}, 3700.0)
    >>> t["count"], t["positive"], t["mean_reward"], t["success_rate"], t["start"]
    (1, 1, 1.0, 1.0, '1970-01-01T00:05:00+00:00')
    """
    length, width = WINDOWS[window]
    end = (int(as_of) // width + 1) * width
    start = end - length
    count = pos = neg = engaged = 0
    total = 0.0
    for s, r in buckets.items():
        if start <= int(s) < end:
            count += int(r[0])
            pos += int(r[1])
            neg += int(r[2])
            total += r[3]
            engaged += int(r[4])
    return {
        "window": window,
        "start": fmt(start),
        "end": fmt(end),
        "count": count, "positive": pos, "negative": neg,
        "mean_reward": round(total / count, 9) if count else 0.0,
        "engagement": round(engaged / count, 9) if count else 0.0,
        "success_rate": round(pos / count, 9) if count else 0.0,
    }


def window_aggregate(
    window: str, buckets: dict[int, BucketRow], as_of: float
) -> WindowAggregate:
    """:func:`window_totals` as a validated :class:`WindowAggregate`.

    >>> window_aggregate("24h", {0: [1, 0, 1, -1.0, 0]}, 10.0).negative
    1
    """
    return WindowAggregate.model_validate(window_totals(window, buckets, as_of))
