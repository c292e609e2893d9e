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

    >>> from schemas.agent import AgentSpec
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b"], context_keys=["slot"])
    >>> lrn = EpsilonGreedyLearner("agent-1", spec=spec)
    >>> lrn.update("slot=am", "b", 1.0, ts=0.0)
    >>> doc = lrn.maybe_publish()
    >>> doc["version"], doc["buckets"]["slot=am"]["values"], doc["explanation"]
    (1, {'b': 1.0}, 'b now leads in slot=am: mean reward +1.00 over 1 rewards.')
    >>> lrn.maybe_publish() is None
    True
    """

    algorithm = "epsilon_greedy"
