"""dataflows.decode is a fast path, never a second contract: every message it accepts, the
pydantic models of schemas.events accept too, with equal values."""

from __future__ import annotations

import json
import pickle
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dataflows.decode import FAST_TYPES, DecisionIn, FeedbackIn, ProbeIn, SignalIn, decode
from dataflows.source import Parsed
from schemas.events import (
    EVENT_ADAPTER,
    DecisionMade,
    FeedbackGiven,
    Probe,
    SignalObserved,
)
from schemas.kinds import FEEDBACK_KINDS, SIGNAL_KINDS

PAIRS = [(DecisionIn, DecisionMade), (FeedbackIn, FeedbackGiven), (SignalIn, SignalObserved)]

DECISION = {"event_id": "0b7e2a52-4a57-4bd9-8d6b-3f1c9f1f1a01", "tenant": "t1",
            "ts": "2026-12-06T12:00:00.123456+00:00", "schema_version": 1,
            "type": "DecisionMade", "decision_id": "1027c4d1-c386-4bc4-8d61-3e30d8f16adf",
            "agent_id": "ag-1", "user_id": "u1", "action": "tell_joke", "propensity": 0.25,
            "explored": False, "policy_version": 3, "bucket": "slot=1",
            "context": {"room": "dm", "n": 2, "x": 0.5, "ok": True}, "traits": {"humor": 0.8},
            "probe": {"trait": "humor", "delta": -0.1}, "rules_version": 2, "template": "tpl"}
FEEDBACK = {"event_id": "37730edf-afbd-47f9-a196-99cfe1988ad9", "ts": "2026-12-06T12:00:01Z",
            "type": "FeedbackGiven", "decision_id": "1027c4d1-c386-4bc4-8d61-3e30d8f16adf",
            "agent_id": "ag-1", "user_id": "u1", "kind": "rating", "value": 4}
SIGNAL = {"event_id": "966baea1-48be-4b13-8da9-8f1d3099fdf5", "ts": "2026-12-06T13:00:02+01:00",
          "type": "SignalObserved", "agent_id": "ag-1", "user_id": "u1",
          "kind": "reply_latency_ms", "value": 1800}
TEMPLATES = [DECISION, FEEDBACK, SIGNAL]

_MISSING = object()
#: values a field is set to, one at a time: every form a client might send, valid or not
ODD: list[Any] = [
    _MISSING, None, "", "x" * 65, "x" * 129, "a\n", "a b", "A-b.c:d_9", "ünï", "1", "0.5",
    "true", 0, 1, -1, 2, 5, 6, 0.0, 0.5, -0.5, 1.0, 1.5, -1.0, -1.5, 1e300, 10**20, True,
    False, [], {}, {"k": "v"}, {"k": [1]}, {"k": None}, {"trait": "humor", "delta": 0.5},
    {"trait": "humor", "delta": 2}, {"trait": "humor"}, "thumbs", "rating", "sentiment",
    "session_end", "nope",
    "0B7E2A52-4A57-4BD9-8D6B-3F1C9F1F1A01", "0b7e2a524a574bd98d6b3f1c9f1f1a01",
    "{0b7e2a52-4a57-4bd9-8d6b-3f1c9f1f1a01}", "urn:uuid:0b7e2a52-4a57-4bd9-8d6b-3f1c9f1f1a01",
    "2026-12-06T12:00:00Z", "2026-12-06T12:00:00+05:30", "2026-12-06T12:00:00",
    "2026-12-06 12:00:00Z", "2026-12-06t12:00:00z", "2026-12-06T12:00:00.1234567Z",
    "2026-12-06T12:00:00.123456789+00:00", "2026-12-06T12:00Z", "2026-12-06",
    "2026-12-06T24:00:00Z", "2026-12-06T12:00:60Z", "2026-12-06T12:00:00-00:00",
    1765022400, 1765022400.5,
]


def _mutations(base: dict[str, Any]) -> list[dict[str, Any]]:
    out = [dict(base)]
    for key in [*base, "extra"]:
        for v in ODD:
            m = dict(base)
            if v is _MISSING:
                m.pop(key, None)
            else:
                m[key] = v
            out.append(m)
    return out


def _verdicts(raw: bytes) -> tuple[Any, Any]:
    fast = decode(raw)
    try:
        slow = EVENT_ADAPTER.validate_json(raw)
    except ValidationError:
        slow = None
    return fast, slow


def _same(fast: Any, slow: Any) -> None:
    assert fast.type == slow.type
    for name in type(slow).model_fields:
        if name == "type":
            continue
        a, b = getattr(fast, name), getattr(slow, name)
        if isinstance(b, Probe):
            assert (a.trait, a.delta) == (b.trait, b.delta)
        else:
            assert a == b and type(a) is type(b), (name, a, b)
            if isinstance(b, dict):  # int stays int, bool stays bool
                assert [type(x) for x in a.values()] == [type(x) for x in b.values()]
    assert fast.ts.utcoffset() == slow.ts.utcoffset()
    assert fast.model_dump_json() == slow.model_dump_json()


def test_the_structs_have_the_models_fields_and_defaults():
    for struct, model in PAIRS:
        fields = {f.name: f for f in msgspec.structs.fields(struct)}
        assert set(fields) | {"type"} == set(model.model_fields)
        for name, f in fields.items():
            info = model.model_fields[name]
            if name in ("event_id", "ts"):  # pydantic fills them in: a message without them
                assert f.required  # goes to pydantic
            elif info.is_required():
                assert f.required, name
            elif info.default_factory is not None:
                assert f.default_factory() == info.default_factory(), name  # type: ignore[call-arg]
            else:
                assert f.default == info.default, name
    assert {f.name for f in msgspec.structs.fields(ProbeIn)} == set(Probe.model_fields)
    # the structs' own kinds (not the models'): the vocabularies of schemas.kinds
    kinds = {s: {f.name: f.type for f in msgspec.structs.fields(s)}["kind"].__args__
             for s in (FeedbackIn, SignalIn)}
    assert kinds[FeedbackIn] == FEEDBACK_KINDS and kinds[SignalIn] == SIGNAL_KINDS
    assert set(FAST_TYPES) == {s for s, _ in PAIRS}


@pytest.mark.parametrize("base", TEMPLATES, ids=lambda b: b["type"])
def test_every_single_field_change_is_accepted_only_as_pydantic_accepts_it(base):
    accepted = rejected_to_pydantic = 0
    for m in _mutations(base):
        raw = json.dumps(m).encode()
        fast, slow = _verdicts(raw)
        if fast is None:
            rejected_to_pydantic += slow is not None
            continue
        assert slow is not None, raw
        _same(fast, slow)
        accepted += 1
    assert decode(json.dumps(base).encode()) is not None  # the template itself
    assert accepted > 50  # not vacuous: the valid forms take the fast path
    # the forms only pydantic's lax mode takes ("1" for a float, 1 for a bool...) go there
    assert rejected_to_pydantic > 0


def test_json_the_encoder_does_not_write():
    # NaN / Infinity tokens, duplicate keys, a newline after a name
    base = json.dumps(DECISION)[:-1]
    for extra in (', "traits": {"humor": NaN}', ', "traits": {"humor": Infinity}',
                  ', "propensity": 0.5, "propensity": 0.75', ', "agent_id": "a\\n"',
                  ', "policy_version": 1e2', ', "policy_version": 100000000000000000000000'):
        raw = (base + extra + "}").encode()
        fast, slow = _verdicts(raw)
        if fast is not None:
            assert slow is not None, raw
            _same(fast, slow)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TEMPLATES), st.lists(
    st.tuples(st.sampled_from(sorted({k for t in TEMPLATES for k in t} | {"extra"})),
              st.sampled_from(range(len(ODD)))), max_size=4))
def test_several_changes_at_once(base, changes):
    m = dict(base)
    for key, i in changes:
        if ODD[i] is _MISSING:
            m.pop(key, None)
        else:
            m[key] = ODD[i]
    fast, slow = _verdicts(json.dumps(m).encode())
    if fast is not None:
        assert slow is not None
        _same(fast, slow)


def test_other_event_types_go_to_pydantic():
    upsert = {"event_id": str(uuid.uuid4()), "ts": "2026-12-06T12:00:00Z",
              "type": "AgentUpserted", "agent_id": "a1", "spec": {"persona": {"name": "x"}}}
    assert decode(json.dumps(upsert).encode()) is None
    assert decode(b"not json") is None and decode(b"[]") is None


def test_a_parsed_item_pickles_as_its_json_and_decodes_again():
    raw = json.dumps(SIGNAL).encode()
    item = Parsed(("t1:ag-1", decode(raw), ("rf.signals", 0, 7, None), raw))
    back = pickle.loads(pickle.dumps(item))  # noqa: S301 - our own item
    assert type(back[1]) is SignalIn and back[1] == item[1] and back[3] == raw
