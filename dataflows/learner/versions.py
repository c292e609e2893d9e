"""Versions of a learner's policy: explanations and rollback.

A new version is published when a greedy action changed, a trait moved, or after
``every_n_rewards`` rewards (:meth:`~dataflows.learner.base.PolicyLearner.maybe_publish`);
each carries a one-sentence explanation (:meth:`Versioning._explain`). :meth:`Versioning.rollback`
restores an older document's values and traits as the next version.
"""

from __future__ import annotations

from typing import Any

from river import stats

from dataflows.learner.archetypes import PriorState
from dataflows.learner.linear import LinearStats
from dataflows.learner.traits import TraitTuning
from schemas.buckets import GLOBAL_BUCKET
from schemas.policy import PolicyDocument

#: Per bucket: ``(values, counts)`` per action.
Stats = dict[str, tuple[dict[str, float], dict[str, int]]]


class Versioning(TraitTuning, PriorState):
    """Mixin of :class:`~dataflows.learner.base.PolicyLearner`: explanations and rollback."""

    published_greedy: dict[str, str]
    pending_rewards: int
    total_rewards: int
    probs: dict[str, dict[str, float]]
    last_update_ts: float | None
    forced_note: str | None
    linear: LinearStats | None

    def _explain(self, changed: list[str], greedy: dict[str, str], stats_: Stats) -> str:
        named = [b for b in changed if b != GLOBAL_BUCKET] or changed
        if named:
            b = named[0]
            vals, counts = stats_[b]
            g = greedy[b]
            was = self.published_greedy.get(b)
            tail = f", was {was}" if was else ""
            more = f" (and {len(named) - 1} more buckets)" if len(named) > 1 else ""
            if g not in counts:
                why = ("the population prior favours it" if g in vals and self.prior_w
                       else "every tried action there has a negative mean reward")
                return f"{g} now leads in {b}: untried, {why}{tail}{more}."
            return (f"{g} now leads in {b}: mean reward {vals[g]:+.2f} over {counts[g]} "
                    f"rewards{tail}{more}.")
        return (f"Value estimates refreshed from {self.pending_rewards} new rewards "
                f"({self.total_rewards} in all); no greedy action changed.")

    # -- rollback -------------------------------------------------------------------------
    def _prior_weights_of(self, old: PolicyDocument) -> list[float] | None:
        """The archetype weights ``old`` was blended with (from its evidence), if any and the
        learner holds that prior (the same version: a live agent may have been handed a newer
        one since, and then ``old``'s values are restored as published)."""
        prior, ev = self.prior, old.evidence
        if prior is None or ev.get("prior.version") != float(prior.version):
            return None
        names = [f"prior.weight.{a.name}" for a in prior.archetypes]
        if not any(k in ev for k in names):
            return None
        return [float(ev.get(k, 0.0)) for k in names]

    def rollback(self, doc: dict[str, Any] | PolicyDocument, ts: float | None = None) -> None:
        """Restore the values and traits of an older document; the next publish is new.

        The restored version is published by the next :meth:`maybe_publish` as
        ``version = current + 1`` with ``parent_version = current`` and the explanation
        "rolled back to vN".
        """
        old = doc if isinstance(doc, PolicyDocument) else PolicyDocument.model_validate(doc)
        weights = self._prior_weights_of(old)
        prior = self.prior
        self.means = {}
        for b, bp in old.buckets.items():
            arms: dict[str, stats.Mean] = {}
            for a, v in bp.values.items():
                n = bp.counts.get(a, 0)
                if n > 0:
                    pv = prior.value(b, a, weights) if weights and prior is not None else None
                    if pv is not None and prior is not None:  # the document's values are
                        s = prior.strength  # blended with the prior: take the own mean back
                        v = (v * (n + s) - s * pv) / n
                    m = stats.Mean()
                    m.update(v, w=float(n))
                    arms[a] = m
            if arms:
                self.means[b] = arms
        for t in list(self.traits):
            if t in old.traits:
                self.traits[t] = float(old.traits[t])
        lin = self.linear
        if lin is not None:  # slopes and centres come back; a changed feature list: none
            same = old.linear is not None and tuple(old.linear.features) == lin.features
            lin.restore(old.linear.weights if same and old.linear is not None else {},
                        {b: (bp.centers, bp.counts, bp.values) for b, bp in old.buckets.items()}
                        if same else {})
        self.probe_stats = {}
        self.trait_moves, self.level_stats = {}, None
        self.probs = {}
        self.dirty = dict.fromkeys(self.means)
        self._cache = {}
        self.published_greedy = {}
        if self.prior is not None:
            self.set_prior(self.prior)
        if ts is not None:
            self.last_update_ts = ts
        self.forced_note = f"rolled back to v{old.version}."
