"""Epsilon-greedy action values per context bucket, with River's running means."""

from __future__ import annotations

from dataflows.learner.base import PolicyLearner


class EpsilonGreedyLearner(PolicyLearner):
    """Mean reward per (bucket, action) with ``river.stats.Mean``; the gateway explores.

    Every reward also updates the agent-wide bucket ``*``, which the gateway falls back to
    for a context bucket it has no values for yet. The document carries values and a
    per-bucket epsilon (decaying with the bucket's evidence to a floor); the gateway plays
    greedy with probability ``1 - epsilon`` and uniform otherwise
    (:meth:`schemas.policy.PolicyDocument.action_probabilities`).

    With a population prior the exploration follows the prior instead of being uniform:
    the bucket publishes ``probs`` = ``1 - epsilon`` on the greedy action, ``epsilon_floor``
    spread evenly (every action stays reachable), and the rest of epsilon on the actions
    that are best for an archetype drawn from the posterior
    (:meth:`~dataflows.learner.archetypes.PriorState.archetype_choice`); the prior's
    pseudo-rewards also count toward epsilon's decay. The gateway samples from ``probs``, so
    the logged propensity is exact.

    >>> from schemas.agent import AgentSpec
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b"], context_keys=["slot"])
    >>> lrn = EpsilonGreedyLearner("agent-1", spec=spec)
    >>> lrn.update("slot=am", "b", 1.0, ts=0.0)
    >>> doc = lrn.maybe_publish()
    >>> doc["version"], doc["buckets"]["slot=am"]["values"], doc["explanation"]
    (1, {'b': 1.0}, 'b now leads in slot=am: mean reward +1.00 over 1 rewards.')
    >>> lrn.maybe_publish() is None
    True

    With a prior (two archetypes; the first reward says "archetype B"):

    >>> from schemas.priors import Archetype, PriorDocument
    >>> prior = PriorDocument(template="t", actions=["a", "b", "c"], archetypes=[
    ...     Archetype(name="A", size=1, values={"*": {"a": 0.8, "b": -0.5, "c": 0.0}}),
    ...     Archetype(name="B", size=1, values={"*": {"a": -0.6, "b": 0.8, "c": 0.0}})])
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b", "c"], template="t",
    ...                  epsilon=0.2)
    >>> lrn = EpsilonGreedyLearner("agent-2", spec=spec, prior=prior)
    >>> lrn.update("*", "a", -1.0, ts=0.0)
    >>> bp = lrn.maybe_publish()["buckets"]["*"]
    >>> max(bp["probs"], key=bp["probs"].get), bp["epsilon"], round(sum(bp["probs"].values()), 6)
    ('b', 0.121212, 1.0)
    """

    algorithm = "epsilon_greedy"

    def bucket_distribution(
        self, bucket: str, values: dict[str, float], counts: dict[str, int], epsilon: float
    ) -> dict[str, float] | None:
        choice = self.archetype_choice(bucket)
        if not choice or not values:
            return None  # no prior: the gateway's epsilon-greedy over the values
        actions = self._actions(bucket)
        k = len(actions)
        greedy = self._greedy(values)
        spread = min(epsilon, self.epsilon_floor)
        led = epsilon - spread
        mass = sum(choice.values())
        probs = {a: spread / k + (led * choice[a] / mass if mass > 0 else 0.0) for a in actions}
        rest = 1.0 - epsilon + (0.0 if mass > 0 else led)
        if greedy in probs:
            probs[greedy] += rest
        else:  # the greedy action is no longer declared: spread its share
            probs = {a: p + rest / k for a, p in probs.items()}
        return {a: round(p, 6) for a, p in probs.items()}
