"""The reward model as data: a weight and a transform per signal kind.

Loaded from YAML (the shipped ``reward_model.yaml`` or ``RF_REWARD_MODEL_PATH``), validated
at start, and stamped by ``version`` on every RewardComputed. Components are kept so a reward
can be explained.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.kinds import FEEDBACK_KINDS, SIGNAL_KINDS


class Identity(BaseModel):
    kind: Literal["identity"] = "identity"

    def __call__(self, x: float) -> float:
        return x


class Constant(BaseModel):
    kind: Literal["constant"] = "constant"
    value: float

    def __call__(self, x: float) -> float:
        return self.value


class Linear(BaseModel):
    """Map [x0, x1] linearly onto [y0, y1], clamped at the ends."""

    kind: Literal["linear"] = "linear"
    x0: float
    x1: float
    y0: float = -1.0
    y1: float = 1.0

    @model_validator(mode="after")
    def _span(self) -> Linear:
        if self.x0 == self.x1:
            msg = "linear transform needs x0 != x1"
            raise ValueError(msg)
        return self

    def __call__(self, x: float) -> float:
        t = min(1.0, max(0.0, (x - self.x0) / (self.x1 - self.x0)))
        return self.y0 + t * (self.y1 - self.y0)


class Decay(BaseModel):
    """1 at zero, 0 at ``half_life``, toward -1 beyond: for latencies (smaller is better)."""

    kind: Literal["decay"] = "decay"
    half_life: Annotated[float, Field(gt=0)]

    def __call__(self, x: float) -> float:
        return 2.0 * math.pow(0.5, max(0.0, x) / self.half_life) - 1.0


class Saturate(BaseModel):
    """-1 at zero, 0 at ``scale``, toward 1 beyond: for engagement such as message length."""

    kind: Literal["saturate"] = "saturate"
    scale: Annotated[float, Field(gt=0)]

    def __call__(self, x: float) -> float:
        x = max(0.0, x)
        return 2.0 * x / (x + self.scale) - 1.0


Transform = Annotated[Identity | Constant | Linear | Decay | Saturate, Field(discriminator="kind")]


class KindRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: Annotated[float, Field(ge=0.0, le=10.0)] = 1.0
    transform: Transform = Field(default_factory=Identity)


class RewardModel(BaseModel):
    """Weights and transforms per kind.

    >>> m = load_reward_model()
    >>> m.reward({"accept": (1.0, 1)})
    (1.0, {'accept': 1.0})
    >>> fast = m.component("reply_latency_ms", 0.0)  # transformed: 1.0
    >>> r, parts = m.reward({"sentiment": (0.5, 1), "reply_latency_ms": (fast, 1)})
    >>> round(r, 3), parts
    (0.45, {'reply_latency_ms': 0.3, 'sentiment': 0.15})
    >>> m.reward({})
    (0.0, {})
    """

    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=64)]
    default_reward: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.0
    explicit_weight: Annotated[float, Field(ge=0.0)] = 1.0
    implicit_weight: Annotated[float, Field(ge=0.0)] = 1.0
    kinds: dict[str, KindRule]

    @model_validator(mode="after")
    def _known_kinds(self) -> RewardModel:
        known = set(FEEDBACK_KINDS) | set(SIGNAL_KINDS)
        unknown = sorted(set(self.kinds) - known)
        if unknown:
            msg = f"unknown kinds {unknown}; known kinds are {sorted(known)}"
            raise ValueError(msg)
        return self

    def component(self, kind: str, value: float) -> float:
        """Transformed value of one signal (before weights)."""
        rule = self.kinds.get(kind)
        return rule.transform(value) if rule is not None else 0.0

    def reward(self, sums: dict[str, tuple[float, int]]) -> tuple[float, dict[str, float]]:
        """Combine ``{kind: (sum of transformed values, count)}`` into a clamped reward.

        Returns ``(reward, components)`` where components are the weighted contributions.
        With no signal at all the reward is ``default_reward``.
        """
        if not sums:
            return self.default_reward, {}
        parts: dict[str, float] = {}
        total = 0.0
        for kind in sorted(sums):
            s, n = sums[kind]
            rule = self.kinds.get(kind)
            if rule is None or n == 0:
                continue
            scope = self.explicit_weight if kind in FEEDBACK_KINDS else self.implicit_weight
            c = scope * rule.weight * (s / n)
            parts[kind] = round(c, 9)
            total += c
        return max(-1.0, min(1.0, round(total, 9))), parts


def load_reward_model(path: str | Path | None = None) -> RewardModel:
    """Load and validate a reward model; ``None`` loads the shipped default."""
    if path is None:
        text = resources.files("dataflows").joinpath("reward_model.yaml").read_text()
    else:
        text = Path(path).read_text()
    return RewardModel.model_validate(yaml.safe_load(text))
