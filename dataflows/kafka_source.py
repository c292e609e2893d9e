"""The flow's Kafka input: Bytewax's Kafka source, lean and never blocking.

:class:`LeanKafkaSource` lists and builds the same partitions as Bytewax's ``KafkaSource``
(same consumer configuration, offsets, recovery state and resume) and its partitions emit
:class:`_Msg` (only the fields the parse step reads) without ever waiting on the broker.
Each poll that returns messages records how long the oldest of them waited for the flow
(``rewardflow_input_wait_seconds``: now minus its Kafka timestamp), the operator's view of
how far behind its input the flow runs.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.connectors.kafka import _KafkaSourcePartition as _BytewaxKafkaPartition
from confluent_kafka import OFFSET_END, TIMESTAMP_NOT_AVAILABLE, TopicPartition
from confluent_kafka import KafkaError as ConfluentKafkaError

from dataflows import metrics as _m
from dataflows.metrics import flow_metrics
from dataflows.partitions import Routing, Share
from dataflows.source import kafka_partition

log = logging.getLogger("rewardflow.dataflow")
_PARTITION_EOF = ConfluentKafkaError._PARTITION_EOF  # noqa: SLF001


class _Msg:
    """The fields of a consumed message the parse step reads (a ``KafkaSourceMessage``
    costs several C calls and a dataclass ``__init__`` per message)."""

    __slots__ = ("key", "value", "topic", "partition", "offset")

    def __init__(self, key: bytes | None, value: bytes | None, topic: str, partition: int,
                 offset: int) -> None:
        self.key, self.value, self.topic, self.partition, self.offset = (
            key, value, topic, partition, offset)


class _LeanKafkaPartition(_BytewaxKafkaPartition):
    """Bytewax's Kafka source partition (same consumer, offsets, snapshots and resume),
    emitting :class:`_Msg` for good messages and never blocking. Errors are handled exactly
    as Bytewax does."""

    #: After a poll that did not fill a batch, the next poll of this partition waits this
    #: long (``next_awake``; the worker does other work meanwhile; ``RF_SOURCE_POLL_MS``).
    #: Polled as fast as the worker could, a steady 15-20k/s stream came in batches of a
    #: few events, and the flow spends ~40% more CPU per event on batches of 10 than of
    #: 1,000 (``bench.flow_profile --batch``). Measured at 15k/s live (``bench.pipeline
    #: --rate``): 20 ms -> freshness p99 6.9 s (falling behind), 50 ms -> 2.4 s, 100 ms ->
    #: 3.0 s.
    poll_every = 0.05

    _awake: datetime | None = None
    _reading = False  # logged the first message of this partition

    def next_awake(self) -> datetime | None:
        return self._awake

    def started(self) -> bool:
        """Whether a fetch of this partition has answered (its high watermark is known)."""
        return bool(self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, self._part_idx), cached=True)[1] >= 0)

    def caught_up(self) -> bool:
        """Whether this partition has read everything the broker reported at its last fetch
        (False until a fetch answered: a partition still starting is not idle)."""
        lo, hi = self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, self._part_idx), cached=True)
        if hi < 0:
            return False
        off = self._offset
        if off < 0:  # nothing read yet: caught up if empty (or told to start at the end)
            return hi <= lo or off == OFFSET_END
        return off >= hi

    def next_batch(self) -> list[Any]:
        if self._eof:
            raise StopIteration()
        # Never wait here: the worker runs every step on this thread. (Bytewax's own
        # partition waits up to 1 ms per poll that finds nothing: with 4 partitions and a
        # steady stream, that left the worker idle a quarter of the time.)
        msgs = self._consumer.consume(self._batch_size, 0)
        if msgs:
            kind, ms = msgs[0].timestamp()
            if kind != TIMESTAMP_NOT_AVAILABLE and ms > 0:
                _m.observe(flow_metrics().input_wait, time.time() - ms / 1000)
        self._awake = None if len(msgs) >= self._batch_size else \
            datetime.now(UTC) + timedelta(seconds=self.poll_every)
        batch: list[Any] = []
        append = batch.append
        topic, part = self._topic, self._part_idx
        last_offset = None
        for msg in msgs:
            error = msg.error()
            offset = msg.offset()
            if error is None:
                append(_Msg(msg.key(), msg.value(), topic, part, offset))  # type: ignore[arg-type]
            else:
                if error.code() == _PARTITION_EOF:
                    self._eof = True  # emit this batch, stop at the next call
                    break
                if error.code() < 0:
                    # Client-side and transient (broker down, transport): not input, and its
                    # offset is not a position. librdkafka reconnects by itself.
                    log.warning("kafka %s[%s]: %s", topic, part, error)
                    continue
                if self._raise_on_errors:
                    err_msg = f"error consuming from Kafka topic `{self._topic!r}`: {error}"
                    raise RuntimeError(err_msg)
                append(KafkaError(error, KafkaSourceMessage(
                    key=msg.key(), value=msg.value(), topic=msg.topic(),
                    headers=msg.headers() or [],  # type: ignore[arg-type]
                    latency=msg.latency(), offset=offset,
                    partition=msg.partition(), timestamp=msg.timestamp())))
            last_offset = offset
        if last_offset is not None:
            if not self._reading:
                self._reading = True
                log.info("kafka %s[%s]: reading, first offset %s", topic, part,
                         getattr(batch[0], "offset", last_offset) if batch else last_offset)
            self._offset = last_offset + 1
        return batch


class LeanKafkaSource(KafkaSource):
    """:class:`KafkaSource` with :class:`_LeanKafkaPartition` partitions (same part names,
    configuration and recovery state); ``poll_every`` seconds between short polls.

    With a :class:`~dataflows.partitions.Share` of several processes it lists only the
    partitions this process owns, after checking that the topics are co-partitioned, and
    exposes :attr:`routing` for the input's per-event check (:mod:`dataflows.partitions`).
    """

    def __init__(self, *args: Any, poll_every: float = 0.05, share: Share | None = None,
                 partitioner: str = "consistent_random", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.poll_every = poll_every
        self.share = share or Share()
        self.partitioner = partitioner
        #: set by :meth:`list_parts` when several processes share the input
        self.routing: Routing | None = None

    def list_parts(self) -> list[str]:
        """Kafka partitions (this process's share of them), listed with the broker address
        only (consumer-only settings such as ``auto.offset.reset`` make the admin client
        warn)."""
        from bytewax.connectors.kafka import _list_parts
        from confluent_kafka.admin import AdminClient

        client = AdminClient({"bootstrap.servers": ",".join(self._brokers)})
        parts = list(_list_parts(client, self._topics))
        if self.share.alone:
            return parts
        keys = {p: kafka_partition(p) for p in parts}
        counts: dict[str, int] = {}
        for topic, idx in (pk for pk in keys.values() if pk is not None):
            counts[topic] = max(counts.get(topic, 0), idx + 1)
        self.share.check(counts)
        self.routing = Routing(counts, self.partitioner)
        mine = [p for p, pk in keys.items() if pk is not None and self.share.owns(pk[1])]
        log.info("flow process %d of %d reads %s", self.share.index, self.share.processes,
                 ", ".join(mine))
        return mine

    def build_part(self, step_id: str, for_part: str, resume_state: int | None
                   ) -> _LeanKafkaPartition:
        idx, topic = for_part.split("-", 1)
        if topic not in self._topics:
            msg = "Can't resume from different set of Kafka topics"
            raise AssertionError(msg)
        config = {
            "group.id": "BYTEWAX_IGNORED",
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self._brokers),
            "enable.partition.eof": str(not self._tail),
            "statistics.interval.ms": 1000,
        }
        config.update(self._add_config)
        part = _LeanKafkaPartition(step_id, config, topic, int(idx), self._starting_offset,
                                   resume_state, self._batch_size, self._raise_on_errors)
        part.poll_every = self.poll_every
        return part
