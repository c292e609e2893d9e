"""The reward join's configuration, what one step of it emits, derived event ids, and the
boundary between the join and its glue.

Plain data shared by :mod:`dataflows.agent_state` (the pure join) and
:mod:`dataflows.agent_step` (the Bytewax glue). :class:`AgentCore` is everything the glue
asks of an agent's join, and :class:`LearnerCallbacks` everything the join asks of the
agent's learner: a second implementation of the join (the compiled core of
``docs/agent-core.md``) implements the first and calls the second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dataflows.reward_model import RewardModel
from schemas.agent import AgentSpec
from schemas.events import DERIVED_NAMESPACE, DeadLetter
from schemas.priors import PriorDocument

_NS_SHA1 = hashlib.sha1(DERIVED_NAMESPACE.bytes)  # noqa: S324 - uuid5 is SHA-1 by definition


def derived_str(*parts: object) -> str:
    """``str(derived_id(*parts))``, computed without the UUID object and with the
    namespace's SHA-1 state precomputed (the same uuid5, a few times cheaper).

    >>> from schemas.events import derived_id
    >>> derived_str("reward", "d1") == str(derived_id("reward", "d1"))
    True
    """
    h = _NS_SHA1.copy()
    h.update("/".join([str(p) for p in parts]).encode())
    d = bytearray(h.digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x50  # version 5
    d[8] = (d[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = d.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


@dataclass(frozen=True)
class JoinConfig:
    reward_model: RewardModel
    window: float = 600.0
    lateness: float = 0.5
    idle: float | None = 0.5
    dedup_horizon: float = 86400.0
    history_length: int = 20
    half_life: float = 7 * 86400.0
    epsilon_floor: float = 0.02
    epsilon_decay_count: float = 20.0
    every_n_rewards: int = 1
    #: at most one policy version per this many seconds of event time (0: no limit)
    policy_interval: float = 0.0
    #: each agent's Redis documents at most every this many seconds of wall time (the step's
    #: output cadence, :class:`dataflows.agent_step.AgentLogic`; not part of the join)
    write_every: float = 0.2
    #: which implementation of the join new agents get (``RF_AGENT_CORE``: ``native`` or
    #: ``python``; not part of the join's semantics, both compute the same)
    core: str = "native"


@dataclass
class Emitted:
    """What one call produced."""

    rewards: list[dict[str, Any]] = field(default_factory=list)  # RewardComputed JSON
    policies: list[dict[str, Any]] = field(default_factory=list)  # PolicyDocument JSON
    dead: list[DeadLetter] = field(default_factory=list)
    late: int = 0
    duplicates: int = 0
    joined: int = 0

    def __bool__(self) -> bool:
        return bool(self.rewards or self.policies or self.dead or self.late or self.duplicates)


#: topic, partition, offset[, newest event time before this one in its partition]
Meta = tuple[Any, ...]


class LearnerCallbacks(Protocol):
    """What the join calls on an agent's learner (:class:`dataflows.learner.PolicyLearner`),
    at the points :class:`dataflows.agent_state.AgentState` calls it. The learner stays in
    Python whatever implements the join, so this is the join's only way into it."""

    @property
    def version(self) -> int:
        """The newest published policy version (0 before the first)."""
        ...

    def set_spec(self, spec: AgentSpec) -> None:
        """``AgentUpserted``: the agent's (new) registration."""

    def set_prior(self, prior: PriorDocument | None) -> None:
        """``AgentUpserted`` with its template's population prior."""

    def assign_prior(self, prior: PriorDocument) -> None:
        """``PriorAssigned``: the template's newer prior, handed over live."""

    def rollback(self, doc: Any, ts: float | None = None) -> None:
        """``PolicyRollbackRequested``: restore an older version."""

    def feature_vector(self, context: dict[str, Any]) -> tuple[float, ...] | None:
        """A decision's linear-scoring features, kept with it until it closes."""

    def update(self, bucket: str, action: str, reward: float, ts: float,
               probe: tuple[str, float] | dict[str, Any] | None = None,
               features: tuple[float, ...] | None = None) -> None:
        """One closed reward."""

    def maybe_publish(self) -> dict[str, Any] | None:
        """A new policy document, if the learner has one to publish (its answer decides
        whether the join defers the next version by the policy interval)."""


class AgentCore(Protocol):
    """What the Bytewax glue (:class:`dataflows.agent_step.AgentLogic`) asks of one agent's
    join: one call per activation, whatever the number of events in it. It is picklable
    (the recovery snapshot), and its ``cfg`` is set again after it is unpickled.

    :class:`dataflows.agent_state.AgentState` is the implementation, and the reference any
    other is compared with (``tests/dataflows/test_differential.py``).
    """

    tenant: str
    agent_id: str
    cfg: JoinConfig

    @property
    def template(self) -> str | None:
        """The agent's template (its reward metrics are labelled by it)."""
        ...

    def on_events(self, items: Sequence[Any], now: float, input_last: float,
                  floor: float) -> Emitted:
        """Take this agent's ``(agent key, event, meta, raw JSON)`` items of one activation,
        in arrival order (:class:`dataflows.source.Parsed`). An event the join fails on goes
        to the dead letters with the reason, and what it had added is dropped."""

    def advance(self, now: float, input_last: float = 0.0, floor: float = ...) -> Emitted:
        """Move the watermark by the wall clock or the tick watermark ``floor``."""

    def drain(self) -> Emitted:
        """End of input: apply everything buffered."""

    def next_due(self) -> float | None:
        """Event time of the next thing a watermark would release, close or publish."""

    def notify_at(self, input_last: float = 0.0, due: float | None = None) -> float | None:
        """Wall time of the next idle-fallback release."""

    def document(self, policies: list[tuple[dict[str, Any], bytes]],
                 full: bool = True) -> dict[str, Any]:
        """The agent's Redis document set (:func:`dataflows.agent_docs.snapshot_item`)."""
