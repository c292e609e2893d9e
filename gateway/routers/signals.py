"""Explicit feedback, implicit signals and when to ask for feedback."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query

from gateway.deps import AgentId, StateDep, TenantDep
from gateway.feedback_prompt import plan
from gateway.models import Accepted, FeedbackIn, FeedbackPromptOut, SignalsIn
from schemas.events import FeedbackGiven, SignalObserved, dump_event

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", status_code=202, response_model=Accepted,
             responses={404: {"description": "Unknown agent"}})
async def feedback(body: Annotated[FeedbackIn, Body(openapi_examples={
    "thumbs": {"value": FeedbackIn.model_config["json_schema_extra"]["examples"][0]},  # type: ignore[index]
    "rating": {"value": FeedbackIn.model_config["json_schema_extra"]["examples"][1]},  # type: ignore[index]
})], state: StateDep, tenant: TenantDep) -> Accepted:
    """Record explicit feedback about a decision; emits FeedbackGiven."""
    fields: dict[str, Any] = {"ts": body.ts} if body.ts else {}
    event = FeedbackGiven(
        tenant=tenant, decision_id=body.decision_id, agent_id=body.agent_id,
        user_id=body.user_id, kind=body.kind, value=body.value, **fields,
    )
    if not await state.touch_feedback(tenant, body.agent_id, body.user_id,
                                      event.ts.timestamp()):
        raise HTTPException(404, f"unknown agent {body.agent_id!r}")
    state.producer.produce(state.topics.signals, body.agent_id, dump_event(event))
    state.metrics.feedback.labels(body.kind).inc()
    return Accepted(accepted=1, ids=[event.event_id])


@router.post("/v1/signals", status_code=202, response_model=Accepted)
async def signals(body: Annotated[SignalsIn, Body(openapi_examples={
    "batch": {"value": SignalsIn.model_config["json_schema_extra"]["examples"][0]},  # type: ignore[index]
})], state: StateDep, tenant: TenantDep) -> Accepted:
    """Record a batch of implicit signals; emits one SignalObserved each."""
    ids = []
    for s in body.signals:
        extra: dict[str, Any] = {"ts": s.ts} if s.ts else {}
        event = SignalObserved(
            tenant=tenant, decision_id=s.decision_id, agent_id=s.agent_id,
            user_id=s.user_id, kind=s.kind, value=s.value, **extra,
        )
        state.producer.produce(state.topics.signals, s.agent_id, dump_event(event))
        state.metrics.signals.labels(s.kind).inc()
        ids.append(event.event_id)
    return Accepted(accepted=len(ids), ids=ids)


@router.get("/v1/agents/{agent_id}/feedback-prompt", response_model=FeedbackPromptOut,
            responses={404: {"description": "Unknown agent"}})
async def feedback_prompt(
    agent_id: AgentId,
    state: StateDep,
    tenant: TenantDep,
    user_id: Annotated[str, Query(min_length=1, max_length=128, examples=["u42"])],
    session_seconds: Annotated[float, Query(ge=0, examples=[300])] = 0.0,
    agent_messages: Annotated[int, Query(ge=0, examples=[6])] = 0,
    explored: Annotated[bool, Query(description="the last decision explored")] = False,
    intensity: Annotated[Literal["off", "low", "normal", "high"] | None,
                         Query(description="default: the tenant's compile rules")] = None,
) -> FeedbackPromptOut:
    """Whether to ask this user for feedback now (rating, thumbs, check-in) or not."""
    view, rules = await state.load(tenant, agent_id)
    if view is None:
        raise HTTPException(404, f"unknown agent {agent_id!r}")
    fr = rules.rules.feedback
    level = intensity or fr.intensity
    key = state.fbp_key(tenant, agent_id, user_id)
    last = await state.r.hget(key, "last_feedback")
    now = time.time()
    age = now - float(last) if last is not None else None
    p = plan(fr, level, session_seconds=session_seconds, agent_messages=agent_messages,
             explored=explored, last_feedback_age=age)
    chosen, reason = "none", "nothing due"
    for kind in p.kinds:
        if kind == "thumbs":
            chosen = kind
        else:
            ttl = p.rating_ttl_seconds if kind == "rating" else p.check_in_ttl_seconds
            if not await state.r.set(f"{key}:{kind}", "1", nx=True, ex=max(1, ttl)):
                continue
            chosen = kind
        reason = p.reasons[kind]
        break
    return FeedbackPromptOut(prompt=chosen, reason=reason, intensity=level,  # type: ignore[arg-type]
                             candidates=p.kinds)
