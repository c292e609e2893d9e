"""Small Kafka/Redis helpers for integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.events import EventBase, dump_event


def produce(bootstrap: str, items: Iterable[tuple[str, EventBase | bytes]]) -> int:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    n = 0
    for topic, ev in items:
        value = ev if isinstance(ev, bytes) else dump_event(ev)
        key = getattr(ev, "agent_id", "x").encode() if not isinstance(ev, bytes) else b"x"
        while True:
            try:
                p.produce(topic, key=key, value=value)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
    assert p.flush(30) == 0
    return n


def consume_all(bootstrap: str, topic: str, partitions: int = 2,
                timeout: float = 2.0) -> list[dict[str, Any]]:
    """Every message currently in ``topic`` (JSON-decoded)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
    out, eof = [], set()
    deadline = time.monotonic() + timeout
    while len(eof) < partitions and time.monotonic() < deadline:
        for m in c.consume(500, 0.2):
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                continue
            out.append(orjson.loads(m.value()))
    c.close()
    return out


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            msg = f"condition not met within {timeout}s"
            raise AssertionError(msg)
        time.sleep(interval)
