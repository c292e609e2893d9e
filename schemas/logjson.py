"""Structured logging: one JSON object per line.

Every record becomes ``{"ts", "level", "logger", "msg", ...}`` where ``ts`` is the UTC time in
ISO 8601 with milliseconds, and every field passed with ``extra=`` (``decision_id``,
``event_id``, ``agent_id``, ...) is a top-level key, so log pipelines can filter on them.
Exceptions add ``exc_type`` and ``exc`` (the formatted traceback).

>>> import io, logging, orjson
>>> stream = io.StringIO()
>>> log = logging.getLogger("rewardflow.doctest")
>>> handler = logging.StreamHandler(stream)
>>> handler.setFormatter(JsonFormatter())
>>> log.addHandler(handler); log.propagate = False; log.setLevel(logging.INFO)
>>> log.info("decision %s served", "d1", extra={"decision_id": "d1", "agent_id": "a1"})
>>> line = orjson.loads(stream.getvalue())
>>> sorted(line)
['agent_id', 'decision_id', 'level', 'logger', 'msg', 'ts']
>>> line["msg"], line["level"], line["logger"], line["ts"].endswith("Z")
('decision d1 served', 'INFO', 'rewardflow.doctest', True)
>>> log.removeHandler(handler)
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

__all__ = ["JsonFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RESERVED = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _default(obj: Any) -> Any:
    """Fallback for values orjson cannot serialise: sets become lists, the rest ``str``."""
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


class JsonFormatter(logging.Formatter):
    """A ``logging.Formatter`` that renders each record as one JSON object (no newlines).

    ``static`` fields (e.g. ``{"service": "gateway"}``) are added to every line; fields from
    ``extra=`` win over them, and the core keys (ts, level, logger, msg) win over both.
    """

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = dict(self.static)
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        doc["ts"] = (
            datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        doc["level"] = record.levelname
        doc["logger"] = record.name
        doc["msg"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            doc["exc_type"] = record.exc_info[0].__name__
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(doc, default=_default, option=_OPTS).decode()
        except TypeError:  # e.g. integers beyond 64 bits, circular data
            safe = {k: v if _serialisable(v) else str(v) for k, v in doc.items()}
            return orjson.dumps(safe, default=str, option=_OPTS).decode()


def _serialisable(v: Any) -> bool:
    """True when orjson (with :func:`_default`) can serialise ``v`` on its own."""
    try:
        orjson.dumps(v, default=_default, option=_OPTS)
    except TypeError:
        return False
    return True


_HANDLER_MARK = "_rewardflow_json"


def configure_logging(
    level: int | str = "INFO",
    *,
    stream: IO[str] | None = None,
    static: dict[str, Any] | None = None,
) -> logging.Handler:
    """Install :class:`JsonFormatter` on the root logger, writing to ``stream`` (stderr).

    Idempotent: calling it again replaces the handler it installed before, and leaves other
    handlers (pytest's capture, for one) alone. Returns the installed handler.

    >>> import io
    >>> buf = io.StringIO()
    >>> h = configure_logging("DEBUG", stream=buf, static={"service": "doctest"})
    >>> logging.getLogger("x").debug("hi", extra={"event_id": "e1"})
    >>> '"service":"doctest"' in buf.getvalue() and '"event_id":"e1"' in buf.getvalue()
    True
    >>> logging.getLogger().removeHandler(h)
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(static=static))
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    return handler
