"""Base class of per-agent learners: values, trait tuning, safety, versions, explanations.

A learner keeps small, picklable state (River ``stats`` objects and plain dicts, no RNG):
Bytewax snapshots it every epoch, so it must stay cheap to copy. Randomness (Thompson
sampling's draws) comes from a seed derived from the agent, the bucket and the version, so
the same rewards always give the same documents.

What the base class does for every algorithm:

* **Values.** A running mean reward (``river.stats.Mean``) per context bucket and action,
  plus the agent-wide bucket ``*``; blended with the template's population prior
  (:mod:`schemas.priors`) as pseudo-rewards when one is attached
  (:mod:`dataflows.learner.archetypes` keeps the archetype posterior).
* **Distribution.** Subclasses may publish an explicit action distribution per bucket
  (:meth:`bucket_distribution`); the gateway samples from it, so the logged propensity is
  exact by construction. Without one the gateway plays epsilon-greedy over the values.
  Epsilon decays with the bucket's rewards, pseudo-rewards included
  (:meth:`PolicyLearner.pseudo_evidence`: the prior's, or epsilon-greedy's initial values').
* **Trait tuning** (:mod:`dataflows.learner.traits`). Rewards of decisions that probed a
  trait by ``+delta`` or ``-delta`` go to ``river.stats.Var`` per (trait, sign). When both
  signs have ``probe_min_count`` rewards and their means differ by more than ``probe_z``
  standard errors, the trait moves one bounded step toward the winner (smaller after a
  reversal) and that trait's probe statistics restart; while no probe shows anything the
  probes widen.
* **Linear scoring** (:mod:`dataflows.learner.linear`), for an agent that declares numeric
  ``features``: per-action slopes on them, fitted within buckets; buckets then publish
  ``base``, ``centers`` and ``center`` for the gateway's per-context scores instead of
  ``probs``.
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
from typing import Any

from river import stats

from dataflows.learner.archetypes import intern_prior
from dataflows.learner.document import build_document
from dataflows.learner.linear import LinearStats
from dataflows.learner.traits import DEFAULT_PROBE_SHARE
from dataflows.learner.versions import Stats, Versioning
from schemas.agent import AgentSpec
from schemas.buckets import GLOBAL_BUCKET
from schemas.policy import PolicyDocument, ResolvedSafety, SafetyRules
from schemas.priors import PriorDocument, blend

__all__ = ["DEFAULT_PROBE_SHARE", "PolicyLearner", "Stats", "intern_prior", "stable_seed"]


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from ``parts`` that is the same in every process.

    >>> stable_seed("a", 1) == stable_seed("a", 1), stable_seed("a", 1) == stable_seed("a", 2)
    (True, False)
    """
    return zlib.crc32("/".join(str(p) for p in parts).encode())


class PolicyLearner(Versioning, ABC):  # noqa: B024 - subclasses pick the hooks they override
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
        self._init_traits()
        self.trait_notes: list[str] = []
        self.clamps: list[str] = []
        self.clamps_counted: list[str] = []
        self.prior: PriorDocument | None = prior
        self.arch_ll: list[float] = []
        self.prior_w: list[float] = []
        self._rules = safety
        self.safety = ResolvedSafety()
        self.forced_note: str | None = None
        #: linear scoring statistics, for a spec with ``features``
        self.linear: LinearStats | None = None
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
        if "level_stats" not in state:  # a snapshot from before adaptive probes
            self.trait_moves, self.level_stats = {}, None
            self.probe_level = self.probe_backoff = self.level_moves = 0
        self._rules = None
        self._cache = {}
        if "linear" not in state:  # a snapshot from before linear scoring
            self.linear = None
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
                self._forget_trait(t)
        for t in list(self.traits):
            if t not in spec.traits:
                del self.traits[t]
                self._forget_trait(t)
        if not spec.features:
            self.linear = None
        elif self.linear is None or self.linear.features != tuple(spec.features):
            self.linear = LinearStats(spec.features)  # other features: start over
        self.dirty.update(dict.fromkeys(self.means))
        self._cache = {}
        if self.prior is not None:
            self.set_prior(self.prior)

    @property
    def base_epsilon(self) -> float:
        return self.spec.epsilon if self.spec is not None else 0.1

    def epsilon_for(self, n: float) -> float:
        """Epsilon after ``n`` rewards in a bucket (with a prior, its pseudo-rewards count).

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
        features: tuple[float, ...] | None = None,
    ) -> None:
        """Learn from one reward of ``action`` in ``bucket`` at event time ``ts``.

        ``probe`` is the decision's trait probe, ``(trait, delta)`` or ``{"trait", "delta"}``;
        ``features`` its :meth:`feature_vector` (linear scoring).
        """
        self._observe(bucket, action, reward)
        lin = self.linear
        if lin is not None and features is not None and len(features) == len(lin.features):
            lin.observe(bucket, action, features, reward)
            if bucket != GLOBAL_BUCKET:  # the agent-wide cell's means, not its co-moments
                lin.observe(GLOBAL_BUCKET, action, features, reward, within=False)
        if probe:
            trait, delta = (probe["trait"], probe["delta"]) if isinstance(probe, dict) else probe
            self._observe_probe(str(trait), float(delta), reward)
        elif self.traits:
            self._observe_base(reward)
        if self.prior is not None:
            self._observe_prior(bucket, action, reward)
        self.pending_rewards += 1
        self.total_rewards += 1
        self.last_update_ts = ts

    def feature_vector(self, context: dict[str, Any]) -> tuple[float, ...] | None:
        """The linear-scoring features of a decision's context (``None`` without any)."""
        return self.linear.vector(context) if self.linear is not None else None

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

    # -- values and distributions -----------------------------------------------------------
    def _actions(self, bucket: str) -> list[str]:
        if self.spec is not None:
            return self.spec.actions
        return sorted(self.means.get(bucket, {}))

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

    def greedy_values(
        self, bucket: str, values: dict[str, float], counts: dict[str, int]
    ) -> dict[str, float]:
        """The values exploitation follows (linear scoring's ``base``): the values here; a
        subclass may add an exploration bonus."""
        return values

    def pseudo_evidence(self, bucket: str) -> float:
        """Pseudo-rewards that count toward ``bucket``'s epsilon decay besides its own
        rewards: the population prior's (:meth:`prior_evidence`) when one is active."""
        return self.prior_evidence(bucket) if self.prior_w else 0.0

    def _seed(self, bucket: str) -> int:
        return stable_seed(self.tenant, self.agent_id, bucket, self.version)

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
        if self.linear is not None and self.forced_note is None:
            top = self.linear.strongest(self.linear.weights())
            if top is not None and abs(top[2]) >= 0.05:
                self.explanation = (f"{self.explanation.rstrip('.')}; {top[0]} moves "
                                    f"{top[1]} most ({top[2]:+.2f} per unit).")
        self.forced_note = None
        self.parent_version = self.version
        self.version += 1
        self.pending_rewards = 0
        self.published_greedy = greedy
        return self.policy_dict(stats_)

    def policy(self) -> PolicyDocument:
        """The current policy document (the published version), validated."""
        return PolicyDocument.model_validate(self.policy_dict())

    def policy_dict(self, stats_: Stats | None = None) -> dict[str, Any]:
        """The current policy document as JSON-able data, in :class:`PolicyDocument` form."""
        return build_document(self, stats_)
