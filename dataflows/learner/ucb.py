"""UCB1 over the running means: the gateway plays the highest upper confidence bound."""

from __future__ import annotations

import math

from dataflows.learner.base import PolicyLearner


class UCBLearner(PolicyLearner):
    """Upper confidence bound per (bucket, action), published as an explicit distribution.

    The index of an action is ``value + c * sqrt(ln(N + 1) / (n + n0))`` (``n0`` the prior's
    pseudo-rewards when a population prior is attached; an action with no evidence at all
    has an infinite index). The distribution puts ``1 - floor`` on the best index (ties
    shared) and ``floor / K`` on every action, so every propensity is positive and exact.

    >>> from schemas.agent import AgentSpec
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b"], algorithm="ucb")
    >>> lrn = UCBLearner("u", spec=spec, epsilon_floor=0.02)
    >>> lrn.update("*", "a", 1.0, ts=0.0)
    >>> lrn.maybe_publish()["buckets"]["*"]["probs"]   # b is untried: infinite index
    {'a': 0.01, 'b': 0.99}
    """

    algorithm = "ucb"
    c = 0.6

    def __init__(self, *args: object, c: float = 0.6, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.c = c

    def bucket_distribution(
        self, bucket: str, values: dict[str, float], counts: dict[str, int], epsilon: float
    ) -> dict[str, float] | None:
        actions = self._actions(bucket)
        if not actions:
            return None
        n0 = self.prior.strength if self.prior_w and self.prior is not None else 0.0
        total = sum(counts.values()) + n0 * len(actions)
        log_t = math.log(total + 1.0)
        index: list[float] = []
        for a in actions:
            n = counts.get(a, 0) + (n0 if a in values else 0.0)
            index.append(math.inf if n <= 0 else values.get(a, 0.0)
                         + self.c * math.sqrt(log_t / n))
        top = max(index)
        best = [i for i, x in enumerate(index) if x == top]
        floor = self.epsilon_floor / len(actions)
        share = (1.0 - self.epsilon_floor) / len(best)
        return {a: round(floor + (share if i in best else 0.0), 6)
                for i, a in enumerate(actions)}
