"""Decisions: choose the next action, compile the prompt, log DecisionMade.

This is the hot path. :func:`run_decide` validates path, tenant and body itself (same 422
format as FastAPI) and decides through the agent's cached :class:`gateway.plan.DecisionPlan`;
:class:`gateway.fastpath.DecideFastPath` calls it without FastAPI's routing and dependency
resolution, and the route below (kept for OpenAPI, and taken when FastAPI's telemetry is on)
calls the same function.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from gateway.deps import AGENT_ID_PATTERN, principal_for
from gateway.models import DecideRequest, DecideResponse, JSONBytes
from gateway.plan import uuid4_str
from gateway.state import AppState
from schemas.policy import feature_number

router = APIRouter(prefix="/v1/agents", tags=["decisions"])
_AGENT_ID = re.compile(AGENT_ID_PATTERN)

_BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": DecideRequest.model_json_schema(),
    "examples": {
        "dm": {"summary": "A DM in the morning",
               "value": {"user_id": "u42", "context": {"slot": "morning", "room_size": 2}}},
        "group": {"summary": "A large room",
                  "value": {"user_id": "u7", "context": {"room_size": 12},
                            "ts": "2026-01-01T09:00:00Z"}},
    }}}},
    "parameters": [{"name": "agent_id", "in": "path", "required": True,
                    "schema": {"type": "string", "pattern": AGENT_ID_PATTERN,
                               "maxLength": 64}, "example": "ava"}]}


@router.post(
    "/{agent_id}/decide",
    response_model=DecideResponse,
    response_class=JSONBytes,
    openapi_extra=_BODY_SCHEMA,
    responses={404: {"description": "Unknown agent"},
               422: {"description": "Invalid path or body"},
               503: {"description": "Redis or Kafka unavailable"}},
)
async def decide(request: Request) -> JSONBytes:
    """Pick the agent's next action and compile its prompt; logs DecisionMade."""
    return JSONBytes(await run_decide(
        request.app.state.rf, request.path_params["agent_id"],
        request.headers.get("x-api-key"), request.body,
    ))


async def run_decide(state: AppState, agent_id: str, api_key: str | None,
                     read_body: Callable[[], Awaitable[bytes]]) -> bytes:
    """One decision: the JSON response body; produces DecisionMade and counts it.

    Raises what the app's exception handlers render: ``RequestValidationError`` (422),
    ``HTTPException`` (401, 404), Redis errors and ``KafkaUnavailable`` (503).
    """
    if len(agent_id) > 64 or not _AGENT_ID.match(agent_id):
        raise RequestValidationError([{"type": "string_pattern_mismatch",
                                       "loc": ("path", "agent_id"),
                                       "msg": f"agent_id must match {AGENT_ID_PATTERN}",
                                       "input": agent_id}])
    tenant = (await principal_for(state, api_key)).tenant
    try:
        body = DecideRequest.model_validate_json(await read_body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    plan = await state.load_plan(tenant, agent_id)
    if plan is None:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    for f in plan.spec.features:  # linear scoring reads these as numbers
        v = body.context.get(f)
        if v is not None and feature_number(v) is None:
            raise RequestValidationError([{
                "type": "float_type", "loc": ("body", "context", f), "input": v,
                "msg": f"context.{f} is a feature of this agent's linear scoring: a number"}])
    out, event, action, explored, epsilon = plan.decide(
        user_id=body.user_id, context=body.context, ts=body.ts, rng=state.rng,
        decision_id=uuid4_str(state.rng.getrandbits(128)),
    )
    state.producer.produce(state.topics.decisions, agent_id, event)
    state.count_decision(action, explored, epsilon)
    return orjson.dumps(out)
