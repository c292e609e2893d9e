"""The gateway app: ``uvicorn --factory gateway.main:create_app``.

Settings come from :func:`schemas.settings.get_settings` unless given; clients open in the
lifespan, never at import time.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.fastpath import DecideFastPath
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.models import JSONBytes
from gateway.producer import KafkaUnavailable
from gateway.routers import (
    admin,
    agents,
    decisions,
    health,
    policies,
    priors,
    projections,
    signals,
)
from gateway.state import AppState
from schemas.settings import Settings, get_settings

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Pure ASGI middleware: 413 for bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = orjson.dumps({"detail": f"request body over {self.max_bytes} bytes"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
                await self.app(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Any) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)


def _decide_route() -> APIRoute:
    for route in decisions.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is decisions.decide:
            return route
    msg = "the decide route is missing"
    raise RuntimeError(msg)


def create_app(settings: Settings | None = None, *, decide_fast_path: bool = True) -> FastAPI:
    """Build the gateway app; ``settings`` default to the process-wide cached ones.

    ``decide_fast_path=False`` serves decide through FastAPI's routing like every other
    route (same responses, slower; for tests and comparisons).
    """
    settings = settings if settings is not None else get_settings()
    if settings.log_json:
        from schemas.logjson import configure_logging

        configure_logging(settings.log_level, static={"service": "gateway"})
    metrics = Metrics()
    state = AppState(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.open()
        # Everything alive now (app, routes, pydantic schemas, clients) lives as long as the
        # process: move it out of the collector's generations, so that a full collection
        # during serving does not walk it (one over this heap takes ~40 ms on the bench box).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="rewardflow gateway",
        version="1.0.0",
        summary="Decisions, feedback and signals for agents that learn from their users.",
        lifespan=lifespan,
    )
    app.state.rf = state

    for r in (decisions.router, agents.router, signals.router, policies.router,
              priors.router, projections.router, admin.router, health.router):
        app.include_router(r)

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_down(request: Request, exc: Exception) -> JSONBytes:
        log.warning("503: redis unavailable: %r", exc)
        return JSONBytes({"detail": f"redis unavailable: {exc}"[:300]}, status_code=503)

    @app.exception_handler(KafkaUnavailable)
    async def _kafka_down(request: Request, exc: Exception) -> JSONBytes:
        log.warning("503: %s", exc)
        return JSONBytes({"detail": str(exc)}, status_code=503)

    # Innermost: serves POST /v1/agents/{agent_id}/decide without FastAPI's routing.
    if decide_fast_path:
        app.add_middleware(DecideFastPath, state=state, route=_decide_route())
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
