"""Prometheus metrics of one gateway app, on its own ``CollectorRegistry``."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5
)
EPSILON_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


class Metrics:
    """All gateway metrics; create one per app (tests get a fresh registry each)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rewardflow_gateway_requests_total", "HTTP requests by route, method and status",
            ["route", "method", "status"], registry=r,
        )
        self.duration = Histogram(
            "rewardflow_gateway_request_duration_seconds", "HTTP request duration by route",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.decisions = Counter(
            "rewardflow_gateway_decisions_total", "Decisions by action and exploration",
            ["action", "explored"], registry=r,
        )
        self.feedback = Counter(
            "rewardflow_gateway_feedback_total", "Explicit feedback by kind", ["kind"],
            registry=r,
        )
        self.signals = Counter(
            "rewardflow_gateway_signals_total", "Implicit signals by kind", ["kind"],
            registry=r,
        )
        self.produce_errors = Counter(
            "rewardflow_gateway_produce_errors_total", "Kafka produce/delivery errors",
            ["topic"], registry=r,
        )
        self.epsilon = Histogram(
            "rewardflow_gateway_epsilon", "Epsilon used per decision",
            buckets=EPSILON_BUCKETS, registry=r,
        )


class MetricsMiddleware:
    """Pure ASGI middleware: counts requests and times them by route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], Any] = {}
        self._hist: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            key = (path, scope["method"], status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.metrics.requests.labels(
                    path, scope["method"], str(status)
                )
            child.inc()
            hist = self._hist.get(path)
            if hist is None:
                hist = self._hist[path] = self.metrics.duration.labels(path)
            hist.observe(time.perf_counter() - start)
