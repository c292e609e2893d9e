"""The input step's fast decoder for the three events that make up nearly all input.

``DecisionMade``, ``FeedbackGiven`` and ``SignalObserved`` arrive at every event/s the flow
takes; parsing them into pydantic models was about a seventh of the running flow's CPU
(``py-spy`` at 20k events/s, ``docs/pipeline-history.md``). :func:`decode` reads them with
msgspec into plain structs with the same fields, defaults and constraints (names and
lengths, ranges, kinds, an aware ``ts`` normalized to UTC), in about 0.6 of the time. It is a
fast path, not a second contract: whatever it does not accept, :mod:`dataflows.source` hands
to pydantic (``schemas.events``), which decides, and names the field when it rejects.
``tests/dataflows/test_decode.py`` checks that every message it accepts, pydantic accepts
with equal values, over generated valid and broken messages, and that its fields are the
models' fields.

The join reads these structs as it reads the models: the same attribute names, ``type`` as
a class attribute, and :meth:`FastEvent.model_dump_json` for the rare dead letter that
embeds the event (the model's JSON, byte for byte).

>>> ev = decode(b'{"event_id": "0b7e2a52-4a57-4bd9-8d6b-3f1c9f1f1a01", "type": "SignalObserved",'
...             b' "ts": "2026-12-06T13:00:00+01:00", "agent_id": "a1", "user_id": "u1",'
...             b' "kind": "sentiment", "value": 0.5}')
>>> ev.type, ev.ts.isoformat(), ev.decision_id
('SignalObserved', '2026-12-06T12:00:00+00:00', None)
>>> decode(b'{"event_id": "0b7e2a52-4a57-4bd9-8d6b-3f1c9f1f1a01", "type": "SignalObserved",'
...        b' "ts": "2026-12-06T12:00:00Z", "agent_id": "a1", "user_id": "u1",'
...        b' "kind": "sentiment", "value": 2.0}') is None   # out of range: pydantic says why
True
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from schemas import SCHEMA_VERSION
from schemas.events import EVENT_ADAPTER, SIGNAL_RANGES

# Names and tenants: the lengths here, the characters in ``__post_init__`` (``_checked``:
# a name is checked once, then remembered; a ``Meta`` pattern ran a regex on every event)
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Tenant = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_NAME = re.compile(r"[A-Za-z0-9_.:-]+").fullmatch  # schemas.agent.Name
_TENANT = re.compile(r"[A-Za-z0-9_.-]+").fullmatch  # schemas.events.Tenant
_NAMES: set[str] = set()
_TENANTS: set[str] = set()


def _checked(value: str, known: set[str], ok: Any) -> None:
    """Raise unless ``value`` matches ``ok`` (remembered once it did)."""
    if value not in known:
        if ok(value) is None:
            msg = f"{value!r} has characters a name cannot have"
            raise ValueError(msg)
        if len(known) >= 100_000:
            known.clear()
        known.add(value)


UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
#: RFC 3339 with an offset and at most microseconds, read by ``datetime.fromisoformat`` (msgspec's
#: own datetimes round finer fractions where pydantic truncates them: those go to pydantic)
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                 r"(Z|[+-][0-9]{2}:[0-9]{2})").fullmatch
FeedbackKindIn = Literal["thumbs", "rating", "accept", "ignore", "more_like_this",
                         "less_like_this"]
SignalKindIn = Literal["reply_latency_ms", "message_length", "sentiment", "abandonment",
                       "session_end", "reinvite", "reaction"]


class ProbeIn(msgspec.Struct, forbid_unknown_fields=True):
    """:class:`schemas.events.Probe`."""

    trait: Name
    delta: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)]

    def __post_init__(self) -> None:
        _checked(self.trait, _NAMES, _NAME)


class FastEvent(msgspec.Struct, forbid_unknown_fields=True, tag_field="type", kw_only=True):
    """:class:`schemas.events.EventBase`'s fields (``event_id`` and ``ts`` required here: a
    message without them goes to pydantic, which fills them in)."""

    type: ClassVar[str]
    event_id: uuid.UUID
    #: decoded as its text, a UTC ``datetime`` once the struct is built (:meth:`_check`)
    ts: str
    tenant: Tenant = "default"
    schema_version: int = SCHEMA_VERSION

    def _check(self, agent_id: str) -> None:
        """``ts`` to UTC, and the tenant's and agent's characters (the rest of
        ``__post_init__``: each type's own)."""
        if _TS(self.ts) is None:
            msg = f"ts {self.ts!r} is not RFC 3339 with an offset, to the microsecond"
            raise ValueError(msg)
        self.ts = datetime.fromisoformat(self.ts).astimezone(UTC)  # type: ignore[assignment]
        _checked(self.tenant, _TENANTS, _TENANT)
        _checked(agent_id, _NAMES, _NAME)

    def model_dump_json(self) -> str:
        """The event as its pydantic model serializes it (for a dead letter's payload)."""
        return str(EVENT_ADAPTER.validate_python(msgspec.to_builtins(self)).model_dump_json())


class DecisionIn(FastEvent, tag="DecisionMade", kw_only=True):
    """:class:`schemas.events.DecisionMade`."""

    type: ClassVar[str] = "DecisionMade"
    decision_id: uuid.UUID
    agent_id: Name
    user_id: UserId
    action: Name
    propensity: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
    explored: bool
    policy_version: Annotated[int, msgspec.Meta(ge=0)]
    bucket: str
    context: dict[str, str | int | float | bool] = {}
    traits: dict[str, float] = {}
    probe: ProbeIn | None = None
    rules_version: int | None = None
    template: Name | None = None

    def __post_init__(self) -> None:
        self._check(self.agent_id)
        _checked(self.action, _NAMES, _NAME)
        if self.template is not None:
            _checked(self.template, _NAMES, _NAME)


class _Credited(FastEvent, kw_only=True):
    """What feedback and signals share: the decision they may name, agent and user, a kind
    and a value in the kind's range (:meth:`_range`)."""

    decision_id: uuid.UUID | None = None
    agent_id: Name
    user_id: UserId
    kind: str
    value: float

    def __post_init__(self) -> None:
        self._check(self.agent_id)
        lo, hi = self._range()
        if not lo <= self.value <= hi:
            msg = f"value {self.value} out of range [{lo}, {hi}]"
            raise ValueError(msg)

    def _range(self) -> tuple[float, float]:
        raise NotImplementedError


class FeedbackIn(_Credited, tag="FeedbackGiven", kw_only=True):
    """:class:`schemas.events.FeedbackGiven` (``rating`` 1..5, every other kind -1..1)."""

    type: ClassVar[str] = "FeedbackGiven"
    kind: FeedbackKindIn

    def _range(self) -> tuple[float, float]:
        return (1.0, 5.0) if self.kind == "rating" else (-1.0, 1.0)


class SignalIn(_Credited, tag="SignalObserved", kw_only=True):
    """:class:`schemas.events.SignalObserved` (each kind's range: ``SIGNAL_RANGES``)."""

    type: ClassVar[str] = "SignalObserved"
    kind: SignalKindIn
    value: float = 1.0

    def _range(self) -> tuple[float, float]:
        return SIGNAL_RANGES[self.kind]


FAST_TYPES: tuple[type[FastEvent], ...] = (DecisionIn, FeedbackIn, SignalIn)
_DECODER = msgspec.json.Decoder(DecisionIn | FeedbackIn | SignalIn)


def decode(raw: Any) -> FastEvent | None:
    """One of the three hot events from its JSON, or None: anything else (another type,
    a message with a field missing, out of range, of another form) is pydantic's to decide.
    """
    try:
        return _DECODER.decode(raw)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, ValueError, TypeError):  # ValidationError is a ValueError
        return None
