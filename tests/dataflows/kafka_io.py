"""Small Kafka/Redis helpers for integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.events import EventBase, dump_event


def _agent_key(raw: bytes) -> bytes:
    """A serialized event's ``agent_id`` as its key (``x`` for garbage)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return b"x"
    agent = doc.get("agent_id") if isinstance(doc, dict) else None
    return agent.encode() if isinstance(agent, str) else b"x"


def produce(bootstrap: str, items: Iterable[tuple[str, EventBase | bytes]], *,
            by_agent: bool = False) -> int:
    """Produce ``(topic, event or raw bytes)``; events are keyed by ``agent_id``, raw bytes
    by ``x`` unless ``by_agent`` (then by the ``agent_id`` in them, as producers must for
    co-partitioned flow processes)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    n = 0
    for topic, ev in items:
        value = ev if isinstance(ev, bytes) else dump_event(ev)
        key = getattr(ev, "agent_id", "x").encode() if not isinstance(ev, bytes) \
            else _agent_key(ev) if by_agent else b"x"
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
