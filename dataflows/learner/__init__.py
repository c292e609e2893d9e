"""Per-agent policy learners built on River statistics.

One algorithm per module over :class:`~dataflows.learner.base.PolicyLearner`;
:func:`make_learner` picks the one the agent's spec asks for.

>>> from schemas.agent import AgentSpec
>>> spec = AgentSpec(persona={"name": "x"}, actions=["a"], algorithm="thompson")
>>> type(make_learner("a1", "default", spec)).__name__
'ThompsonLearner'
>>> type(make_learner("a1", "default", None)).__name__
'EpsilonGreedyLearner'
"""

from __future__ import annotations

from typing import Any

from dataflows.learner.base import PolicyLearner
from dataflows.learner.epsilon_greedy import EpsilonGreedyLearner
from dataflows.learner.thompson import ThompsonLearner
from dataflows.learner.ucb import UCBLearner
from schemas.agent import AgentSpec

LEARNERS: dict[str, type[PolicyLearner]] = {
    "epsilon_greedy": EpsilonGreedyLearner,
    "ucb": UCBLearner,
    "thompson": ThompsonLearner,
}
DEFAULT_ALGORITHM = "epsilon_greedy"


def make_learner(
    agent_id: str, tenant: str = "default", spec: AgentSpec | None = None, **kwargs: Any
) -> PolicyLearner:
    """The learner of the algorithm ``spec.algorithm`` (epsilon-greedy when unset)."""
    name = (spec.algorithm if spec is not None else None) or DEFAULT_ALGORITHM
    return LEARNERS[name](agent_id, tenant, spec, **kwargs)


__all__ = ["LEARNERS", "EpsilonGreedyLearner", "PolicyLearner", "ThompsonLearner",
           "UCBLearner", "make_learner"]
