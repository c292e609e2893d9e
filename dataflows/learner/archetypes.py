"""A learner's population prior: archetype posterior, pseudo-evidence, prior-led exploration.

With a template prior (:mod:`schemas.priors`) attached, a learner

* weighs the archetypes by how well each explains its rewards so far (``arch_ll`` ->
  ``prior_w``), recomputed from the value tables when the prior arrives late;
* counts the prior's pseudo-rewards (``strength`` per valued action) as evidence when it
  decays epsilon (:meth:`PriorState.prior_evidence`): a new person of a known template does
  not explore as if nothing were known;
* spends its exploration where the prior says it is worth it
  (:meth:`PriorState.archetype_choice`): the probability that each action is the best one
  under an archetype drawn from the posterior, each archetype's values blended with the
  agent's own evidence. An action that is best for a plausible archetype is both a good bet
  for this person and the most informative one about which archetype they are.

The prior document itself is shared (:func:`intern_prior`); the per-agent state is two short
lists of floats.
"""

from __future__ import annotations

from typing import Any

from river import stats

from schemas.buckets import GLOBAL_BUCKET
from schemas.priors import PriorDocument, archetype_loglik, archetype_weights, blend

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


class PriorState:
    """Mixin of :class:`~dataflows.learner.base.PolicyLearner`: the archetype posterior.

    >>> from dataflows.learner import make_learner
    >>> from schemas.agent import AgentSpec
    >>> from schemas.priors import Archetype, PriorDocument
    >>> prior = PriorDocument(template="t", actions=["a", "b"], archetypes=[
    ...     Archetype(name="A", size=3, values={"*": {"a": 0.8, "b": -0.8}}),
    ...     Archetype(name="B", size=1, values={"*": {"a": -0.8, "b": 0.8}})])
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b"], template="t")
    >>> lrn = make_learner("ag", spec=spec, prior=prior)
    >>> lrn.prior_evidence("*"), {a: round(p, 2) for a, p in lrn.archetype_choice("*").items()}
    (8.0, {'a': 0.75, 'b': 0.25})
    """

    prior: PriorDocument | None
    arch_ll: list[float]
    prior_w: list[float]
    means: dict[str, dict[str, stats.Mean]]
    dirty: dict[str, None]
    _cache: dict[str, tuple[Any, ...]]
    total_rewards: int
    forced_note: str | None

    def _actions(self, bucket: str) -> list[str]:
        raise NotImplementedError

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

    def assign_prior(self, prior: PriorDocument) -> None:
        """Take the template's newer prior while live (``PriorAssigned``): the archetypes
        are re-weighed by every reward so far (:meth:`set_prior`) and the next
        :meth:`maybe_publish` publishes a version at once, explaining the hand-off.

        >>> from dataflows.learner import make_learner
        >>> from schemas.agent import AgentSpec
        >>> from schemas.priors import Archetype, PriorDocument
        >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b"], template="t")
        >>> lrn = make_learner("ag", spec=spec)
        >>> for _ in range(3):
        ...     lrn.update("*", "b", 1.0, ts=0.0)
        >>> v = lrn.maybe_publish()["version"]
        >>> lrn.assign_prior(PriorDocument(template="t", version=9, agents=6, actions=["a", "b"],
        ...     archetypes=[Archetype(name="A", size=3, values={"*": {"a": 0.8, "b": -0.8}}),
        ...                 Archetype(name="B", size=3, values={"*": {"a": -0.8, "b": 0.8}})]))
        >>> doc = lrn.maybe_publish()
        >>> doc["version"] == v + 1, doc["evidence"]["prior.version"]
        (True, 9.0)
        >>> print(doc["explanation"])  # doctest: +NORMALIZE_WHITESPACE
        population prior v9 of template 't' (2 archetypes, 6 agents): 3 own rewards weigh B
        at 1.00.
        """
        self.set_prior(prior)
        if not self.prior_w:
            note = (f"population prior v{prior.version} of template {prior.template!r} has "
                    "no archetypes; values are this agent's own.")
        else:
            top = max(range(len(self.prior_w)), key=self.prior_w.__getitem__)
            note = (f"population prior v{prior.version} of template {prior.template!r} "
                    f"({len(prior.archetypes)} archetypes, {prior.agents} agents): "
                    f"{self.total_rewards} own rewards weigh {prior.archetypes[top].name} at "
                    f"{self.prior_w[top]:.2f}.")
        self.forced_note = note

    def _observe_prior(self, bucket: str, action: str, reward: float) -> None:
        """Fold one reward into the archetype posterior; mark buckets when it moved."""
        prior = self.prior
        if prior is None or not prior.archetypes:
            return
        self.arch_ll = archetype_loglik(prior, self.arch_ll, bucket, action, reward)
        new_w = archetype_weights(prior, self.arch_ll)
        if not self.prior_w or max(abs(x - y) for x, y in zip(new_w, self.prior_w,
                                                              strict=True)) > 0.01:
            self.dirty.update(dict.fromkeys(self.means))
            self.dirty.update(dict.fromkeys(self._prior_buckets()))
        self.prior_w = new_w

    def _prior_buckets(self) -> list[str]:
        if self.prior is None or not self.prior.archetypes:
            return []
        seen: dict[str, None] = {}
        for arch in self.prior.archetypes:
            seen.update(dict.fromkeys(arch.values))
        return list(seen)

    @staticmethod
    def _table(prior: PriorDocument, index: int, bucket: str) -> dict[str, float]:
        arch = prior.archetypes[index]
        return arch.values.get(bucket) or arch.values.get(GLOBAL_BUCKET) or {}

    def prior_evidence(self, bucket: str) -> float:
        """Pseudo-rewards the prior contributes to ``bucket``: ``strength`` per valued action
        (0 without an active prior)."""
        prior = self.prior
        if not self.prior_w or prior is None:
            return 0.0
        valued = {a for j in range(len(prior.archetypes)) for a in self._table(prior, j, bucket)}
        return prior.strength * len(valued.intersection(self._actions(bucket)))

    def archetype_choice(self, bucket: str) -> dict[str, float]:
        """``P(action is best)`` when an archetype is drawn from the posterior.

        The value of an action under archetype ``j`` is the archetype's prior value blended
        with the agent's own evidence (:func:`schemas.priors.blend`), so a person who keeps
        ignoring an archetype's favourite moves that archetype's mass to its next best action.
        Empty without an active prior.
        """
        prior = self.prior
        if prior is None or not self.prior_w:
            return {}
        actions = self._actions(bucket)
        arms = self.means.get(bucket, {})
        own = {a: (m.get(), m.n) for a, m in arms.items()}
        out = dict.fromkeys(actions, 0.0)
        for j, w in enumerate(self.prior_w):
            if w <= 0.0:
                continue
            table = self._table(prior, j, bucket)
            best, top = None, -2.0
            for a in actions:
                mean, n = own.get(a, (None, 0))
                v = blend(mean, n, table.get(a), prior.strength)
                if v is not None and v > top:
                    best, top = a, v
            if best is not None:
                out[best] += w
        return out
