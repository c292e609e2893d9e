"""Population priors: what agents sharing a ``template`` learned, as archetypes.

The population step of the dataflow (:mod:`dataflows.population`) clusters the value tables
of a template's agents into archetypes and publishes a :class:`PriorDocument`. A learner of
that template then

1. weighs the archetypes by how well each explains its own rewards so far
   (:func:`archetype_loglik` accumulated per reward, :func:`archetype_weights`), starting
   from the archetypes' population shares before any reward;
2. takes the weighted prior value of each (bucket, action) (:meth:`PriorDocument.value`);
3. blends it with its own evidence as ``strength`` pseudo-rewards (:func:`blend`), so the
   prior fades as the agent's own counts grow.

Everything here is pure and small; the same functions serve the dataflow's learner and the
in-process evaluation (``bench.learning``).

>>> doc = PriorDocument(template="t", actions=["a", "b"], strength=4.0, archetypes=[
...     Archetype(name="likes_a", size=3, values={"*": {"a": 0.8, "b": -0.8}}),
...     Archetype(name="likes_b", size=1, values={"*": {"a": -0.8, "b": 0.8}})])
>>> w = archetype_weights(doc, [0.0, 0.0])
>>> [round(x, 2) for x in w]
[0.75, 0.25]
>>> ll = [0.0, 0.0]
>>> for _ in range(3):   # three rewards say this person likes b
...     ll = archetype_loglik(doc, ll, "*", "b", 1.0)
>>> w = archetype_weights(doc, ll)
>>> round(doc.value("*", "b", w), 2) > 0.5
True
>>> blend(mean=None, n=0, prior=0.6, strength=4.0), blend(mean=-1.0, n=4, prior=0.6, strength=4.0)
(0.6, -0.2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from schemas.buckets import GLOBAL_BUCKET

#: Probabilities derived from prior values are kept inside [P_MIN, 1 - P_MIN].
P_MIN = 0.03


class Archetype(BaseModel):
    """One cluster of the population: its size and mean value per bucket and action."""

    model_config = ConfigDict(extra="forbid")

    name: str
    size: Annotated[int, Field(ge=0)] = 0
    values: dict[str, dict[str, float]] = Field(default_factory=dict)


class PriorDocument(BaseModel):
    """The prior of one template under one tenant (what the population step publishes)."""

    model_config = ConfigDict(extra="forbid")

    tenant: str = "default"
    template: str
    version: Annotated[int, Field(ge=0)] = 0
    actions: list[str] = Field(default_factory=list)
    strength: Annotated[float, Field(ge=0.0, le=100.0)] = 4.0
    evidence_weight: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    archetypes: list[Archetype] = Field(default_factory=list)
    agents: Annotated[int, Field(ge=0)] = 0
    explanation: str = ""
    updated_at: datetime | None = None

    def value(self, bucket: str, action: str, weights: Sequence[float]) -> float | None:
        """Weighted prior value of ``action`` in ``bucket`` (falls back to ``*``)."""
        num = 0.0
        den = 0.0
        for arch, w in zip(self.archetypes, weights, strict=False):
            table = arch.values.get(bucket) or arch.values.get(GLOBAL_BUCKET)
            if table is None or action not in table or w <= 0.0:
                continue
            num += w * table[action]
            den += w
        return num / den if den > 0.0 else None


def prior_key(prefix: str, tenant: str, template: str) -> str:
    """Redis key of a template's prior (tenant-level key, like compile rules).

    >>> prior_key("rf", "acme", "companion")
    'rf:acme:prior:companion'
    """
    return f"{prefix}:{tenant}:prior:{template}"


def prior_tables(
    doc: PriorDocument, actions: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
) -> dict[str, dict[str, float]]:
    """Per bucket, the prior value of each action: archetype values weighted by ``weights``
    (default: the archetypes' population shares, i.e. before any reward of the agent).

    This is what a new agent of the template believes before its own first reward; the
    gateway writes it as the agent's version-0 policy, and the learner's first versions
    (``PolicyLearner.bucket_values`` with no own counts) start from the same numbers.

    >>> doc = PriorDocument(template="t", actions=["a", "b"], archetypes=[
    ...     Archetype(name="x", size=3, values={"*": {"a": 0.8, "b": -0.8}}),
    ...     Archetype(name="y", size=1, values={"*": {"a": -0.8, "b": 0.8}})])
    >>> prior_tables(doc)
    {'*': {'a': 0.4, 'b': -0.4}}
    >>> prior_tables(doc, actions=["b"], weights=[0.0, 1.0])
    {'*': {'b': 0.8}}
    """
    w = list(weights) if weights is not None else archetype_weights(doc, [])
    names = list(actions) if actions is not None else list(doc.actions)
    buckets: dict[str, None] = {}
    for arch in doc.archetypes:
        buckets.update(dict.fromkeys(arch.values))
    out: dict[str, dict[str, float]] = {}
    for b in buckets:
        row = {}
        for a in names:
            v = doc.value(b, a, w)
            if v is not None:
                row[a] = round(v, 6)
        if row:
            out[b] = row
    return out


def unblend(value: float, n: int | float, prior: float | None, strength: float) -> float:
    """The own mean behind a value :func:`blend` made from ``n`` rewards (its inverse).

    >>> unblend(blend(mean=-1.0, n=4, prior=0.6, strength=4.0), 4, 0.6, 4.0)
    -1.0
    >>> unblend(0.3, 5, None, 4.0)
    0.3
    """
    if prior is None or strength <= 0.0 or n <= 0:
        return value
    return min(1.0, max(-1.0, ((n + strength) * value - strength * prior) / n))


def _p(v: float) -> float:
    return min(1.0 - P_MIN, max(P_MIN, (v + 1.0) / 2.0))


def archetype_loglik(
    doc: PriorDocument, loglik: Sequence[float], bucket: str, action: str, reward: float
) -> list[float]:
    """Add one reward's log-likelihood under each archetype to ``loglik``.

    A reward in [-1, 1] reads as a success fraction ``q = (r + 1) / 2`` of a Bernoulli whose
    probability under archetype ``j`` is ``p_j = (v_j + 1) / 2`` (``v_j`` its value of the
    action in the bucket); the term is ``evidence_weight * (q log p_j + (1 - q) log(1 - p_j))``.
    """
    q = min(1.0, max(0.0, (reward + 1.0) / 2.0))
    out = list(loglik) if len(loglik) == len(doc.archetypes) else [0.0] * len(doc.archetypes)
    for j, arch in enumerate(doc.archetypes):
        table = arch.values.get(bucket) or arch.values.get(GLOBAL_BUCKET) or {}
        v = table.get(action)
        if v is None:
            continue
        p = _p(v)
        out[j] += doc.evidence_weight * (q * math.log(p) + (1.0 - q) * math.log(1.0 - p))
    return out


def archetype_weights(doc: PriorDocument, loglik: Sequence[float]) -> list[float]:
    """Posterior weight of each archetype: population share times likelihood, normalized."""
    if not doc.archetypes:
        return []
    total = sum(max(a.size, 1) for a in doc.archetypes)
    ll = list(loglik) if len(loglik) == len(doc.archetypes) else [0.0] * len(doc.archetypes)
    logs = [math.log(max(a.size, 1) / total) + x for a, x in zip(doc.archetypes, ll, strict=True)]
    top = max(logs)
    ws = [math.exp(x - top) for x in logs]
    s = sum(ws)
    return [w / s for w in ws]


def blend(mean: float | None, n: int | float, prior: float | None, strength: float) -> float | None:
    """Own evidence (``n`` rewards with ``mean``) blended with ``strength`` prior pseudo-rewards.

    ``None`` when there is neither evidence nor prior.
    """
    if prior is None or strength <= 0.0:
        return mean if n > 0 else None
    if n <= 0 or mean is None:
        return prior
    return (n * mean + strength * prior) / (n + strength)
