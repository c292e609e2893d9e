"""Request and response models of the v1 HTTP API (with OpenAPI examples)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import orjson
from fastapi import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.agent import Name
from schemas.events import SIGNAL_RANGES, ContextValue, UserId
from schemas.kinds import FeedbackKind, SignalKind


class JSONBytes(Response):
    """A JSON response rendered with orjson (or passed through when already bytes)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


SPEC_EXAMPLE = {
    "persona": {"name": "Ava", "description": "A friendly companion in group chats."},
    "traits": {"humor": 0.6, "warmth": 0.8, "brevity": 0.5, "exploration": 0.3},
    "trait_bounds": {"humor": [0.1, 0.9]},
    "actions": ["reply", "ask_question", "share_fact", "stay_quiet"],
    "context_keys": ["room", "slot"],
    "template": "companion",
    "epsilon": 0.1,
}


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"user_id": "u42", "context": {"room": "dm", "slot": "morning", "room_size": 2}},
    ]})

    user_id: UserId
    context: Annotated[dict[Annotated[str, Field(max_length=64)], ContextValue],
                       Field(max_length=64)] = Field(default_factory=dict)
    ts: AwareDatetime | None = None


class Prompt(BaseModel):
    system: str
    params: dict[str, float | int]


class ProbeOut(BaseModel):
    trait: str
    delta: float


class DecideResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "decision_id": "0b9d3f4e-8a51-4c0e-9a43-6f1c2b1e6a55", "action": "ask_question",
        "propensity": 0.925, "explored": False, "policy_version": 3,
        "traits": {"humor": 0.6, "warmth": 0.8}, "probe": None,
        "prompt": {"system": "You are Ava. ...", "params": {"temperature": 0.47,
                                                            "max_tokens": 450}},
        "model": "small-chat", "should_reply": True, "bucket": "room=dm|slot=morning",
        "rules_version": 0, "sections_used": ["persona", "trait:humor", "action:default"],
    }]})

    decision_id: uuid.UUID
    action: str
    propensity: float
    explored: bool
    policy_version: int
    traits: dict[str, float]
    probe: ProbeOut | None = None
    prompt: Prompt
    model: str
    should_reply: bool
    bucket: str
    rules_version: int
    sections_used: list[str] = Field(default_factory=list)


class AgentOut(BaseModel):
    agent_id: str
    created: bool
    spec: dict[str, Any]
    policy_version: int = 0


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"decision_id": "0b9d3f4e-8a51-4c0e-9a43-6f1c2b1e6a55", "agent_id": "ava",
         "user_id": "u42", "kind": "thumbs", "value": 1},
        {"decision_id": "0b9d3f4e-8a51-4c0e-9a43-6f1c2b1e6a55", "agent_id": "ava",
         "user_id": "u42", "kind": "rating", "value": 4},
    ]})

    decision_id: uuid.UUID | None = None
    agent_id: Name
    user_id: UserId
    kind: FeedbackKind
    value: float
    ts: AwareDatetime | None = None

    @field_validator("value")
    @classmethod
    def _range(cls, v: float, info: ValidationInfo) -> float:
        kind = info.data.get("kind")
        lo, hi = (1.0, 5.0) if kind == "rating" else (-1.0, 1.0)
        if not lo <= v <= hi:
            msg = f"value {v} out of range [{lo}, {hi}] for kind {kind!r}"
            raise ValueError(msg)
        return v


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: uuid.UUID | None = None
    agent_id: Name
    user_id: UserId
    kind: SignalKind
    value: float = 1.0
    ts: AwareDatetime | None = None

    @field_validator("value")
    @classmethod
    def _range(cls, v: float, info: ValidationInfo) -> float:
        kind = info.data.get("kind")
        if kind in SIGNAL_RANGES:
            lo, hi = SIGNAL_RANGES[kind]
            if not lo <= v <= hi:
                msg = f"value {v} out of range [{lo}, {hi}] for kind {kind!r}"
                raise ValueError(msg)
        return v


class SignalsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"signals": [
        {"decision_id": "0b9d3f4e-8a51-4c0e-9a43-6f1c2b1e6a55", "agent_id": "ava",
         "user_id": "u42", "kind": "reply_latency_ms", "value": 3200},
        {"agent_id": "ava", "user_id": "u42", "kind": "session_end", "value": 1},
    ]}]})

    signals: Annotated[list[SignalIn], Field(min_length=1, max_length=1000)]


class Accepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": 1, "ids": [
        "7d6c2f0a-7a3b-4f5e-8c1d-2b3a4c5d6e7f"]}]})

    accepted: int
    ids: list[uuid.UUID]


class FeedbackPromptOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prompt": "rating", "reason": "meaningful session (300s, 6 messages)",
         "intensity": "normal", "candidates": ["rating", "thumbs"]},
    ]})

    prompt: Literal["none", "rating", "thumbs", "check_in"]
    reason: str = ""
    intensity: str
    candidates: list[str] = Field(default_factory=list)


class RulesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"version": 3, "updated_at": "2026-01-01T00:00:00+00:00", "rules": {"persona": "..."}}
    ]})

    version: int
    updated_at: str | None = None
    rules: dict[str, Any]


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 2}]})

    version: Annotated[int, Field(ge=0)]
