"""schemas.logjson: one JSON object per line, extras at top level, exceptions kept."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.logjson import JsonFormatter, configure_logging


@pytest.fixture()
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    level = root.level
    buf = io.StringIO()
    handler = configure_logging("DEBUG", stream=buf)
    yield logging.getLogger("rewardflow.test"), buf
    root.removeHandler(handler)
    root.setLevel(level)


def lines(buf: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def test_one_object_per_line_with_core_fields_and_extras(capture) -> None:
    log, buf = capture
    did = uuid.uuid4()
    log.info("decided\nfor %s", "a1", extra={"decision_id": did, "agent_id": "a1", "n": 3})
    log.warning("second")
    first, second = lines(buf)
    assert first["msg"] == "decided\nfor a1"
    assert first["level"] == "INFO" and first["logger"] == "rewardflow.test"
    assert first["decision_id"] == str(did) and first["agent_id"] == "a1" and first["n"] == 3
    ts = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert abs(ts - datetime.now(UTC)) < timedelta(seconds=30)
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2024-01-01T00:00:00.000Z")
    assert second["level"] == "WARNING"
    assert "taskName" not in first and "args" not in first and "exc_info" not in first


def test_exceptions_and_unserialisable_extras(capture) -> None:
    log, buf = capture

    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    try:
        raise ValueError("boom")
    except ValueError:
        log.exception(
            "failed", extra={"event_id": "e1", "thing": Opaque(), "tags": {"b", "a"}, "big": 2**70}
        )
    (doc,) = lines(buf)
    assert doc["exc_type"] == "ValueError"
    assert "Traceback" in doc["exc"] and "boom" in doc["exc"]
    assert doc["level"] == "ERROR" and doc["event_id"] == "e1"
    assert doc["thing"] == "opaque!"
    assert doc["big"] in (2**70, str(2**70))


def test_configure_logging_is_idempotent_and_keeps_other_handlers() -> None:
    root = logging.getLogger()
    level = root.level
    other = logging.NullHandler()
    root.addHandler(other)
    buf1, buf2 = io.StringIO(), io.StringIO()
    try:
        configure_logging("INFO", stream=buf1)
        h2 = configure_logging("INFO", stream=buf2, static={"service": "gateway"})
        logging.getLogger("x").info("once")
        assert buf1.getvalue() == ""
        (doc,) = lines(buf2)
        assert doc["service"] == "gateway" and doc["msg"] == "once"
        assert other in root.handlers
        assert sum(isinstance(h.formatter, JsonFormatter) for h in root.handlers) == 1
        root.removeHandler(h2)
    finally:
        root.removeHandler(other)
        root.setLevel(level)


def test_level_filters(capture) -> None:
    log, buf = capture
    logging.getLogger().setLevel("WARNING")
    log.info("hidden")
    log.error("shown")
    assert [d["msg"] for d in lines(buf)] == ["shown"]
