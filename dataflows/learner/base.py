"""Base class of per-agent learners: values, trait tuning, safety, versions, explanations.

A learner keeps small, picklable state (River ``stats`` objects and plain dicts, no RNG):
Bytewax snapshots it every epoch, so it must stay cheap to copy. Randomness (Thompson
sampling's draws) comes from a seed derived from the agent, the bucket and the version, so
the same rewards always give the same documents.

What the base class does for every algorithm:

* **Values.** A running mean reward (``river.stats.Mean``) per context bucket and action,
  plus the agent-wide bucket ``*``; blended with the template's population prior
  (:mod:`schemas.priors`) as pseudo-rewards when one is attached.
* **Distribution.** Subclasses may publish an explicit action distribution per bucket
  (:meth:`bucket_distribution`); the gateway samples from it, so the logged propensity is
  exact by construction. Without one the gateway plays epsilon-greedy over the values.
* **Trait tuning.** Rewards of decisions that probed a trait by ``+delta`` or ``-delta``
  go to ``river.stats.Var`` per (trait, sign). When both signs have ``probe_min_count``
  rewards and their means differ by more than ``probe_z`` standard errors, the trait moves
  one bounded step toward the winner and that trait's probe statistics restart.
* **Safety.** Every published document is passed through the agent's trait bounds, the
  tenant/template rules (:class:`schemas.policy.SafetyRules`, data loaded by
  :mod:`dataflows.learner.safety`), the maximum step, and the exploration switches; whatever
  had to be clamped is listed in ``clamps`` and counted in
  ``rewardflow_policy_clamps_total``.
* **Versions.** A new version when a greedy action changed, a trait moved, or after
  ``every_n_rewards`` rewards; with ``parent_version``, evidence and a one-sentence
  explanation. :meth:`rollback` restores an older document as a new version.
"""

from __future__ import annotations

import math
import zlib
from abc import ABC
from datetime import UTC, datetime
from typing import Any

from river import stats

from schemas.agent import AgentSpec
from schemas.buckets import GLOBAL_BUCKET
from schemas.policy import PolicyDocument, ResolvedSafety, SafetyRules
from schemas.priors import PriorDocument, archetype_loglik, archetype_weights, blend

#: Default share of decisions that probe a trait when the spec does not say.
DEFAULT_PROBE_SHARE = 0.2

Stats = dict[str, tuple[dict[str, float], dict[str, int]]]


#: One shared instance per (tenant, template, version) in this process: every agent of a
#: template refers to the same prior (about 20 KB as Python objects) instead of its own copy.
_PRIORS: dict[tuple[str, str, int], PriorDocument] = {}
_PRIORS_MAX = 1024


def intern_prior(doc: PriorDocument) -> PriorDocument:
    """The process's shared instance of ``doc`` (equal content, same key), or ``doc``.

    >>> from schemas.priors import PriorDocument
    >>> a, b = PriorDocument(template="t", version=2), PriorDocument(template="t", version=2)
    >>> intern_prior(a) is intern_prior(b) is a
    True
    """
    key = (doc.tenant, doc.template, doc.version)
    cur = _PRIORS.get(key)
    if cur is not None and (cur is doc or cur == doc):
        return cur
    if len(_PRIORS) >= _PRIORS_MAX:
        _PRIORS.clear()
    _PRIORS[key] = doc
    return doc


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from ``parts`` that is the same in every process.

    >>> stable_seed("a", 1) == stable_seed("a", 1), stable_seed("a", 1) == stable_seed("a", 2)
    (True, False)
    """
    return zlib.crc32("/".join(str(p) for p in parts).encode())


class PolicyLearner(ABC):  # noqa: B024 - subclasses choose which hooks to override
    """Learns one agent's policy from rewards and publishes versioned documents.

    Parameters
    ----------
    agent_id, tenant
        Whose policy this is.
    spec
        The agent's registration; may arrive after the first rewards (``set_spec``).
    epsilon_floor
        Exploration never decays below this (and explicit distributions keep at least this
        much mass spread evenly, so every action keeps a positive propensity).
    epsilon_decay_count
        Epsilon of a bucket is ``max(floor, eps0 * c / (c + n))`` after ``n`` rewards.
    every_n_rewards
        Publish a new version after this many rewards even when no greedy action changed.
    safety
        Tenant/template rules (default: :func:`dataflows.learner.safety.default_rules`).
    prior
        The template's population prior, if any (see :meth:`set_prior`).
    probe_delta, probe_min_count, probe_z
        Trait probing: size of a probe, rewards needed per sign, and the z threshold.
    """

    algorithm = "epsilon_greedy"

    def __init__(
        self,
        agent_id: str,
        tenant: str = "default",
        spec: AgentSpec | None = None,
        epsilon_floor: float = 0.02,
        epsilon_decay_count: float = 20.0,
        every_n_rewards: int = 1,
        *,
        safety: SafetyRules | None = None,
        prior: PriorDocument | None = None,
        probe_delta: float = 0.1,
        probe_min_count: int = 12,
        probe_z: float = 1.5,
    ) -> None:
        self.agent_id = agent_id
        self.tenant = tenant
        self.spec: AgentSpec | None = None
        self.epsilon_floor = epsilon_floor
        self.epsilon_decay_count = epsilon_decay_count
        self.every_n_rewards = every_n_rewards
        self.probe_delta = probe_delta
        self.probe_min_count = probe_min_count
        self.probe_z = probe_z
        self.version = 0
        self.parent_version: int | None = None
        self.pending_rewards = 0
        self.total_rewards = 0
        self.published_greedy: dict[str, str] = {}
        self.last_update_ts: float | None = None
        self.explanation = "initial policy"
        self.means: dict[str, dict[str, stats.Mean]] = {}
        self.probs: dict[str, dict[str, float]] = {}
        self.dirty: dict[str, None] = {}
        self.traits: dict[str, float] = {}
        self.probe_stats: dict[str, tuple[stats.Var, stats.Var]] = {}
        self.trait_notes: list[str] = []
        self.trait_evidence: dict[str, float] = {}
        self.clamps: list[str] = []
        self.clamps_counted: list[str] = []
        self.prior: PriorDocument | None = prior
        self.arch_ll: list[float] = []
        self.prior_w: list[float] = []
        self._rules = safety
        self.safety = ResolvedSafety()
        self.forced_note: str | None = None
        #: bucket -> (values, counts, greedy, document entry); derived, never snapshotted
        self._cache: dict[str, tuple[Any, ...]] = {}
        if spec is not None:
            self.set_spec(spec)
        elif prior is not None:
            self.set_prior(prior)

    # -- configuration --------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_rules", None)  # rules are configuration, resolved into ``safety``
        state.pop("_cache", None)  # derived per-bucket entries, rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rules = None
        self._cache = {}
        if self.prior is not None:
            self.prior = intern_prior(self.prior)

    def set_spec(self, spec: AgentSpec) -> None:
        """Take a (new) registration: declared traits reset learned ones that changed."""
        old = self.spec
        self.spec = spec
        if spec.algorithm is not None and spec.algorithm != self.algorithm:
            from dataflows.learner import LEARNERS

            # The state is the same for every algorithm (means, traits, probes); only the
            # way a bucket becomes a distribution differs, so switching is a class swap.
            self.__class__ = LEARNERS[spec.algorithm]
            self.probs = {}
            self.published_greedy = {}
        rules = self._rules
        if rules is None:
            from dataflows.learner.safety import default_rules

            rules = default_rules()
        self.safety = rules.resolve(self.tenant, spec.template)
        for t, v in spec.traits.items():
            if old is None or old.traits.get(t) != v or t not in self.traits:
                self.traits[t] = float(v)
                self.probe_stats.pop(t, None)
        for t in list(self.traits):
            if t not in spec.traits:
                del self.traits[t]
                self.probe_stats.pop(t, None)
        self.dirty.update(dict.fromkeys(self.means))
        self._cache = {}
        if self.prior is not None:
            self.set_prior(self.prior)

    def set_prior(self, prior: PriorDocument | None) -> None:
        """Attach the template's population prior (``None`` detaches it).

        The archetype likelihoods are recomputed from the agent's value tables (each
        (bucket, action) mean counted ``n`` times), so a prior that arrives late still
        weighs the agent's evidence.
        """
        self.prior = prior = intern_prior(prior) if prior is not None else None
        self.arch_ll = []
        self.prior_w = []
        self._cache = {}
        if prior is None or not prior.archetypes:
            self.dirty.update(dict.fromkeys(self.means))
            return
        ll = [0.0] * len(prior.archetypes)
        for b, arms in self.means.items():
            if b == GLOBAL_BUCKET and len(self.means) > 1:
                continue  # ``*`` repeats the other buckets' rewards
            for a, m in arms.items():
                step = archetype_loglik(prior, [0.0] * len(ll), b, a, m.get())
                ll = [x + m.n * y for x, y in zip(ll, step, strict=True)]
        self.arch_ll = ll
        self.prior_w = archetype_weights(prior, ll)
        self.dirty.update(dict.fromkeys(self.means))
        self.dirty.update(dict.fromkeys(self._prior_buckets()))

    @property
    def base_epsilon(self) -> float:
        return self.spec.epsilon if self.spec is not None else 0.1

    @property
    def explore_allowed(self) -> bool:
        """Exploration (and probing) is allowed by the agent and by the tenant rules."""
        spec_ok = self.spec.explore if self.spec is not None else True
        return spec_ok and self.safety.explore

    def epsilon_for(self, n: int) -> float:
        """Epsilon after ``n`` rewards in a bucket.

        >>> from dataflows.learner import EpsilonGreedyLearner
        >>> lrn = EpsilonGreedyLearner("a", epsilon_floor=0.05, epsilon_decay_count=10)
        >>> lrn.epsilon_for(0), lrn.epsilon_for(10), lrn.epsilon_for(10_000)
        (0.1, 0.05, 0.05)
        """
        decayed = self.base_epsilon * self.epsilon_decay_count / (self.epsilon_decay_count + n)
        return max(self.epsilon_floor, min(self.base_epsilon, decayed))

    # -- learning -------------------------------------------------------------------------
    def update(
        self,
        bucket: str,
        action: str,
        reward: float,
        ts: float,
        probe: tuple[str, float] | dict[str, Any] | None = None,
    ) -> None:
        """Learn from one reward of ``action`` in ``bucket`` at event time ``ts``.

        ``probe`` is the decision's trait probe, ``(trait, delta)`` or ``{"trait", "delta"}``.
        """
        self._observe(bucket, action, reward)
        if probe:
            trait, delta = (probe["trait"], probe["delta"]) if isinstance(probe, dict) else probe
            self._observe_probe(str(trait), float(delta), reward)
        if self.prior is not None and self.prior.archetypes:
            self.arch_ll = archetype_loglik(self.prior, self.arch_ll, bucket, action, reward)
            new_w = archetype_weights(self.prior, self.arch_ll)
            if not self.prior_w or max(abs(x - y) for x, y in zip(new_w, self.prior_w,
                                                                  strict=True)) > 0.01:
                self.dirty.update(dict.fromkeys(self.means))
                self.dirty.update(dict.fromkeys(self._prior_buckets()))
            self.prior_w = new_w
        self.pending_rewards += 1
        self.total_rewards += 1
        self.last_update_ts = ts

    def _observe(self, bucket: str, action: str, reward: float) -> None:
        """Fold one reward into the running means of ``bucket`` and of ``*``."""
        for b in (bucket, GLOBAL_BUCKET) if bucket != GLOBAL_BUCKET else (bucket,):
            arms = self.means.get(b)
            if arms is None:
                arms = self.means[b] = {}
            mean = arms.get(action)
            if mean is None:
                mean = arms[action] = stats.Mean()
            mean.update(reward)
            self.dirty[b] = None

    def _observe_probe(self, trait: str, delta: float, reward: float) -> None:
        if trait not in self.traits or delta == 0.0:
            return
        pair = self.probe_stats.get(trait)
        if pair is None:
            pair = self.probe_stats[trait] = (stats.Var(), stats.Var())
        pair[1 if delta > 0 else 0].update(reward)

    # -- values and distributions -----------------------------------------------------------
    def _actions(self, bucket: str) -> list[str]:
        if self.spec is not None:
            return self.spec.actions
        return sorted(self.means.get(bucket, {}))

    def _prior_buckets(self) -> list[str]:
        if self.prior is None or not self.prior.archetypes:
            return []
        seen: dict[str, None] = {}
        for arch in self.prior.archetypes:
            seen.update(dict.fromkeys(arch.values))
        return list(seen)

    def bucket_values(self, bucket: str) -> tuple[dict[str, float], dict[str, int]]:
        """``(values, counts)`` of one bucket: own means blended with the prior."""
        arms = self.means.get(bucket, {})
        prior = self.prior if self.prior_w else None
        if prior is None:
            return ({a: m.get() for a, m in arms.items()}, {a: int(m.n) for a, m in arms.items()})
        values: dict[str, float] = {}
        for a in self._actions(bucket):
            m = arms.get(a)
            v = blend(m.get() if m is not None else None, m.n if m is not None else 0,
                      prior.value(bucket, a, self.prior_w), prior.strength)
            if v is not None:
                values[a] = v
        return values, {a: int(m.n) for a, m in arms.items()}

    def bucket_stats(self) -> Stats:
        """Per bucket: ``(values, counts)`` per action."""
        names = dict.fromkeys(self.means) | dict.fromkeys(self._prior_buckets())
        cache = self._cache
        out: Stats = {}
        for b in names:
            hit = cache.get(b)
            if hit is None or b in self.dirty:
                vals, counts = self.bucket_values(b)
                hit = cache[b] = (vals, counts, self._greedy(vals), None)
            out[b] = (hit[0], hit[1])
        return out

    def bucket_distribution(
        self, bucket: str, values: dict[str, float], counts: dict[str, int], epsilon: float
    ) -> dict[str, float] | None:
        """An explicit action distribution for ``bucket``, or ``None`` for epsilon-greedy."""
        return None

    def _seed(self, bucket: str) -> int:
        return stable_seed(self.tenant, self.agent_id, bucket, self.version)

    # -- trait tuning and safety ------------------------------------------------------------
    def _limits(self, trait: str) -> tuple[float, float]:
        bounds = self.spec.bounds_for(trait) if self.spec is not None else (0.0, 1.0)
        return self.safety.limits(trait, bounds)

    def _trait_steps(self) -> list[str]:
        """Move traits whose probes show a clear winner; returns one note per move."""
        notes: list[str] = []
        if not self.explore_allowed:
            return notes
        for trait in sorted(self.probe_stats):
            neg, pos = self.probe_stats[trait]
            nn, pn = int(neg.mean.n), int(pos.mean.n)
            if nn < self.probe_min_count or pn < self.probe_min_count:
                continue
            diff = pos.mean.get() - neg.mean.get()
            se = math.sqrt(max(neg.get(), 1e-6) / nn + max(pos.get(), 1e-6) / pn)
            z = diff / se
            if abs(z) < self.probe_z:
                continue
            cur = self.traits[trait]
            lo, hi = self._limits(trait)
            step = math.copysign(min(self.safety.max_step, self.probe_delta), diff)
            new = min(hi, max(lo, round(cur + step, 6)))  # clamp last: rounding can't escape
            del self.probe_stats[trait]
            sign = "+" if diff > 0 else "-"
            self.trait_evidence.update({
                f"probe.{trait}.plus_mean": round(pos.mean.get(), 6),
                f"probe.{trait}.minus_mean": round(neg.mean.get(), 6),
                f"probe.{trait}.plus_n": float(pn), f"probe.{trait}.minus_n": float(nn),
                f"probe.{trait}.z": round(z, 3)})
            if new == cur:
                continue
            self.traits[trait] = new
            notes.append(
                f"{trait} {cur:.2f} -> {new:.2f}: the {sign}{self.probe_delta:g} probe won "
                f"(mean reward {pos.mean.get():+.2f} over {pn} vs {neg.mean.get():+.2f} over "
                f"{nn}, z={z:+.1f})")
        return notes

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
        if not self.explore_allowed or not self.traits:
            return {"share": 0.0, "delta": self.probe_delta, "traits": []}, clamps
        want = self.spec.probe_share if self.spec is not None else None
        share = DEFAULT_PROBE_SHARE if want is None else want
        if share > self.safety.probe_share_max:
            clamps.append(f"probe.share: {share:.4g} -> {self.safety.probe_share_max:.4g} "
                          "(tenant rule)")
            share = self.safety.probe_share_max
        delta = min(self.probe_delta, 0.5)
        return {"share": share, "delta": delta, "traits": sorted(self.traits)}, clamps

    # -- publishing -----------------------------------------------------------------------
    def _greedy(self, values: dict[str, float]) -> str | None:
        """The best action (first declared wins ties; an unvalued declared action reads 0)."""
        if not values:
            return None
        actions = self.spec.actions if self.spec is not None else sorted(values)
        best: str | None = None
        top = -math.inf
        for a in actions:
            v = values.get(a, 0.0)
            if v > top:
                best, top = a, v
        for a, v in values.items():  # actions the spec no longer declares
            if v > top:
                best, top = a, v
        return best

    def maybe_publish(self) -> dict[str, Any] | None:
        """A new policy version when the evidence warrants one, else ``None``.

        A version is published when the greedy action of any bucket changed, a trait moved,
        or after ``every_n_rewards`` rewards since the last version. Returns the document as
        plain JSON-able data (the hot path); :meth:`policy` validates it into a model.
        """
        if self.pending_rewards == 0 and self.forced_note is None:
            return None
        notes = self._trait_steps()
        stats_ = self.bucket_stats()
        greedy = {b: g for b in stats_ if (g := self._cache[b][2])}
        changed = sorted(b for b, g in greedy.items() if self.published_greedy.get(b) != g)
        if (not changed and not notes and self.forced_note is None
                and self.pending_rewards < self.every_n_rewards):
            return None
        if self.forced_note is not None:
            self.explanation = self.forced_note
        elif notes:
            extra = self._explain(changed, greedy, stats_) if changed else ""
            self.explanation = "; ".join(notes) + (f"; {extra}" if extra else ".")
        else:
            self.explanation = self._explain(changed, greedy, stats_)
        self.forced_note = None
        self.parent_version = self.version
        self.version += 1
        self.pending_rewards = 0
        self.published_greedy = greedy
        return self.policy_dict(stats_)

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

    def policy(self) -> PolicyDocument:
        """The current policy document (the published version), validated."""
        return PolicyDocument.model_validate(self.policy_dict())

    def policy_dict(self, stats_: Stats | None = None) -> dict[str, Any]:
        """The current policy document as JSON-able data, in :class:`PolicyDocument` form."""
        spec = self.spec
        explore = self.explore_allowed
        buckets: dict[str, dict[str, Any]] = {}
        cache = self._cache
        for b, (vals, counts) in (stats_ if stats_ is not None else self.bucket_stats()).items():
            hit = cache.get(b)
            if hit is not None and hit[3] is not None and b not in self.dirty:
                buckets[b] = hit[3]
                continue
            n = sum(counts.values())
            eps = round(self.epsilon_for(n), 6) if explore else 0.0
            entry: dict[str, Any] = {"values": {a: round(v, 6) for a, v in vals.items()},
                                     "counts": dict(counts), "epsilon": eps}
            if explore:
                if b in self.dirty or b not in self.probs:
                    dist = self.bucket_distribution(b, vals, counts, eps)
                    if dist is None:
                        self.probs.pop(b, None)
                    else:
                        self.probs[b] = dist
                if b in self.probs:
                    entry["probs"] = self.probs[b]
            buckets[b] = entry
            if hit is not None:
                cache[b] = (hit[0], hit[1], hit[2], entry)
        self.dirty = {}
        traits, clamps = self.safe_traits()
        probe, more = self.probe_config()
        clamps += more
        self._count_clamps(clamps)
        updated = (datetime.fromtimestamp(self.last_update_ts, UTC).isoformat()
                   if self.last_update_ts is not None else None)
        bounds = {t: list(self._limits(t)) for t in traits}
        if spec is not None:
            bounds |= {k: list(self._limits(k)) for k in spec.trait_bounds}
        evidence: dict[str, float] = {"rewards": float(self.total_rewards)}
        evidence.update(self.trait_evidence)
        if self.prior_w and self.prior is not None:
            evidence["prior.version"] = float(self.prior.version)
            for arch, w in zip(self.prior.archetypes, self.prior_w, strict=True):
                evidence[f"prior.weight.{arch.name}"] = round(w, 4)
        return {
            "agent_id": self.agent_id, "tenant": self.tenant, "version": self.version,
            "parent_version": self.parent_version, "algorithm": self.algorithm,
            "epsilon": self.base_epsilon if explore else 0.0,
            "explore": explore, "traits": traits, "trait_bounds": bounds,
            "buckets": buckets, "reply_probability": {}, "probe": probe,
            "explanation": self.explanation, "evidence": evidence,
            "clamps": clamps, "updated_at": updated,
        }

    def _count_clamps(self, clamps: list[str]) -> None:
        if clamps == self.clamps_counted:
            return
        new = [c for c in clamps if c not in self.clamps_counted]
        self.clamps_counted = clamps
        self.clamps = clamps
        if new:
            from dataflows.metrics import flow_metrics

            flow_metrics().policy_clamps.inc(len(new))

    # -- rollback -------------------------------------------------------------------------
    def rollback(self, doc: dict[str, Any] | PolicyDocument, ts: float | None = None) -> None:
        """Restore the values and traits of an older document; the next publish is new.

        The restored version is published by the next :meth:`maybe_publish` as
        ``version = current + 1`` with ``parent_version = current`` and the explanation
        "rolled back to vN".
        """
        old = doc if isinstance(doc, PolicyDocument) else PolicyDocument.model_validate(doc)
        self.means = {}
        for b, bp in old.buckets.items():
            arms: dict[str, stats.Mean] = {}
            for a, v in bp.values.items():
                n = bp.counts.get(a, 0)
                if n > 0:
                    m = stats.Mean()
                    m.update(v, w=float(n))
                    arms[a] = m
            if arms:
                self.means[b] = arms
        for t in list(self.traits):
            if t in old.traits:
                self.traits[t] = float(old.traits[t])
        self.probe_stats = {}
        self.probs = {}
        self.dirty = dict.fromkeys(self.means)
        self._cache = {}
        self.published_greedy = {}
        if self.prior is not None:
            self.set_prior(self.prior)
        if ts is not None:
            self.last_update_ts = ts
        self.forced_note = f"rolled back to v{old.version}."
