"""Read an agent's projections back from Redis and wait for the flow to settle."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from tests.dataflows.kafka_io import wait_until

GARBAGE_PREFIX = b'{"type": "SignalObserved", "v'


def read_agents(r: Any, s: Any, agents: list[str]) -> dict[str, Any] | None:
    """Every projection of ``agents``, or None while any of them is not written yet."""
    out = {}
    for a in agents:
        summary = r.hget(s.keys.summary("default", a), "doc")
        policy = r.get(s.keys.policy("default", a))
        if summary is None or policy is None:
            return None
        doc = {"summary": orjson.loads(summary), "policy": orjson.loads(policy)}
        for w in ("1h", "24h", "7d"):
            doc[w] = orjson.loads(r.get(s.keys.projection("default", a, w)))
        doc["hist"] = orjson.loads(r.get(s.keys.history("default", a)))
        doc["rel"] = {k.rsplit(":", 1)[1]: orjson.loads(r.get(k))
                      for k in r.scan_iter(s.keys.relationship("default", a, "*"))}
        out[a] = doc
    return out


def wait_consumed(r: Any, s: Any, agents: list[str], produced: int, garbage: int,
                  timeout: float = 180.0) -> dict[str, Any]:
    """Wait until the summaries account for every produced message (parse DLQs aside)."""
    def settled() -> dict[str, Any] | None:
        try:
            snap = read_agents(r, s, agents)
        except (redis.ConnectionError, redis.BusyLoadingError):
            return None  # Redis restarting: ask again
        if snap is None:
            return None
        ingested = sum(d["summary"]["counts"]["in"] for d in snap.values())
        return snap if ingested + garbage == produced else None
    return wait_until(settled, timeout=timeout, interval=0.5)


def without_counters(snap: dict[str, Any]) -> dict[str, Any]:
    """Projections minus the counters that a replay legitimately moves (in, duplicates)."""
    out = {}
    for a, d in snap.items():
        s = {k: v for k, v in d["summary"].items() if k not in ("counts", "seq")}
        out[a] = {**d, "summary": s}
    return out
