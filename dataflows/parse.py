"""Turn raw Kafka messages into validated events, or dead letters that say why not."""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaError
from pydantic import ValidationError

from schemas.events import (
    AgentUpserted,
    DeadLetter,
    DecisionMade,
    EventBase,
    FeedbackGiven,
    PolicyRollbackRequested,
    PriorAssigned,
    SignalObserved,
    derived_id,
    parse_event,
)

#: Event types the dataflow accepts on its input topics.
INPUT_TYPES = (AgentUpserted, DecisionMade, FeedbackGiven, SignalObserved,
               PolicyRollbackRequested, PriorAssigned)

Parsed = tuple[str, Any, Any]


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(body)"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


def dead_letter(msg: Any, reason: str, step: str = "parse") -> DeadLetter:
    """A DLQ event for Kafka message ``msg`` with a deterministic id (topic/partition/offset).

    >>> from bytewax.connectors.kafka import KafkaSourceMessage
    >>> m = KafkaSourceMessage(key=None, value=b"{", topic="t.signals", partition=0, offset=7)
    >>> d = dead_letter(m, "bad json")
    >>> (d.reason, d.topic, d.partition, d.offset, d.payload)
    ('bad json', 't.signals', 0, 7, '{')
    """
    raw = msg.value or b""
    return DeadLetter(
        event_id=derived_id("dlq", msg.topic, msg.partition, msg.offset),
        reason=reason,
        step=step,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        payload=raw[:2000].decode("utf-8", errors="replace"),
    )


def parse_message(msg: Any) -> Parsed:
    """``("ok", "tenant:agent_id", (event, meta))`` or ``("dlq", reason, DeadLetter)``.

    >>> from bytewax.connectors.kafka import KafkaSourceMessage
    >>> m = KafkaSourceMessage(key=b"a", value=b'{"type": "SignalObserved"}', topic="s",
    ...                        partition=1, offset=3)
    >>> kind, reason, dl = parse_message(m)
    >>> kind, reason
    ('dlq', 'invalid')
    >>> dl.reason.split(";")[0]
    'SignalObserved.agent_id: Field required'
    """
    if isinstance(msg, KafkaError):
        return ("dlq", "kafka_error", dead_letter(msg.msg, f"kafka error: {msg.err}"))
    value = msg.value
    if value is None:
        return ("dlq", "empty", dead_letter(msg, "empty message value"))
    try:
        event: EventBase = parse_event(value)
    except ValidationError as exc:
        kind = "invalid_json" if any(e["type"] == "json_invalid" for e in exc.errors()) \
            else "invalid"
        return ("dlq", kind, dead_letter(msg, _reason(exc)))
    if not isinstance(event, INPUT_TYPES):
        return ("dlq", "unexpected_type",
                dead_letter(msg, f"event type {event.type!r} is not accepted on {msg.topic}"))  # type: ignore[attr-defined]
    agent_id = event.agent_id  # type: ignore[attr-defined]
    meta = (msg.topic, msg.partition, msg.offset)
    return ("ok", f"{event.tenant}:{agent_id}", (event, meta))
