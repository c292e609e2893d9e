"""Projections the dataflow keeps in Redis: summary, windows, history, relationships."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query

from gateway.deps import AgentId, StateDep, TenantDep
from gateway.models import JSONBytes
from schemas.projections import History, Relationship, Summary, Window, WindowAggregate

router = APIRouter(prefix="/v1/agents", tags=["projections"])

PROJECTION_EXAMPLE = {
    "agent_id": "ava",
    "summary": Summary(agent_id="ava", seq=120, interactions=100, mean_reward=0.31)
    .model_dump(mode="json"),
    "window": WindowAggregate(window="1h", count=40, positive=25, negative=5,
                              mean_reward=0.3, engagement=0.8, success_rate=0.62)
    .model_dump(mode="json"),
    "history": History().model_dump(mode="json"),
}


@router.get("/{agent_id}/projection", response_class=JSONBytes,
            responses={200: {"content": {"application/json": {"example": PROJECTION_EXAMPLE}}},
                       404: {"description": "Unknown agent"}})
async def projection(
    agent_id: AgentId, state: StateDep, tenant: TenantDep,
    window: Annotated[Window, Query(examples=["1h"])] = "1h",
) -> JSONBytes:
    """Summary, one window's aggregate and the behaviour history (empty when not yet built)."""
    k = state.keys
    pipe = state.r.pipeline(transaction=False)
    pipe.exists(k.agent(tenant, agent_id))
    pipe.hget(k.summary(tenant, agent_id), "doc")
    pipe.get(k.projection(tenant, agent_id, window))
    pipe.get(k.history(tenant, agent_id))
    exists, summary, agg, hist = await pipe.execute()
    if not exists:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    out = {
        "agent_id": agent_id,
        "summary": orjson.loads(summary) if summary else
        Summary(agent_id=agent_id, tenant=tenant).model_dump(mode="json"),
        "window": orjson.loads(agg) if agg else
        WindowAggregate(window=window).model_dump(mode="json"),
        "history": orjson.loads(hist) if hist else History().model_dump(mode="json"),
    }
    return JSONBytes(orjson.dumps(out))


@router.get("/{agent_id}/users/{user_id}", response_class=JSONBytes,
            responses={200: {"content": {"application/json": {"example": Relationship(
                user_id="u42", interactions=12, mean_reward=0.4, strength=3.1)
                .model_dump(mode="json")}}}, 404: {"description": "Unknown agent"}})
async def relationship(
    agent_id: AgentId, user_id: str, state: StateDep, tenant: TenantDep
) -> JSONBytes:
    """The agent's relationship with one user (empty when they never interacted)."""
    k = state.keys
    pipe = state.r.pipeline(transaction=False)
    pipe.exists(k.agent(tenant, agent_id))
    pipe.get(k.relationship(tenant, agent_id, user_id))
    exists, rel = await pipe.execute()
    if not exists:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    if rel is None:
        return JSONBytes(orjson.dumps(Relationship(user_id=user_id).model_dump(mode="json")))
    return JSONBytes(rel)
