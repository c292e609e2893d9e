"""Watermark ticks: the input's partition clocks, told to every agent shard.

An agent's own watermark (:mod:`dataflows.agent_state`) only moves when that agent gets an
event, so feedback for a quiet agent waited for the agent's next event (or the wall-clock
idle fallback). The input knows more: the *partition clock* of each Kafka partition (the
newest event time read from it). No event that is not late can still arrive with an event
time below

    ``min(clock of every data partition) - allowed_lateness``

because an event older than its own partition's clock minus the allowed lateness is late by
the partition rule. So every agent may release what that bound has passed, whatever its own
traffic: the *tick watermark*.

Each input partition of a data topic (decisions, signals; the agents topic carries rare
control events and is left out) sends a :class:`Tick` with its clock to every shard when the
clock moved and at least ``RF_WATERMARK_TICK_MS`` passed since its last tick. Ticks travel in
the same stream as the partition's events and after them, so a shard has received every
event a tick's clock counts before it sees the tick: the bound holds at the shard.

A shard has a tick watermark only once every data partition has told it a clock
(:attr:`TickClock.complete`; a partition that never had an event holds it back). A data
partition that is caught up and has read nothing for ``RF_IDLE_WATERMARK_SECONDS``, while the
process's whole input has been quiet as long, ticks a *virtual* clock: its last clock plus the
wall time it has been idle beyond that (the agents' idle fallback, per partition). A partition
that stalls while the others flow holds the bound back. An event that arrives on an idle
partition behind the tick watermark is late, as with the agents' own wall-clock fallback,
which stays (a replay of old events beside live traffic holds the tick watermark back; an
agent's own fallback still closes its live decisions). Idleness is off in the exactness tests.
"""

from __future__ import annotations

import math
from typing import Any

#: an input partition: (topic, partition)
PartitionKey = tuple[Any, Any]


class Tick(tuple):  # type: ignore[type-arg]
    """``(partition, clock, every data partition)``: one data partition's clock.

    >>> pk, clock, every = Tick((("t.signals", 0), 12.5, frozenset({("t.signals", 0)})))
    >>> pk, clock
    (('t.signals', 0), 12.5)
    """

    __slots__ = ()


class TickClock:
    """What one shard was told: the tick watermark of the data partitions.

    >>> c = TickClock(lateness=0.5)
    >>> every = frozenset({("d", 0), ("s", 0)})
    >>> c.tell(Tick((("d", 0), 10.0, every)))   # ("s", 0) unheard of: no bound yet
    -inf
    >>> c.complete
    False
    >>> c.tell(Tick((("s", 0), 8.0, every)))
    7.5
    >>> c.tell(Tick((("s", 0), 12.0, every)))   # now ("d", 0) is the slowest
    9.5
    >>> c.complete
    True
    """

    def __init__(self, lateness: float) -> None:
        self.lateness = lateness
        self.told: dict[PartitionKey, float] = {}
        self.expected: frozenset[PartitionKey] = frozenset()
        #: every data partition has told a clock
        self.complete = False
        #: the tick watermark (only moves forward)
        self.floor = -math.inf

    def tell(self, tick: Tick) -> float:
        """Take one tick; return the (possibly raised) tick watermark."""
        pk, clock, expected = tick
        told = self.told
        if clock > told.get(pk, -math.inf):
            told[pk] = clock
        if expected != self.expected:
            self.expected = expected
            self.complete = False
        if not self.complete:
            self.complete = all(p in told for p in expected)
            if not self.complete:
                return self.floor
        low = min(told[p] for p in self.expected)
        if low - self.lateness > self.floor:
            self.floor = low - self.lateness
        return self.floor
