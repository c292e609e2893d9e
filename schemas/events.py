"""Event models: everything that travels on the rewardflow topics.

Every event has ``event_id`` (the idempotency key), ``type`` (the discriminator),
``tenant``, ``ts`` (UTC event time) and ``schema_version``. Parse any of them with
:func:`parse_event`; events that the dataflow derives get deterministic ids from
:func:`derived_id` so that a replay produces the same ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from schemas import SCHEMA_VERSION
from schemas.agent import AgentSpec, Name
from schemas.kinds import FeedbackKind, SignalKind
from schemas.policy import PolicyDocument
from schemas.priors import PriorDocument

#: Namespace of the uuid5 ids of derived events.
DERIVED_NAMESPACE = uuid.UUID("6f1c2b1e-6a55-4d2e-9a43-0d4f1f3c8a11")

ContextValue = str | int | float | bool
Tenant = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
UserId = Annotated[str, Field(min_length=1, max_length=128)]


def derived_id(*parts: object) -> uuid.UUID:
    """Deterministic id of a derived event from the ids it derives from.

    >>> derived_id("reward", "d1") == derived_id("reward", "d1")
    True
    >>> derived_id("reward", "d1") == derived_id("reward", "d2")
    False
    """
    return uuid.uuid5(DERIVED_NAMESPACE, "/".join(str(p) for p in parts))


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    tenant: Tenant = "default"
    ts: AwareDatetime = Field(default_factory=utcnow)
    schema_version: int = SCHEMA_VERSION

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, v: datetime) -> datetime:
        return v.astimezone(UTC)


class Probe(BaseModel):
    """A trait probe: this decision used ``trait`` moved by ``delta``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trait: Name
    delta: Annotated[float, Field(ge=-1.0, le=1.0)]


class AgentUpserted(EventBase):
    """An agent was registered or its spec changed.

    ``prior``: the template's population prior the gateway started a new agent from (its
    version-0 policy is blended from it); the learner attaches it, so the agent's first
    rewards pick the archetype they point to. Absent when the template has no prior yet.
    """

    type: Literal["AgentUpserted"] = "AgentUpserted"
    agent_id: Name
    spec: AgentSpec
    prior: PriorDocument | None = None


class PriorAssigned(EventBase):
    """The population process hands a live agent of ``template`` the template's newer prior.

    Derived (id ``uuid5("prior", tenant, template, prior version, agent_id)``, so a replayed
    hand-off is a duplicate) and keyed by ``agent_id`` on the agents topic. The learner
    re-weighs the archetypes by the agent's own rewards so far and publishes a new version
    at once; an agent whose template changed in the meantime ignores it.
    """

    type: Literal["PriorAssigned"] = "PriorAssigned"
    agent_id: Name
    template: Name
    prior: PriorDocument


class DecisionMade(EventBase):
    type: Literal["DecisionMade"] = "DecisionMade"
    decision_id: uuid.UUID
    agent_id: Name
    user_id: UserId
    action: Name
    propensity: Annotated[float, Field(gt=0.0, le=1.0)]
    explored: bool
    policy_version: Annotated[int, Field(ge=0)]
    bucket: str
    context: dict[str, ContextValue] = Field(default_factory=dict)
    traits: dict[str, float] = Field(default_factory=dict)
    probe: Probe | None = None
    rules_version: int | None = None
    template: Name | None = None


class FeedbackGiven(EventBase):
    """Explicit feedback. ``rating`` is 1..5, every other kind is in [-1, 1]."""

    type: Literal["FeedbackGiven"] = "FeedbackGiven"
    decision_id: uuid.UUID | None = None
    agent_id: Name
    user_id: UserId
    kind: FeedbackKind
    value: float

    @model_validator(mode="after")
    def _value_range(self) -> FeedbackGiven:
        lo, hi = (1.0, 5.0) if self.kind == "rating" else (-1.0, 1.0)
        if not lo <= self.value <= hi:
            msg = f"value {self.value} out of range [{lo}, {hi}] for kind {self.kind!r}"
            raise ValueError(msg)
        return self


#: Allowed value range of each implicit signal kind.
SIGNAL_RANGES: dict[str, tuple[float, float]] = {
    "reply_latency_ms": (0.0, 86_400_000.0),
    "message_length": (0.0, 1_000_000.0),
    "sentiment": (-1.0, 1.0),
    "abandonment": (0.0, 1.0),
    "session_end": (0.0, 1.0),
    "reinvite": (0.0, 1.0),
    "reaction": (-1.0, 1.0),
}


class SignalObserved(EventBase):
    """An implicit signal; without ``decision_id`` it is credited by the dataflow."""

    type: Literal["SignalObserved"] = "SignalObserved"
    decision_id: uuid.UUID | None = None
    agent_id: Name
    user_id: UserId
    kind: SignalKind
    value: float = 1.0

    @model_validator(mode="after")
    def _value_range(self) -> SignalObserved:
        lo, hi = SIGNAL_RANGES[self.kind]
        if not lo <= self.value <= hi:
            msg = f"value {self.value} out of range [{lo}, {hi}] for kind {self.kind!r}"
            raise ValueError(msg)
        return self


class RewardComputed(EventBase):
    type: Literal["RewardComputed"] = "RewardComputed"
    decision_id: uuid.UUID
    agent_id: Name
    user_id: UserId
    action: Name
    bucket: str
    decision_ts: AwareDatetime
    reward: Annotated[float, Field(ge=-1.0, le=1.0)]
    components: dict[str, float]
    closed_by: Literal["feedback", "terminal", "timeout"]
    n_signals: int
    reward_model_version: str
    probe: Probe | None = None
    template: str | None = None


class PolicyUpdated(EventBase):
    type: Literal["PolicyUpdated"] = "PolicyUpdated"
    agent_id: Name
    version: int
    policy: PolicyDocument


class PolicyRollbackRequested(EventBase):
    """An admin asked to restore ``policy`` (an older version): the learner, the only writer
    of policy versions, publishes it as its next version."""

    type: Literal["PolicyRollbackRequested"] = "PolicyRollbackRequested"
    agent_id: Name
    target_version: Annotated[int, Field(ge=0)]
    policy: PolicyDocument


class PrivacyRequest(EventBase):
    type: Literal["PrivacyRequest"] = "PrivacyRequest"
    user_id: UserId
    agent_id: Name | None = None
    request: Literal["forget", "opt_out", "opt_in"] = "forget"


class DeadLetter(EventBase):
    type: Literal["DeadLetter"] = "DeadLetter"
    reason: str
    step: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    payload: str = ""


Event = Annotated[
    AgentUpserted
    | DecisionMade
    | FeedbackGiven
    | SignalObserved
    | RewardComputed
    | PolicyUpdated
    | PolicyRollbackRequested
    | PriorAssigned
    | PrivacyRequest
    | DeadLetter,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)  # type: ignore[arg-type]
EVENT_TYPES: tuple[type[EventBase], ...] = (
    AgentUpserted,
    DecisionMade,
    FeedbackGiven,
    SignalObserved,
    RewardComputed,
    PolicyUpdated,
    PolicyRollbackRequested,
    PriorAssigned,
    PrivacyRequest,
    DeadLetter,
)


def parse_event(raw: bytes | str) -> EventBase:
    """Parse and validate one JSON event; raises ``pydantic.ValidationError``.

    >>> e = parse_event(b'{"type": "SignalObserved", "agent_id": "a", "user_id": "u",'
    ...                 b' "kind": "sentiment", "value": 0.5, "ts": "2026-01-01T00:00:00Z"}')
    >>> type(e).__name__, e.ts.isoformat()
    ('SignalObserved', '2026-01-01T00:00:00+00:00')
    """
    return EVENT_ADAPTER.validate_json(raw)  # type: ignore[no-any-return]


def dump_event(event: BaseModel) -> bytes:
    """Serialize an event to compact JSON bytes."""
    return event.model_dump_json().encode()
