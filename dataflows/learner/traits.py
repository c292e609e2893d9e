"""Trait tuning of a learner: probe statistics, bounded steps, probe scale, safety limits.

A share of decisions probes one trait by ``+delta`` or ``-delta`` (the gateway applies it,
:func:`gateway.core.apply_probe`). Per trait, the rewards of the two signs go to
``river.stats.Var``; the rewards of decisions without a probe go to one more ``Var`` (the
*base*). Two finite differences come out of them:

* **Slope** ``plus - minus``: when it is beyond ``probe_z`` standard errors with
  ``probe_min_count`` rewards per sign, the trait moves one step toward the winner and its
  probe statistics restart. The step is the rules' ``max_step`` (at most ``probe_delta``);
  it halves when the winner reverses the trait's previous move (the trait is oscillating
  around its best value) down to :data:`MIN_STEP`, and doubles back on moves in the same
  direction.
* **Cost of probing** ``base - probed``, over every probe and every decision without one
  since the probe scale last changed: near the person's taste a probe in any direction is
  worse than the current traits. When ``flat_rounds * 2 * probe_min_count`` probes per
  probed trait passed with at most ``flat_moves`` trait moves and no such cost (z below 1),
  the rewards do not react to changes of this size (far from the taste, where satisfaction
  is flat and small probes carry no direction): the probe delta doubles (up to
  :data:`MAX_PROBE_DELTA`) and the probe statistics restart. A clear cost (z at least
  ``probe_z``) at a widened scale halves it again and doubles the wait before the next
  widening. Probes are applied by the gateway inside the trait bounds, and a published trait
  still moves by at most ``max_step`` per version.

Everything is small plain data (``Var`` objects, floats and ints), so the state stays cheap
to snapshot.
"""

from __future__ import annotations

import math
from typing import Any

from river import stats

from schemas.agent import AgentSpec
from schemas.policy import ResolvedSafety

#: Default share of decisions that probe a trait when the spec does not say.
DEFAULT_PROBE_SHARE = 0.2
#: The widest probe the learner asks for (the policy schema allows 0.5).
MAX_PROBE_DELTA = 0.4
#: The smallest step a trait takes after repeated reversals.
MIN_STEP = 0.0125


def _z(a: stats.Var, b: stats.Var) -> tuple[float, float]:
    """``(mean(a) - mean(b), z)`` of two samples (Welch standard error)."""
    na, nb = a.mean.n, b.mean.n
    diff = a.mean.get() - b.mean.get()
    se = math.sqrt(max(a.get(), 1e-6) / na + max(b.get(), 1e-6) / nb)
    return diff, diff / se


class TraitTuning:
    """Mixin of :class:`~dataflows.learner.base.PolicyLearner`: probes, steps, limits.

    >>> from dataflows.learner import make_learner
    >>> from schemas.agent import AgentSpec
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a"], traits={"humor": 0.5})
    >>> lrn = make_learner("ag", spec=spec, probe_min_count=3)
    >>> for i in range(3):
    ...     lrn.update("*", "a", 0.8, float(i), probe=("humor", 0.1))
    ...     lrn.update("*", "a", -0.2 - 0.01 * i, float(i), probe=("humor", -0.1))
    >>> lrn.maybe_publish()["traits"]
    {'humor': 0.55}
    """

    spec: AgentSpec | None
    safety: ResolvedSafety
    traits: dict[str, float]
    probe_stats: dict[str, tuple[stats.Var, stats.Var]]
    trait_evidence: dict[str, float]
    probe_delta: float
    probe_min_count: int
    probe_z: float
    #: per trait: ``(sign of the last move, current step)``
    trait_moves: dict[str, tuple[float, float]]
    #: rewards without / with a probe since the probe scale last changed (``None`` until
    #: the agent has traits: trait-less agents keep no probe state at all)
    level_stats: tuple[stats.Var, stats.Var] | None
    #: probe scale: the published delta is ``probe_delta * 2 ** probe_level``
    probe_level: int
    #: times a widened probe turned out to cost reward (each doubles the wait to widen)
    probe_backoff: int
    #: trait moves since the probe scale last changed
    level_moves: int
    #: probes per probed trait, in units of ``2 * probe_min_count``, before widening
    flat_rounds: int = 2
    #: trait moves (noise) a flat stretch may contain
    flat_moves: int = 1

    def _init_traits(self) -> None:
        self.traits = {}
        self.probe_stats = {}
        self.trait_evidence = {}
        self.trait_moves = {}
        self.level_stats = None
        self.probe_level = 0
        self.probe_backoff = 0
        self.level_moves = 0

    @property
    def explore_allowed(self) -> bool:
        """Exploration (and probing) is allowed by the agent and by the tenant rules."""
        spec_ok = self.spec.explore if self.spec is not None else True
        return spec_ok and self.safety.explore

    @property
    def current_delta(self) -> float:
        """The probe delta the document asks for (widened while rewards are flat).

        >>> from dataflows.learner import make_learner
        >>> lrn = make_learner("ag")
        >>> lrn.current_delta, setattr(lrn, "probe_level", 5), lrn.current_delta
        (0.1, None, 0.4)
        """
        return min(MAX_PROBE_DELTA, self.probe_delta * 2.0 ** self.probe_level)

    def _limits(self, trait: str) -> tuple[float, float]:
        bounds = self.spec.bounds_for(trait) if self.spec is not None else (0.0, 1.0)
        return self.safety.limits(trait, bounds)

    def _forget_trait(self, trait: str) -> None:
        self.probe_stats.pop(trait, None)
        self.trait_moves.pop(trait, None)

    def _observe_probe(self, trait: str, delta: float, reward: float) -> None:
        if trait not in self.traits or delta == 0.0:
            return
        pair = self.probe_stats.get(trait)
        if pair is None:
            pair = self.probe_stats[trait] = (stats.Var(), stats.Var())
        pair[1 if delta > 0 else 0].update(reward)
        self._level()[1].update(reward)

    def _observe_base(self, reward: float) -> None:
        self._level()[0].update(reward)

    def _level(self) -> tuple[stats.Var, stats.Var]:
        if self.level_stats is None:
            self.level_stats = (stats.Var(), stats.Var())
        return self.level_stats

    def _trait_steps(self) -> list[str]:
        """Move traits whose probes show a clear winner; returns one note per change."""
        notes: list[str] = []
        if not self.explore_allowed:
            return notes
        for trait in sorted(self.probe_stats):
            neg, pos = self.probe_stats[trait]
            nn, pn = int(neg.mean.n), int(pos.mean.n)
            if nn < self.probe_min_count or pn < self.probe_min_count:
                continue
            diff, z = _z(pos, neg)
            if abs(z) < self.probe_z:
                continue
            note = self._step(trait, diff, z, pos, neg)
            if note:
                notes.append(note)
        if self.level_stats is not None:
            notes += self._rescale()
        return notes

    def _step(self, trait: str, diff: float, z: float, pos: stats.Var, neg: stats.Var) -> str:
        cur = self.traits[trait]
        lo, hi = self._limits(trait)
        full = min(self.safety.max_step, self.probe_delta)
        sign = 1.0 if diff > 0 else -1.0
        last, step = self.trait_moves.get(trait, (0.0, full))
        step = max(min(MIN_STEP, full), step / 2.0) if last == -sign else min(full, step * 2.0)
        new = round(cur + sign * step, 6)
        if abs(new - cur) > step:  # rounding must not stretch the step past max_step
            new = cur + sign * step
        new = min(hi, max(lo, new))  # clamp last: rounding can't escape the bounds
        del self.probe_stats[trait]
        self.trait_moves[trait] = (sign, step)
        self.level_moves += 1
        pm, nm = pos.mean.get(), neg.mean.get()
        self.trait_evidence.update({
            f"probe.{trait}.plus_mean": round(pm, 6), f"probe.{trait}.minus_mean": round(nm, 6),
            f"probe.{trait}.plus_n": float(pos.mean.n), f"probe.{trait}.minus_n": float(neg.mean.n),
            f"probe.{trait}.z": round(z, 3)})
        if new == cur:
            return ""
        self.traits[trait] = new
        d = self.current_delta
        won, lost = ((pm, pos, "+"), (nm, neg, "-")) if sign > 0 else ((nm, neg, "-"),
                                                                        (pm, pos, "+"))
        return (f"{trait} {cur:.2f} -> {new:.2f}: the {won[2]}{d:g} probe won (mean reward "
                f"{won[0]:+.2f} over {int(won[1].mean.n)} against {lost[0]:+.2f} over "
                f"{int(lost[1].mean.n)} for {lost[2]}{d:g}, z={z:+.1f})")

    def _rescale(self) -> list[str]:
        """Widen the probes while they cost nothing; narrow them again when they clearly do."""
        if self.level_stats is None:
            return []
        base, probed = self.level_stats
        n = probed.mean.n
        unit = 2 * self.probe_min_count * max(1, len(self.traits))
        if n < unit or base.mean.n < self.probe_min_count:
            return []
        cost, z = _z(base, probed)
        if self.probe_level > 0 and z >= self.probe_z:
            self.probe_backoff = min(self.probe_backoff + 1, 6)
            return [self._set_level(self.probe_level - 1, f"probes cost {cost:+.2f} reward "
                                    f"(z={z:+.1f}): the traits are near a peak")]
        if n < self.flat_rounds * unit * 2 ** self.probe_backoff:
            return []
        quiet = self.level_moves <= self.flat_moves
        if z < 1.0 and quiet and self.current_delta < MAX_PROBE_DELTA:
            return [self._set_level(self.probe_level + 1, f"rewards did not react to "
                                    f"{int(n)} probes (cost {cost:+.2f}, z={z:+.1f})")]
        self.level_stats = None
        self.level_moves = 0
        return []

    def _set_level(self, level: int, why: str) -> str:
        old = self.current_delta
        self.probe_level = level
        self.probe_stats = {}
        self.level_stats = None
        self.level_moves = 0
        return f"probe delta {old:g} -> {self.current_delta:g}: {why}"

    def safe_traits(self) -> tuple[dict[str, float], list[str]]:
        """Traits inside every limit, and a note for each one that had to be clamped."""
        out: dict[str, float] = {}
        clamps: list[str] = []
        for t, v in self.traits.items():
            lo, hi = self._limits(t)
            c = min(hi, max(lo, v))
            if c != v:
                clamps.append(f"traits.{t}: {v:.4g} -> {c:.4g} (allowed [{lo:.4g}, {hi:.4g}])")
                self.traits[t] = c
            out[t] = c
        return out, clamps

    def probe_config(self) -> tuple[dict[str, Any], list[str]]:
        """The probe block of the document (share 0 when exploring is not allowed)."""
        clamps: list[str] = []
        delta = min(self.current_delta, 0.5)
        if not self.explore_allowed or not self.traits:
            return {"share": 0.0, "delta": delta, "traits": []}, clamps
        want = self.spec.probe_share if self.spec is not None else None
        share = DEFAULT_PROBE_SHARE if want is None else want
        if share > self.safety.probe_share_max:
            clamps.append(f"probe.share: {share:.4g} -> {self.safety.probe_share_max:.4g} "
                          "(tenant rule)")
            share = self.safety.probe_share_max
        return {"share": share, "delta": delta, "traits": sorted(self.traits)}, clamps
