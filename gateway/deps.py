"""FastAPI dependencies: state, settings, Redis, producer, tenant and admin scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request
from redis.asyncio import Redis

from gateway.auth import Principal
from gateway.producer import EventProducer
from gateway.state import AppState
from schemas.settings import Settings

AGENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


async def get_state(request: Request) -> AppState:
    return request.app.state.rf  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


async def get_redis(state: StateDep) -> Redis:
    return state.r


async def get_producer(state: StateDep) -> EventProducer:
    return state.producer


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
ProducerDep = Annotated[EventProducer, Depends(get_producer)]


async def principal_for(state: AppState, x_api_key: str | None) -> Principal:
    """The caller: from ``X-API-Key`` when auth is on, else the default tenant as admin."""
    if not state.settings.auth_enabled:
        return state.default_principal
    if not x_api_key:
        raise HTTPException(401, "missing X-API-Key header",
                            headers={"WWW-Authenticate": "X-API-Key"})
    p = await state.principal(x_api_key)
    if p is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "X-API-Key"})
    return p


async def get_principal(
    state: StateDep,
    x_api_key: Annotated[str | None, Header(description="API key (when auth is on)")] = None,
) -> Principal:
    return await principal_for(state, x_api_key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_tenant(principal: PrincipalDep) -> str:
    return principal.tenant


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.admin:
        raise HTTPException(403, "admin scope required")
    return principal


TenantDep = Annotated[str, Depends(get_tenant)]
AdminDep = Annotated[Principal, Depends(require_admin)]
AgentId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=AGENT_ID_PATTERN, examples=["ava"])
]
