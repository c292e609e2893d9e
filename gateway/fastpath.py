"""The decide fast path: ``POST /v1/agents/{agent_id}/decide`` without FastAPI's per-request
machinery.

FastAPI spends more on routing (matching ~20 routes), dependency solving, the ``Request`` and
``Response`` objects and the middleware hops than the decision itself costs. This pure ASGI
middleware sits innermost among the app's middlewares (inside the metrics, CORS and body-limit
ones, outside FastAPI's ``ExceptionMiddleware``), recognises the decide route with the route's
own regex and runs the same handler code (:func:`gateway.routers.decisions.run_decide`).

What stays identical to going through the route:

* ``scope["route"]``, ``scope["endpoint"]`` and ``scope["path_params"]`` are set as routing
  sets them, so the metrics middleware labels the request with the route template;
* errors are rendered by the handlers the app's ``ExceptionMiddleware`` holds, looked up the
  way Starlette does (422 naming the field, 404, 401 with its header, 503 for Redis/Kafka);
  any other exception propagates to the server-error middleware as before (500);
* the 200 response carries the same headers as a ``JSONBytes`` response.

Anything else (other paths and methods, or FastAPI's native OpenTelemetry instrumentation
being active for the request, which needs routing to name the span) goes through FastAPI.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import get_route_path, is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request

from gateway.routers.decisions import run_decide
from gateway.state import AppState

_JSON = b"application/json"


def _find_exception_middleware(app: Any) -> ExceptionMiddleware | None:
    seen = 0
    while app is not None and seen < 32:
        if isinstance(app, ExceptionMiddleware):
            return app
        app = getattr(app, "app", None)
        seen += 1
    return None


class DecideFastPath:
    """Pure ASGI middleware serving the decide route directly (see the module docstring)."""

    def __init__(self, app: Any, state: AppState, route: APIRoute) -> None:
        self.app = app
        self.state = state
        self.route = route
        self.regex = route.path_regex
        self.path_param = next(iter(route.param_convertors))
        em = _find_exception_middleware(app)
        # Without the app's exception handlers errors could not be rendered the same way:
        # then every request takes the normal route.
        self.handlers = (None if em is None
                         else (em._exception_handlers, em._status_handlers))  # noqa: SLF001

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or self.handlers is None
                or scope.get("fastapi.telemetry") is not None):
            await self.app(scope, receive, send)
            return
        m = self.regex.match(get_route_path(scope))
        if m is None:
            await self.app(scope, receive, send)
            return
        route = self.route
        agent_id = m.group(self.path_param)
        path_params = dict(scope.get("path_params", ()))
        path_params[self.path_param] = agent_id
        scope["endpoint"] = route.endpoint
        scope["path_params"] = path_params
        scope["route"] = route

        async def read_body() -> bytes:
            chunks = []
            while True:
                msg = await receive()
                if msg["type"] == "http.request":
                    chunk = msg.get("body", b"")
                    if chunk:
                        chunks.append(chunk)
                    if not msg.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                elif msg["type"] == "http.disconnect":
                    raise ClientDisconnect

        api_key = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
                break
        try:
            body = await run_decide(self.state, agent_id, api_key, read_body)
        except Exception as exc:
            if not await self._handle(exc, scope, receive, send):
                raise
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, exc: Exception, scope: dict[str, Any], receive: Any,
                      send: Any) -> bool:
        """What Starlette's ``wrap_app_handling_exceptions`` does with the same handlers;
        False when no handler takes ``exc`` (the caller re-raises it)."""
        exception_handlers, status_handlers = self.handlers  # type: ignore[misc]
        handler: Any = None
        if isinstance(exc, HTTPException):
            handler = status_handlers.get(exc.status_code)
        if handler is None:
            handler = _lookup_exception_handler(exception_handlers, exc)
        if handler is None:
            return False
        request = Request(scope, receive, send)
        if is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if response is not None:
            await response(scope, receive, send)
        return True
