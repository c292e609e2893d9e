"""The policy document: what the learner publishes and the gateway evaluates per decision.

It is small, self-contained JSON. :meth:`PolicyDocument.action_probabilities` is the single
definition of how a document turns into a distribution over actions, so the gateway can log
the exact propensity of whatever it picks.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.buckets import GLOBAL_BUCKET

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class BucketPolicy(BaseModel):
    """Action values for one context bucket.

    ``probs``, when present, is the distribution to sample from (the learner computed it,
    exploration included, e.g. Thompson sampling's probability that each action is the
    best); otherwise the gateway plays epsilon-greedy over ``values``. Either way the
    probability of the chosen action is known exactly.
    """

    model_config = ConfigDict(extra="forbid")

    values: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    epsilon: Unit = 0.1
    probs: dict[str, Unit] | None = None
    #: Linear scoring (:class:`LinearScoring`): each action's value in the bucket
    #: (exploration bonus included), the mean features of each action's rewarded decisions
    #: here (``centers``), and of all of them (``center``, for an action without any).
    base: dict[str, float] | None = None
    centers: dict[str, list[float]] | None = None
    center: list[float] | None = None


def feature_number(value: object) -> float | None:
    """A context value as a linear-scoring feature: an int or float as a float, anything
    else (a missing value, text, a bool) ``None``.

    >>> feature_number(3), feature_number(0.5), feature_number("high"), feature_number(True)
    (3.0, 0.5, None, None)
    """
    return float(value) if value.__class__ in (int, float) else None  # type: ignore[arg-type]


class LinearScoring(BaseModel):
    """Linear contextual scoring over numeric context features.

    In a bucket with ``base``, action ``a`` scores
    ``base[a] + sum_i weights[a][i] * (x_i - c_i)``: its value there, moved along its slope
    from the mean features ``c`` of its rewarded decisions in the bucket (``centers[a]``,
    else the bucket's ``center``) to the decision context's ``x`` (``x_i`` is the value of
    ``features[i]``; a missing or non-numeric one reads as ``c_i``: it moves nothing). The
    gateway plays epsilon-greedy over the scores with the bucket's epsilon, so the
    propensity is exact for every context.

    >>> lin = LinearScoring(features=["energy"], weights={"rest": [-1.0], "work": [1.0]})
    >>> lin.scores({"energy": 0.9}, {"rest": 0.1, "work": 0.0}, {"rest": [0.5]}, [0.6],
    ...            ["rest", "work"])
    {'rest': -0.3, 'work': 0.3}
    """

    model_config = ConfigDict(extra="forbid")

    features: list[str]
    weights: dict[str, list[float]] = Field(default_factory=dict)

    def scores(self, context: Mapping[str, object], base: Mapping[str, float],
               centers: Mapping[str, Sequence[float]] | None, center: Sequence[float] | None,
               actions: Sequence[str]) -> dict[str, float]:
        """Each action's score for ``context`` (see the class docstring)."""
        x = [feature_number(context.get(f)) for f in self.features]
        centers = centers or {}
        out = {}
        for a in actions:
            v = base.get(a, 0.0)
            w = self.weights.get(a)
            c = centers.get(a, center)
            if w and c:
                v += sum(wi * (xi - ci) for wi, xi, ci in zip(w, x, c, strict=False)
                         if xi is not None)
            out[a] = round(v, 12)
        return out


class ProbeConfig(BaseModel):
    """How the gateway probes traits: a share of decisions moves one trait by +/-delta."""

    model_config = ConfigDict(extra="forbid")

    share: Unit = 0.0
    delta: Annotated[float, Field(ge=0.0, le=0.5)] = 0.1
    traits: list[str] = Field(default_factory=list)


class PolicyDocument(BaseModel):
    """A versioned policy for one agent.

    >>> doc = PolicyDocument(agent_id="a", version=3, epsilon=0.2,
    ...     buckets={"*": BucketPolicy(values={"x": 0.5, "y": 0.1}, epsilon=0.2)})
    >>> p = doc.action_probabilities("*", ["x", "y"])
    >>> round(p["x"], 3), round(p["y"], 3)
    (0.9, 0.1)
    >>> doc.choose("*", ["x", "y"], random.Random(0))[0] in {"x", "y"}
    True
    """

    model_config = ConfigDict(extra="forbid")

    agent_id: str
    tenant: str = "default"
    version: Annotated[int, Field(ge=0)] = 0
    parent_version: int | None = None
    algorithm: Literal["epsilon_greedy", "ucb", "thompson"] = "epsilon_greedy"
    epsilon: Unit = 0.1
    explore: bool = True
    traits: dict[str, float] = Field(default_factory=dict)
    trait_bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    buckets: dict[str, BucketPolicy] = Field(default_factory=dict)
    reply_probability: dict[str, Unit] = Field(default_factory=dict)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    linear: LinearScoring | None = None
    explanation: str = "initial policy"
    evidence: dict[str, float] = Field(default_factory=dict)
    clamps: list[str] = Field(default_factory=list)
    updated_at: datetime | None = None

    def bucket_policy(self, bucket: str) -> BucketPolicy:
        """The bucket's values, else the agent-wide ones, else an empty bucket."""
        found = self.buckets.get(bucket) or self.buckets.get(GLOBAL_BUCKET)
        return found if found is not None else BucketPolicy(epsilon=self.epsilon)

    def action_probabilities(
        self, bucket: str, actions: Sequence[str], explore: bool = True,
        context: Mapping[str, object] | None = None,
    ) -> dict[str, float]:
        """Probability of each action in ``bucket`` (and ``context``, for linear scoring).

        With linear scoring (``linear`` set and the bucket has ``base``), epsilon-greedy over
        :meth:`LinearScoring.scores` at the context's features. Otherwise, with a
        published ``probs`` distribution, that distribution restricted to
        ``actions`` (renormalized; an action it does not name gets the bucket's
        ``epsilon`` share spread evenly); otherwise epsilon-greedy over ``values`` with ties
        shared evenly. Without exploration (``explore=False`` here, e.g. a ``no_explore``
        context, or ``self.explore`` false) all mass goes to the first greedy action, so the
        decision is deterministic.

        >>> doc = PolicyDocument(agent_id="a", buckets={"*": BucketPolicy(
        ...     values={"x": 0.2, "y": 0.1}, probs={"x": 0.7, "y": 0.3})})
        >>> doc.action_probabilities("*", ["x", "y"])
        {'x': 0.7, 'y': 0.3}
        >>> doc.action_probabilities("*", ["x", "y"], explore=False)
        {'x': 1.0, 'y': 0.0}
        """
        bp = self.bucket_policy(bucket)
        k = len(actions)
        lin = self.linear
        if lin is not None and bp.base is not None:
            may = self.explore and explore
            scores = lin.scores(context or {}, bp.base, bp.centers, bp.center, actions)
            probs = epsilon_greedy(scores, bp.epsilon if may else 0.0, first_only=not may)
            return {a: round(p, 12) for a, p in probs.items()}  # 0.965517, not ...0001
        if self.explore and explore:
            pp = bp.probs
            if pp:
                raw = [pp.get(a, -1.0) for a in actions]
                missing = sum(1 for x in raw if x < 0.0)
                fill = bp.epsilon / k if missing else 0.0
                vals = [x if x >= 0.0 else fill for x in raw]
                total = sum(vals)
                if total > 0.0:
                    return {a: v / total for a, v in zip(actions, vals, strict=True)}
            eps = bp.epsilon
        else:
            eps = 0.0
        # no exploration at all: ties go to the first declared action
        return epsilon_greedy({a: bp.values.get(a, 0.0) for a in actions}, eps,
                              first_only=eps == 0.0 and not (self.explore and explore))

    def choose(
        self, bucket: str, actions: Sequence[str], rng: random.Random, explore: bool = True,
        context: Mapping[str, object] | None = None,
    ) -> tuple[str, float, bool]:
        """Pick an action; returns ``(action, propensity, explored)``.

        ``explored`` is true when the action is not one of the most probable ones;
        ``explore=False`` forbids exploration for this decision.

        >>> doc = PolicyDocument(agent_id="a", buckets={"*": BucketPolicy(
        ...     values={"x": 0.2}, probs={"x": 0.25, "y": 0.75})})
        >>> doc.choose("*", ["x", "y"], random.Random(0))
        ('y', 0.75, False)
        >>> doc.choose("*", ["x", "y"], random.Random(0), explore=False)
        ('x', 1.0, False)
        """
        return draw(self.action_probabilities(bucket, actions, explore, context), actions, rng)


def epsilon_greedy(values: Mapping[str, float], epsilon: float, *, first_only: bool = False,
                   tol: float = 0.0) -> dict[str, float]:
    """``epsilon`` spread evenly over the actions of ``values``, ``1 - epsilon`` on the best
    one(s): shared evenly by those within ``tol`` of the top, or all on the first of them
    with ``first_only``.

    >>> epsilon_greedy({"x": 0.5, "y": 0.5, "z": 0.1}, 0.75)
    {'x': 0.375, 'y': 0.375, 'z': 0.25}
    >>> epsilon_greedy({"x": 0.5, "y": 0.5}, 0.0, first_only=True)
    {'x': 1.0, 'y': 0.0}
    """
    k = len(values)
    top = max(values.values())
    greedy = [a for a, v in values.items() if v >= top - tol]
    if first_only:
        greedy = greedy[:1]
    probs = {a: epsilon / k for a in values}
    for a in greedy:
        probs[a] += (1.0 - epsilon) / len(greedy)
    return probs


def draw(probs: Mapping[str, float], actions: Sequence[str], rng: random.Random,
         top: float | None = None) -> tuple[str, float, bool]:
    """Sample ``actions`` by ``probs`` with one ``rng.random()``; returns
    ``(action, propensity, explored)``. ``top`` is ``max(probs.values())`` if known.

    >>> draw({"x": 0.25, "y": 0.75}, ["x", "y"], random.Random(0))
    ('y', 0.75, False)
    """
    r = rng.random()
    acc = 0.0
    chosen = None
    for a in actions:
        p = probs[a]
        acc += p
        if r < acc and p > 0.0:
            chosen = a
            break
    if chosen is None:  # rounding left r above the sum: take the last possible action
        chosen = next(a for a in reversed(actions) if probs[a] > 0.0)
    if top is None:
        top = max(probs.values())
    p = probs[chosen]
    return chosen, p, p < top


class TraitRule(BaseModel):
    """Limits on one trait for every agent a :class:`SafetyRules` scope covers."""

    model_config = ConfigDict(extra="forbid")

    floor: Unit = 0.0
    ceiling: Unit = 1.0


class SafetyScope(BaseModel):
    """Rules of one scope (a tenant's default, or one template of a tenant)."""

    model_config = ConfigDict(extra="forbid")

    traits: dict[str, TraitRule] = Field(default_factory=dict)
    max_step: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    explore: bool | None = None
    probe_share_max: Unit | None = None


class SafetyRules(BaseModel):
    """Tenant-wide safety rules as data: defaults, per-tenant and per-template overrides.

    The most specific scope wins field by field: ``tenants[t].templates[name]``, then
    ``tenants[t].default``, then ``templates[name]``, then ``default``. Trait rules combine
    by intersection (the highest floor, the lowest ceiling).

    >>> rules = SafetyRules.model_validate({"default": {"max_step": 0.05},
    ...     "templates": {"companion": {"traits": {"humor": {"ceiling": 0.8}}}}})
    >>> r = rules.resolve("acme", "companion")
    >>> r.max_step, r.traits["humor"].ceiling, r.explore
    (0.05, 0.8, True)
    """

    model_config = ConfigDict(extra="forbid")

    version: str = "default"
    default: SafetyScope = Field(default_factory=SafetyScope)
    templates: dict[str, SafetyScope] = Field(default_factory=dict)
    tenants: dict[str, TenantSafety] = Field(default_factory=dict)

    def resolve(self, tenant: str, template: str | None) -> ResolvedSafety:
        """The effective rules for an agent of ``template`` under ``tenant``."""
        scopes: list[SafetyScope] = [self.default]
        if template is not None and template in self.templates:
            scopes.append(self.templates[template])
        ten = self.tenants.get(tenant)
        if ten is not None:
            scopes.append(ten.default)
            if template is not None and template in ten.templates:
                scopes.append(ten.templates[template])
        max_step, explore, share_max = 0.05, True, 1.0
        traits: dict[str, TraitRule] = {}
        for sc in scopes:
            if sc.max_step is not None:
                max_step = sc.max_step
            if sc.explore is not None:
                explore = sc.explore
            if sc.probe_share_max is not None:
                share_max = sc.probe_share_max
            for name, tr in sc.traits.items():
                cur = traits.get(name)
                traits[name] = tr if cur is None else TraitRule(
                    floor=max(cur.floor, tr.floor), ceiling=min(cur.ceiling, tr.ceiling))
        return ResolvedSafety(traits=traits, max_step=max_step, explore=explore,
                              probe_share_max=share_max)


class TenantSafety(BaseModel):
    """A tenant's own default scope and per-template scopes."""

    model_config = ConfigDict(extra="forbid")

    default: SafetyScope = Field(default_factory=SafetyScope)
    templates: dict[str, SafetyScope] = Field(default_factory=dict)


class ResolvedSafety(BaseModel):
    """The effective safety rules for one agent (see :meth:`SafetyRules.resolve`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traits: dict[str, TraitRule] = Field(default_factory=dict)
    max_step: float = 0.05
    explore: bool = True
    probe_share_max: float = 1.0

    def limits(self, trait: str, bounds: tuple[float, float]) -> tuple[float, float]:
        """Allowed interval of ``trait``: the agent's ``bounds`` inside the scope's rule.

        >>> ResolvedSafety(traits={"h": TraitRule(ceiling=0.6)}).limits("h", (0.2, 0.9))
        (0.2, 0.6)
        """
        lo, hi = bounds
        rule = self.traits.get(trait)
        if rule is not None:
            lo, hi = max(lo, rule.floor), min(hi, rule.ceiling)
        if lo > hi:  # contradictory rules: the tighter ceiling wins
            lo = hi
        return float(lo), float(hi)


SafetyRules.model_rebuild()
