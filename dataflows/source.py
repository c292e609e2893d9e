"""The dataflow's input step: read, parse, stamp the partition clock, key by agent shard.

:class:`ClockedSource` wraps any fixed-partitioned source of Kafka messages (the lean Kafka
source in production, ``TestingSource`` in tests). Each of its partitions parses the batch
it read and stamps every valid event with the newest event time seen before it in its own
Kafka partition (the *partition clock*, see :mod:`dataflows.agent_state`). The clock is part
of the source's recovery state next to the inner position, so it is snapshotted with exactly
the messages it has seen: one step and one exchange fewer than a separate stateful clock
step keyed by partition, with the same stamps.

Emits ``(shard, Parsed((agent key, event, (topic, partition, offset, newest before it),
raw JSON)))`` for valid events, ``("dlq", KafkaSinkMessage)`` for the rest and, from each
partition of a data topic, ``(shard, Tick)`` to every shard when its clock moved
(:mod:`dataflows.ticks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflows import metrics as _m
from dataflows.agent_step import OLD_LAYOUT, shard_of
from dataflows.decode import decode
from dataflows.metrics import POSITIONS, InputClock, flow_metrics
from dataflows.parse import INPUT_TYPES, dead_letter, parse_message
from dataflows.partitions import Routing
from dataflows.ticks import PartitionKey, Tick
from schemas.events import EVENT_ADAPTER, dump_event

#: newest event time per (topic, partition) read by one source partition
Clocks = dict[tuple[Any, Any], float]


def _reparsed(key: str, raw: bytes, meta: tuple[Any, ...]) -> Parsed:
    event = decode(raw)
    return Parsed((key, event if event is not None else EVENT_ADAPTER.validate_json(raw), meta,
                   raw))


class Parsed(tuple):  # type: ignore[type-arg]
    """``(agent key, event, meta, raw JSON)`` of one valid event.

    Bytewax pickles items that move between processes; a pickled event model costs ~22 us
    (dump + load), its raw JSON decoded again a few, so this pickles as the raw JSON."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reparsed, (self[0], self[3], self[2]))

class ShardCache(dict[str, str]):
    """Agent key -> its shard key among ``shards`` (bounded memo of :func:`shard_of`)."""

    def __init__(self, shards: int) -> None:
        super().__init__()
        self.shards = shards

    def __missing__(self, agent_key: str) -> str:
        if len(self) >= 1_000_000:
            self.clear()
        s = self[agent_key] = shard_of(agent_key, self.shards)
        return s


def parse_and_clock(msgs: list[Any], clocks: Clocks, dlq_topic: str,
                    shards: ShardCache, route: Routing | None = None) -> list[Any]:
    """Parse a batch and stamp the partition clocks (``clocks`` is updated in place).
    Decisions, feedback and signals are read by :func:`dataflows.decode.decode`, everything
    else (and whatever it does not accept) by pydantic.

    Valid events: ``(shard, Parsed((agent key, event, (topic, partition, offset, newest),
    raw)))``;
    anything else: ``("dlq", KafkaSinkMessage)`` (the reason comes from
    :func:`dataflows.parse.parse_message`), and with ``route`` (co-partitioned processes)
    also an event read from another partition than its agent hashes to
    (:class:`dataflows.partitions.Routing`). Counted once per batch.
    """
    fast = decode
    validate = EVENT_ADAPTER.validate_json
    accepted = INPUT_TYPES
    m = flow_metrics()
    counts: dict[tuple[str, str], int] = {}
    out: list[Any] = []
    append = out.append
    event: Any
    for msg in msgs:
        event = None
        value = getattr(msg, "value", None)  # a KafkaError has none
        if value is not None:
            event = fast(value)  # the three hot types (dataflows.decode); else pydantic's
            if event is None:
                try:
                    event = validate(value)
                except Exception:  # noqa: BLE001 - the slow path below says why
                    event = None
                if event is not None and not isinstance(event, accepted):
                    event = None
        if event is None:
            _, reason, dead = parse_message(msg)
            _m.count(m.dlq_for(reason))
            ck = (dead.topic or "", "invalid")
            counts[ck] = counts.get(ck, 0) + 1
            append(("dlq", KafkaSinkMessage(None, dump_event(dead), dlq_topic)))
            continue
        topic = msg.topic
        if route is not None and (why := route.misrouted(topic, msg.partition,
                                                          event.agent_id)) is not None:
            _m.count(m.dlq_for("misrouted"))
            ck = (topic or "", "misrouted")
            counts[ck] = counts.get(ck, 0) + 1
            append(("dlq", KafkaSinkMessage(None, dump_event(dead_letter(msg, why, "route")),
                                            dlq_topic)))
            continue
        pk = (topic, msg.partition)
        ck = (topic or "", event.type)
        counts[ck] = counts.get(ck, 0) + 1
        newest = clocks.get(pk)
        ts = event.ts.timestamp()
        if newest is None or ts > newest:
            clocks[pk] = ts
        key = f"{event.tenant}:{event.agent_id}"
        shard = shards[key]
        append((shard, Parsed((key, event, (topic, pk[1], msg.offset, newest), value))))
    InputClock.polled = polled = time.time()
    if msgs:  # an empty batch is no input
        InputClock.last = polled
        for msg in reversed(msgs):  # next position of the partition, for the lag gauge
            off = getattr(msg, "offset", None)
            if off is not None and getattr(msg, "partition", None) is not None:
                POSITIONS[(msg.topic, msg.partition)] = off + 1
                break
    events_in = m.events_in_for
    for (topic, type_), n in counts.items():
        _m.count(events_in(topic, type_), n)
    _m.flush()
    return out


def kafka_partition(part: str) -> PartitionKey | None:
    """``(topic, partition)`` of a Kafka source part name (``"{partition}-{topic}"``), else
    None (e.g. a ``TestingSource``'s part).

    >>> kafka_partition("1-rf.signals"), kafka_partition("iterable")
    (('rf.signals', 1), None)
    """
    idx, sep, topic = part.partition("-")
    return (topic, int(idx)) if sep and idx.isdigit() and topic else None


class TickConfig:
    """Where and how often the input sends watermark ticks (:mod:`dataflows.ticks`)."""

    def __init__(self, every: float, idle: float | None, control_topics: Iterable[str]) -> None:
        self.every, self.idle = every, idle
        self.control_topics = frozenset(control_topics)

    def data_partitions(self, parts: Iterable[str]) -> frozenset[PartitionKey] | None:
        """The data partitions among source part names; None when ticks are off or a part
        is not a Kafka partition."""
        if self.every <= 0:
            return None
        pks = [kafka_partition(p) for p in parts]
        if any(pk is None for pk in pks):
            return None
        return frozenset(pk for pk in pks if pk is not None and pk[0] not in self.control_topics)


class _Ticker:
    """One data partition's ticks: its clock to every shard, when it moved.

    A partition that is caught up (``caught_up()`` of the inner partition) and has read
    nothing for ``idle`` seconds, while the process's whole input has been quiet as long,
    ticks a *virtual* clock, its last clock plus the wall time it has been idle beyond
    ``idle``. A partition that never read an event does not tick.
    """

    def __init__(self, pk: PartitionKey, expected: frozenset[PartitionKey], cfg: TickConfig,
                 shards: int) -> None:
        self.pk, self.expected, self.cfg = pk, expected, cfg
        self.names = [f"s{i}" for i in range(shards)]
        self.sent: float | None = None
        self.last_tick = 0.0
        self.last_data = time.monotonic()

    def ticks(self, clock: float | None, had_data: bool, caught_up: Callable[[], bool],
              out: list[Any]) -> None:
        now = time.monotonic()
        if had_data:
            self.last_data = now
        since, idle = now - self.last_tick, self.cfg.idle
        if since < self.cfg.every:
            return
        if clock is None:
            return
        # idle: this partition and the process's whole input quiet, this one caught up (one
        # partition that stalls while the others flow must hold the bound back, not pass it)
        quiet = min(now - self.last_data, time.time() - InputClock.last)
        value = clock
        if idle is not None and quiet >= idle:
            if since < idle or not caught_up():  # idle ticks go out every ``idle`` seconds
                return
            value = clock + (quiet - idle)
        if value == self.sent:
            return
        self.sent, self.last_tick = value, now
        tick = Tick((self.pk, value, self.expected))
        out += [(name, tick) for name in self.names]


class _ClockedPartition(StatefulSourcePartition[Any, dict[str, Any]]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any], clocks: Clocks,
                 dlq_topic: str, shards: int, ticker: _Ticker | None = None,
                 route: Routing | None = None) -> None:
        self.inner, self.clocks, self.dlq_topic = inner, clocks, dlq_topic
        self.shards = ShardCache(shards)
        self.ticker = ticker
        self.route = route
        if getattr(inner, "started", None) is not None:
            InputClock.starting.add(self)  # until its first fetch answered

    def next_batch(self) -> Iterable[Any]:
        msgs = self.inner.next_batch()  # StopIteration ends the input, as before
        if not isinstance(msgs, list):
            msgs = list(msgs)
        out = parse_and_clock(msgs, self.clocks, self.dlq_topic, self.shards, self.route)
        if self in InputClock.starting:
            self._check_started()
        t = self.ticker
        if t is not None:  # after the events its clock counts (see dataflows.ticks)
            t.ticks(self.clocks.get(t.pk), bool(msgs), self._caught_up, out)
        return out

    def _caught_up(self) -> bool:
        caught_up = getattr(self.inner, "caught_up", None)
        return bool(caught_up()) if caught_up is not None else False

    def _check_started(self) -> None:
        started = getattr(self.inner, "started", None)
        if started is None or started():
            InputClock.starting.discard(self)

    def next_awake(self) -> datetime | None:
        return self.inner.next_awake()

    def snapshot(self) -> dict[str, Any]:
        return {"inner": self.inner.snapshot(), "clocks": dict(self.clocks)}

    def close(self) -> None:
        InputClock.starting.discard(self)
        self.inner.close()


class ClockedSource(FixedPartitionedSource[Any, dict[str, Any]]):
    """``inner``'s partitions, parsed and stamped with the partition clocks (see module)."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any], dlq_topic: str,
                 shards: int, ticks: TickConfig | None = None) -> None:
        self.inner, self.dlq_topic, self.shards = inner, dlq_topic, shards
        self.tick_cfg = ticks
        self._data: frozenset[PartitionKey] | None = None
        #: a co-partitioned Kafka source's per-event check (:mod:`dataflows.partitions`)
        self._route: Routing | None = None

    def list_parts(self) -> list[str]:
        parts = self.inner.list_parts()
        self._route = getattr(self.inner, "routing", None)
        if self.tick_cfg is not None:
            self._data = self.tick_cfg.data_partitions(parts)
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: dict[str, Any] | None
                   ) -> _ClockedPartition:
        if resume_state is None:
            inner_state, clocks = None, {}
        elif isinstance(resume_state, dict) and "inner" in resume_state:
            inner_state, clocks = resume_state["inner"], dict(resume_state["clocks"])
        else:
            raise ValueError(OLD_LAYOUT)
        ticker = None
        pk = kafka_partition(for_part)
        if self.tick_cfg is not None and self._data is not None and pk in self._data:
            ticker = _Ticker(pk, self._data, self.tick_cfg, self.shards)
        return _ClockedPartition(self.inner.build_part(step_id, for_part, inner_state),
                                 clocks, self.dlq_topic, self.shards, ticker, self._route)
