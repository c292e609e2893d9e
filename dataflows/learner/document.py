"""The policy document a learner publishes: per-bucket entries, traits, safety, evidence.

:func:`build_document` turns a :class:`~dataflows.learner.base.PolicyLearner`'s state into
the JSON-able form of :class:`schemas.policy.PolicyDocument` (the hot path of every publish:
no pydantic). A bucket's entry carries values, counts and epsilon, and either the explicit
distribution ``probs`` the algorithm computed or, with linear scoring
(:mod:`dataflows.learner.linear`), ``base``, ``centers`` and ``center`` for the gateway's
per-context scores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas.buckets import GLOBAL_BUCKET

if TYPE_CHECKING:
    from dataflows.learner.base import PolicyLearner
    from dataflows.learner.versions import Stats


def build_document(lrn: PolicyLearner, stats_: Stats | None = None) -> dict[str, Any]:
    """The learner's current policy document as JSON-able data, in
    :class:`~schemas.policy.PolicyDocument` form (per-bucket entries are cached until the
    bucket changes; clamps are counted once)."""
    spec = lrn.spec
    explore = lrn.explore_allowed
    buckets: dict[str, dict[str, Any]] = {}
    cache = lrn._cache
    lin = lrn.linear
    weights = lin.weights() if lin is not None else {}
    for b, (vals, counts) in (stats_ if stats_ is not None else lrn.bucket_stats()).items():
        hit = cache.get(b)
        if hit is not None and hit[3] is not None and b not in lrn.dirty:
            buckets[b] = hit[3]
            continue
        n = sum(counts.values()) + lrn.pseudo_evidence(b)
        eps = round(lrn.epsilon_for(n), 6) if explore else 0.0
        entry: dict[str, Any] = {"values": {a: round(v, 6) for a, v in vals.items()},
                                 "counts": dict(counts), "epsilon": eps}
        if lin is not None:  # the slopes are the document's; a bucket keeps its values
            entry["base"] = {a: round(v, 6) for a, v in
                             lrn.greedy_values(b, vals, counts).items()}
            entry["centers"] = lin.cell_centers(b)
            entry["center"] = (lin.center(b) or lin.center(GLOBAL_BUCKET)
                               or [0.0] * len(lin.features))
        elif explore:
            if b in lrn.dirty or b not in lrn.probs:
                dist = lrn.bucket_distribution(b, vals, counts, eps)
                if dist is None:
                    lrn.probs.pop(b, None)
                else:
                    lrn.probs[b] = dist
            if b in lrn.probs:
                entry["probs"] = lrn.probs[b]
        buckets[b] = entry
        if hit is not None:
            cache[b] = (hit[0], hit[1], hit[2], entry)
    lrn.dirty = {}
    traits, clamps = lrn.safe_traits()
    probe, more = lrn.probe_config()
    clamps += more
    _count_clamps(lrn, clamps)
    updated = (datetime.fromtimestamp(lrn.last_update_ts, UTC).isoformat()
               if lrn.last_update_ts is not None else None)
    bounds = {t: list(lrn._limits(t)) for t in traits}
    if spec is not None:
        bounds |= {k: list(lrn._limits(k)) for k in spec.trait_bounds}
    evidence: dict[str, float] = {"rewards": float(lrn.total_rewards)}
    evidence.update(lrn.trait_evidence)
    if lrn.prior_w and lrn.prior is not None:
        evidence["prior.version"] = float(lrn.prior.version)
        for arch, w in zip(lrn.prior.archetypes, lrn.prior_w, strict=True):
            evidence[f"prior.weight.{arch.name}"] = round(w, 4)
    return {
        "agent_id": lrn.agent_id, "tenant": lrn.tenant, "version": lrn.version,
        "parent_version": lrn.parent_version, "algorithm": lrn.algorithm,
        "epsilon": lrn.base_epsilon if explore else 0.0,
        "explore": explore, "traits": traits, "trait_bounds": bounds,
        "buckets": buckets, "reply_probability": {}, "probe": probe,
        "linear": ({"features": list(lin.features), "weights": weights}
                   if lin is not None else None),
        "explanation": lrn.explanation, "evidence": evidence,
        "clamps": clamps, "updated_at": updated,
    }


def _count_clamps(lrn: PolicyLearner, clamps: list[str]) -> None:
    """Remember the document's clamps; count the new ones in the flow's metrics."""
    if clamps == lrn.clamps_counted:
        return
    new = [c for c in clamps if c not in lrn.clamps_counted]
    lrn.clamps_counted = clamps
    lrn.clamps = clamps
    if new:
        from dataflows.metrics import flow_metrics

        flow_metrics().policy_clamps.inc(len(new))
