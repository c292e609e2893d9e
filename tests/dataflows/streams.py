"""Generators of event streams for dataflow tests (pure, seeded)."""

from __future__ import annotations

import random
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage

from schemas.events import DecisionMade, EventBase, FeedbackGiven, SignalObserved, dump_event

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def to_messages(events: list[tuple[str, EventBase | bytes]]) -> list[KafkaSourceMessage]:
    """Wrap (topic, event) pairs into Kafka source messages with running offsets."""
    offsets: dict[str, int] = {}
    out = []
    for topic, ev in events:
        off = offsets.get(topic, 0)
        offsets[topic] = off + 1
        value = ev if isinstance(ev, bytes) else dump_event(ev)
        out.append(KafkaSourceMessage(key=b"k", value=value, topic=topic, partition=0,
                                      offset=off))
    return out


def keyed_messages(stream: list[tuple[str, bytes]], offsets: dict[tuple[str, int], int]
                   ) -> list[KafkaSourceMessage]:
    """(topic, JSON) pairs as producers keyed by agent send them: two partitions a topic,
    by the agent id's CRC32, with running offsets kept in ``offsets`` (pass the same dict
    again to go on after the last message, as a replay would)."""
    out = []
    for topic, raw in stream:
        doc = orjson.loads(raw)
        pk = (topic, zlib.crc32(str(doc.get("agent_id", "")).encode()) % 2)
        off = offsets[pk] = offsets.get(pk, -1) + 1
        out.append(KafkaSourceMessage(key=None, value=raw, topic=topic, partition=pk[1],
                                      offset=off))
    return out


def simple_stream(agents: int = 3, decisions: int = 20, seed: int = 1):
    """Decisions with explicit feedback or implicit signals; returns (topic, event) pairs."""
    rng = random.Random(seed)
    out: list[tuple[str, EventBase]] = []
    for i in range(decisions):
        for a in range(agents):
            ts = T0 + timedelta(seconds=30 * i + a)
            d = DecisionMade(decision_id=uuid.UUID(int=rng.getrandbits(128)), agent_id=f"a{a}",
                             user_id=f"u{i % 3}", action=rng.choice(["x", "y"]),
                             propensity=0.5, explored=False, policy_version=0, bucket="*",
                             ts=ts, event_id=uuid.UUID(int=rng.getrandbits(128)))
            out.append(("t.decisions", d))
            if i % 2 == 0:
                out.append(("t.signals", FeedbackGiven(
                    decision_id=d.decision_id, agent_id=d.agent_id, user_id=d.user_id,
                    kind="thumbs", value=1.0 if d.action == "x" else -1.0,
                    ts=ts + timedelta(seconds=5), event_id=uuid.UUID(int=rng.getrandbits(128)))))
            else:
                out.append(("t.signals", SignalObserved(
                    agent_id=d.agent_id, user_id=d.user_id, kind="sentiment", value=0.5,
                    ts=ts + timedelta(seconds=3), event_id=uuid.UUID(int=rng.getrandbits(128)))))
    return out
