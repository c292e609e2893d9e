"""Gateway test helpers: an app client on the real broker/Redis and a topic reader."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.main import create_app
from schemas.settings import Settings

SPEC: dict[str, Any] = {
    "persona": {"name": "Ava", "description": "A friendly companion."},
    "traits": {"humor": 0.9, "brevity": 0.5},
    "trait_bounds": {"humor": [0.1, 0.95]},
    "actions": ["reply", "ask_question", "stay_quiet"],
    "context_keys": ["slot"],
    "epsilon": 0.1,
}


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def read_topic(bootstrap: str, topic: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Read ``n`` messages from every partition of ``topic`` from the beginning."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "gw-tests",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        parts = c.list_topics(topic, timeout=5).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            doc = orjson.loads(msg.value())
            doc["_key"] = msg.key().decode() if msg.key() else None
            out.append(doc)
        return out
    finally:
        c.close()
