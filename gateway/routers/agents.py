"""Agent registration and lookup."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Response

from gateway.deps import AgentId, StateDep, TenantDep
from gateway.models import SPEC_EXAMPLE, AgentOut, JSONBytes
from schemas.agent import AgentSpec
from schemas.events import AgentUpserted, dump_event

router = APIRouter(prefix="/v1/agents", tags=["agents"])


@router.put(
    "/{agent_id}",
    response_model=AgentOut,
    status_code=200,
    responses={201: {"model": AgentOut, "description": "Created"},
               200: {"description": "Updated"}},
)
async def upsert_agent(
    agent_id: AgentId,
    spec: Annotated[AgentSpec, Body(openapi_examples={
        "companion": {"summary": "A companion agent", "value": SPEC_EXAMPLE},
        "minimal": {"summary": "Minimal", "value": {"persona": {"name": "Ava"},
                                                    "actions": ["reply", "stay_quiet"]}},
    })],
    state: StateDep,
    tenant: TenantDep,
    response: Response,
) -> Any:
    """Register or update an agent: store its spec, write policy v0, emit AgentUpserted.

    When the agent's ``template`` has a population prior and the agent has no learned policy
    yet, version 0 is blended from the prior and the event carries it to the learner.
    """
    created, prior = await state.upsert_agent(tenant, agent_id, spec)
    event = AgentUpserted(tenant=tenant, agent_id=agent_id, spec=spec, prior=prior)
    state.producer.produce(state.topics.agents, agent_id, dump_event(event))
    response.status_code = 201 if created else 200
    return AgentOut(agent_id=agent_id, created=created, spec=spec.model_dump(mode="json"))


@router.get(
    "/{agent_id}",
    response_class=JSONBytes,
    responses={200: {"content": {"application/json": {"example": SPEC_EXAMPLE}}},
               404: {"description": "Unknown agent"}},
)
async def get_agent(agent_id: AgentId, state: StateDep, tenant: TenantDep) -> JSONBytes:
    """The agent's registered spec."""
    raw = await state.r.get(state.keys.agent(tenant, agent_id))
    if raw is None:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    return JSONBytes(raw)
