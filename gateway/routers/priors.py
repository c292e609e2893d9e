"""Population priors: what a template's agents learned, as archetypes (read only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from gateway.deps import StateDep, TenantDep
from gateway.models import JSONBytes

router = APIRouter(prefix="/v1/templates", tags=["priors"])

TemplateName = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", examples=["coach"])
]

PRIOR_EXAMPLE = {
    "tenant": "default", "template": "life-coach", "version": 1200, "actions": ["rest", "work"],
    "strength": 4.0, "evidence_weight": 1.0, "agents": 12,
    "archetypes": [
        {"name": "arch0", "size": 7, "values": {"day_part=morning": {"rest": 0.6, "work": -0.4}}},
        {"name": "arch1", "size": 5, "values": {"day_part=morning": {"rest": -0.5, "work": 0.7}}}],
    "explanation": ("2 archetypes from 12 agents (held-out log-likelihood +4.6 per agent "
                    "over one archetype)."),
    "updated_at": "2026-01-01T00:00:00Z",
}


@router.get("/{template}/prior", response_class=JSONBytes,
            responses={200: {"content": {"application/json": {"example": PRIOR_EXAMPLE}}},
                       404: {"description": "No prior for this template yet"}})
async def get_prior(template: TemplateName, state: StateDep, tenant: TenantDep) -> JSONBytes:
    """The template's current population prior (published by the population process)."""
    raw = await state.r.get(state.keys.prior(tenant, template))
    if raw is None:
        raise HTTPException(404, f"no population prior for template {template!r} yet")
    return JSONBytes(raw)
