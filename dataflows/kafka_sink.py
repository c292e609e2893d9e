"""The Kafka output edge: rewards, policy versions and dead letters, at least once.

A fixed-partitioned sink (one partition per process, see :func:`dataflows.sinks.local_key`)
so that Bytewax calls its ``snapshot`` at the end of every epoch, before it commits the
epoch's recovery snapshot: that is where it waits until everything produced is delivered.
In between, the producer delivers in the background (``linger.ms`` 10).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from dataflows import metrics as _m
from dataflows.metrics import flow_metrics
from dataflows.sinks import part_name, part_of

log = logging.getLogger("rewardflow.dataflow.sinks")


class _KafkaPartition(StatefulSinkPartition[KafkaSinkMessage[bytes, bytes], None]):
    def __init__(self, config: dict[str, Any]) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(config)

    def write_batch(self, items: list[KafkaSinkMessage[bytes, bytes]]) -> None:
        t0 = time.perf_counter()
        produce = self._producer.produce
        for msg in items:
            while True:
                try:
                    produce(msg.topic or "", value=msg.value, key=msg.key)
                    break
                except BufferError:
                    self._producer.poll(0.05)
        self._producer.poll(0)
        _m.flush()
        flow_metrics().kafka_seconds.observe(time.perf_counter() - t0)

    def snapshot(self) -> None:
        """Wait until everything produced is delivered (before the epoch commits)."""
        t0 = time.perf_counter()
        while self._producer.flush(1.0):
            log.warning("kafka: %d messages not delivered yet; waiting", len(self._producer))
        flow_metrics().kafka_seconds.observe(time.perf_counter() - t0)

    def close(self) -> None:
        self.snapshot()


class TimedKafkaSink(FixedPartitionedSink[KafkaSinkMessage[bytes, bytes], None]):
    """At-least-once Kafka output, delivered by the end of each epoch; topics come from the
    messages. Takes ``(key, message)`` pairs keyed by :func:`local_key`."""

    def __init__(self, bootstrap: str) -> None:
        self._config = {"bootstrap.servers": bootstrap, "linger.ms": 10,
                        "enable.idempotence": False}

    def list_parts(self) -> list[str]:
        return [part_name("kafka")]

    def part_fn(self, item_key: str) -> int:
        return part_of(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KafkaPartition:
        return _KafkaPartition(self._config)
