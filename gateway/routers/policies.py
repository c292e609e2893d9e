"""Policies: the current document, its history and (admin) rollback."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException

from gateway.deps import AdminDep, AgentId, StateDep, TenantDep
from gateway.models import JSONBytes, RollbackIn
from schemas.events import PolicyRollbackRequested, dump_event
from schemas.policy import PolicyDocument

router = APIRouter(prefix="/v1/agents", tags=["policies"])

POLICY_EXAMPLE = {
    "agent_id": "ava", "tenant": "default", "version": 3, "parent_version": 2,
    "algorithm": "epsilon_greedy", "epsilon": 0.08, "explore": True,
    "traits": {"humor": 0.7}, "trait_bounds": {"humor": [0.1, 0.9]},
    "buckets": {"*": {"values": {"reply": 0.4, "stay_quiet": -0.1},
                      "counts": {"reply": 40, "stay_quiet": 7}, "epsilon": 0.08}},
    "reply_probability": {}, "probe": {"share": 0.1, "delta": 0.1, "traits": ["humor"]},
    "explanation": "humor +0.1 won 31 of 50 probes", "evidence": {}, "clamps": [],
    "updated_at": "2026-01-01T00:00:00Z",
}


@router.get("/{agent_id}/policy", response_class=JSONBytes,
            responses={200: {"content": {"application/json": {"example": POLICY_EXAMPLE}}},
                       404: {"description": "Unknown agent"}})
async def get_policy(agent_id: AgentId, state: StateDep, tenant: TenantDep) -> JSONBytes:
    """The agent's current policy document."""
    raw = await state.r.get(state.keys.policy(tenant, agent_id))
    if raw is None:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    return JSONBytes(raw)


@router.get("/{agent_id}/policy/versions", response_class=JSONBytes,
            responses={200: {"content": {"application/json": {"example": {
                "agent_id": "ava", "versions": [POLICY_EXAMPLE]}}}},
                404: {"description": "Unknown agent"}})
async def policy_versions(agent_id: AgentId, state: StateDep, tenant: TenantDep) -> JSONBytes:
    """Every stored policy version of the agent, oldest first."""
    k = state.keys
    pipe = state.r.pipeline(transaction=False)
    pipe.exists(k.agent(tenant, agent_id))
    pipe.hgetall(k.policy_history(tenant, agent_id))
    exists, hist = await pipe.execute()
    if not exists:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    versions = sorted((orjson.loads(v) for v in hist.values()), key=lambda d: d["version"])
    return JSONBytes(orjson.dumps({"agent_id": agent_id, "versions": versions}))


ROLLBACK_EXAMPLE = {"accepted": True, "agent_id": "ava", "target_version": 2,
                    "current_version": 5, "event_id": "0b9c4c1e-2c7e-4a55-9d0e-2d9b8f1a3c77"}


@router.post("/{agent_id}/policy/rollback", status_code=202, response_class=JSONBytes,
             responses={202: {"content": {"application/json": {"example": ROLLBACK_EXAMPLE}}},
                        404: {"description": "Unknown agent or version"}})
async def rollback(
    agent_id: AgentId, body: RollbackIn, state: StateDep, admin: AdminDep
) -> JSONBytes:
    """Admin: ask the learner to republish an old version as its next; emits a request."""
    tenant = admin.tenant
    k = state.keys
    pipe = state.r.pipeline(transaction=False)
    pipe.get(k.policy(tenant, agent_id))
    pipe.hget(k.policy_history(tenant, agent_id), str(body.version))
    cur_raw, old_raw = await pipe.execute()
    if cur_raw is None:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    if old_raw is None:
        raise HTTPException(404, f"agent {agent_id!r} has no policy version {body.version}")
    cur = PolicyDocument.model_validate_json(cur_raw)
    event = PolicyRollbackRequested(
        tenant=tenant, agent_id=agent_id, target_version=body.version,
        policy=PolicyDocument.model_validate_json(old_raw))
    # The learner is the only writer of policy versions: it applies this request and
    # publishes the old values as version current + 1 ("rolled back to vN").
    state.producer.produce(state.topics.agents, agent_id, dump_event(event))
    return JSONBytes(orjson.dumps({
        "accepted": True, "agent_id": agent_id, "target_version": body.version,
        "current_version": cur.version, "event_id": str(event.event_id)}), status_code=202)
