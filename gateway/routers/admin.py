"""Admin: compile rules (upload, validate, version, hot reload)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError

from gateway.deps import AdminDep, StateDep
from gateway.models import JSONBytes, RulesOut
from gateway.rules import RulesError, parse_rules

router = APIRouter(prefix="/v1/admin", tags=["admin"])

RULES_YAML_EXAMPLE = """persona: "You are {name}. {description}"
traits:
  humor:
    - {min: 0.0, max: 0.3, text: "Avoid jokes."}
    - {min: 0.7, max: 1.0, text: "Witty, friendly jokes."}
params:
  defaults: {temperature: 0.7, max_tokens: 400}
  maps:
    - {param: max_tokens, trait: brevity, slope: -700, intercept: 800, min: 64, max: 800,
       round: true}
"""


def _rules_error(exc: RulesError) -> RequestValidationError:
    return RequestValidationError([
        {"type": "rules_invalid", "loc": ["body", *e["loc"]], "msg": e["msg"],
         "line": e["line"], "input": None}
        for e in exc.errors
    ])


RULES_BODY = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string"}, "example": RULES_YAML_EXAMPLE},
    "application/json": {"schema": {"type": "object"}, "example": {
        "persona": "You are {name}.", "models": {"default": "small-chat"}}},
}}}
RULES_OUT_EXAMPLE = {200: {"content": {"application/json": {"example": {
    "version": 3, "updated_at": "2026-01-01T00:00:00+00:00",
    "rules": {"persona": "You are {name}."}}}}}}


@router.put(
    "/rules",
    response_model=RulesOut,
    openapi_extra=RULES_BODY,
    responses={422: {"description": "Invalid rules; each error names its line"}},
)
async def put_rules(request: Request, state: StateDep, admin: AdminDep) -> Any:
    """Upload compile rules (YAML or JSON); the next decision uses them."""
    body = await request.body()
    try:
        rules = parse_rules(body)
    except RulesError as exc:
        raise _rules_error(exc) from exc
    version = await state.put_rules(admin.tenant, rules, datetime.now(UTC).isoformat())
    return RulesOut(version=version, updated_at=None, rules=rules.model_dump(mode="json"))


@router.get("/rules", response_class=JSONBytes, response_model=RulesOut,
            responses=RULES_OUT_EXAMPLE)  # type: ignore[arg-type]
async def get_rules(state: StateDep, admin: AdminDep) -> JSONBytes:
    """The tenant's current compile rules and their version (0 = shipped default)."""
    return JSONBytes(orjson.dumps(await state.get_rules(admin.tenant)))


@router.post("/rules/validate", response_model=RulesOut, openapi_extra=RULES_BODY,
             responses={422: {"description": "Invalid rules; each error names its line"}})
async def validate_rules(request: Request, admin: AdminDep) -> Any:
    """Validate compile rules without storing them."""
    try:
        rules = parse_rules(await request.body())
    except RulesError as exc:
        raise _rules_error(exc) from exc
    return RulesOut(version=-1, rules=rules.model_dump(mode="json"))
