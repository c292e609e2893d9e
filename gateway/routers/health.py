"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.deps import StateDep
from gateway.models import JSONBytes

router = APIRouter(tags=["health"])


@router.get("/healthz", responses={200: {"content": {"application/json": {
    "example": {"status": "ok"}}}}})
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_class=JSONBytes, responses={
    200: {"content": {"application/json": {"example": {"status": "ready", "redis": "ok",
                                                         "kafka": "ok"}}}},
    503: {"content": {"application/json": {"example": {"status": "unavailable",
                                                         "redis": "down: ...", "kafka": "ok",
                                                         "down": ["redis"]}}}}})
async def readyz(state: StateDep) -> JSONBytes:
    """Ready when Redis answers PING and a Kafka broker answers a metadata request."""
    async def redis_ok() -> str:
        try:
            await asyncio.wait_for(state.r.ping(), 1.5)
            return "ok"
        except Exception as exc:
            return f"down: {type(exc).__name__}: {exc}"[:200]

    async def kafka_ok() -> str:
        ok = await asyncio.to_thread(state.producer.ping, 1.5)
        return "ok" if ok else "down: no broker answered a metadata request"

    r, k = await asyncio.gather(redis_ok(), kafka_ok())
    down = [name for name, v in (("redis", r), ("kafka", k)) if v != "ok"]
    body = {"status": "unavailable" if down else "ready", "redis": r, "kafka": k,
            "down": down}
    return JSONBytes(body, status_code=503 if down else 200)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {
                "example": "rewardflow_gateway_decisions_total{action=\"reply\","
                           "explored=\"false\"} 12.0\n"}}}})
async def metrics(state: StateDep) -> Response:
    """Prometheus metrics of the gateway: every uvicorn worker's, summed, in multiprocess mode."""
    registry = state.metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several workers share the port: whichever answers the scrape reports them all.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
