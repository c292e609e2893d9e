"""Kafka topic names. Every topic is keyed by ``agent_id``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under one configurable prefix.

    >>> Topics("rewardflow").signals
    'rewardflow.signals'
    >>> Topics("t1").inputs
    ('t1.agents', 't1.decisions', 't1.signals')
    """

    prefix: str = "rewardflow"

    @property
    def agents(self) -> str:
        return f"{self.prefix}.agents"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}.decisions"

    @property
    def signals(self) -> str:
        return f"{self.prefix}.signals"

    @property
    def rewards(self) -> str:
        return f"{self.prefix}.rewards"

    @property
    def policies(self) -> str:
        return f"{self.prefix}.policies"

    @property
    def privacy(self) -> str:
        return f"{self.prefix}.privacy"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def inputs(self) -> tuple[str, ...]:
        """Topics the dataflow consumes."""
        return (self.agents, self.decisions, self.signals)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.inputs, self.rewards, self.policies, self.privacy, self.dlq)
