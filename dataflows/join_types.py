"""The reward join's configuration, what one step of it emits, and derived event ids.

Plain data shared by :mod:`dataflows.agent_state` (the pure join) and
:mod:`dataflows.agent_step` (the Bytewax glue).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from dataflows.reward_model import RewardModel
from schemas.events import DERIVED_NAMESPACE, DeadLetter

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
