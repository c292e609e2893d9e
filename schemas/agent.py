"""The agent registration contract (``PUT /v1/agents/{agent_id}``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Persona(BaseModel):
    """Who the agent is, in words the compiler puts at the top of the system prompt."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=120)]
    description: Annotated[str, Field(max_length=4000)] = ""


class AgentSpec(BaseModel):
    """What a chat backend registers about an agent.

    >>> spec = AgentSpec(persona={"name": "Ava"}, traits={"humor": 0.5}, actions=["a", "b"])
    >>> spec.bounds_for("humor")
    (0.0, 1.0)
    >>> AgentSpec(persona={"name": "x"}, actions=[])
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for AgentSpec
    actions
      List should have at least 1 item after validation, not 0 ...
    """

    model_config = ConfigDict(extra="forbid")

    persona: Persona
    traits: dict[Name, Unit] = Field(default_factory=dict)
    trait_bounds: dict[Name, tuple[Unit, Unit]] = Field(default_factory=dict)
    actions: Annotated[list[Name], Field(min_length=1, max_length=64)]
    context_keys: Annotated[list[Name], Field(max_length=8)] = Field(default_factory=list)
    template: Name | None = None
    epsilon: Unit = 0.1
    explore: bool = True
    #: Bandit of the action policy (the learner's default when unset: epsilon-greedy).
    algorithm: Literal["epsilon_greedy", "ucb", "thompson"] | None = None
    #: Share of decisions that probe one trait by +/-delta (learner default when unset).
    probe_share: Unit | None = None
    #: Numeric context keys for linear scoring (:class:`schemas.policy.LinearScoring`): an
    #: action's value in a bucket then moves with these features. Empty: a value table.
    features: Annotated[list[Name], Field(max_length=16)] = Field(default_factory=list)

    @field_validator("actions", "features")
    @classmethod
    def _unique(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if len(set(v)) != len(v):
            msg = f"{info.field_name} must be unique"
            raise ValueError(msg)
        return v

    @model_validator(mode="after")
    def _features_fit(self) -> AgentSpec:
        if not self.features:
            return self
        both = sorted(set(self.features) & set(self.context_keys))
        if both:
            msg = (f"features {both} are also context_keys: a context key names a bucket, a "
                   "feature a number that moves values inside one")
            raise ValueError(msg)
        if self.algorithm not in (None, "epsilon_greedy"):
            msg = (f"features (linear scoring) explore epsilon-greedy; algorithm "
                   f"{self.algorithm!r} does not take them")
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _bounds_hold(self) -> AgentSpec:
        for name, (lo, hi) in self.trait_bounds.items():
            if lo > hi:
                msg = f"trait_bounds.{name}: lower bound {lo} is above upper bound {hi}"
                raise ValueError(msg)
            if name in self.traits and not lo <= self.traits[name] <= hi:
                msg = f"traits.{name}={self.traits[name]} is outside its bounds [{lo}, {hi}]"
                raise ValueError(msg)
        return self

    def bounds_for(self, trait: str) -> tuple[float, float]:
        """Bounds of ``trait``: the declared ones, else the unit interval."""
        lo, hi = self.trait_bounds.get(trait, (0.0, 1.0))
        return (float(lo), float(hi))
