"""DecisionPlan (the cached hot path) against gateway.core.decide (the reference)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from gateway import core
from gateway.plan import DecisionPlan, iso_utc, uuid4_str
from gateway.rules import default_rules, parse_rules
from schemas.agent import AgentSpec
from schemas.events import dump_event, parse_event
from schemas.policy import BucketPolicy, PolicyDocument, ProbeConfig
from schemas.projections import ActionStats, History

ACTIONS = ["reply", "ask_question", "share_fact", "stay_quiet"]
TRAITS = ["humor", "warmth", "brevity", "exploration", "depth", "formality"]
RULES_SAMPLE = parse_rules("""
reply: {mode: sample, default_probability: 0.6}
contexts:
  - {key: room_size, op: ge, value: 5, text: "Big room.", caps: {max_tokens: 120}}
  - {key: slot, op: in, value: [morning, night], text: "Odd hour.", floors: {temperature: 0.5}}
  - {key: dm, op: eq, value: true, text: "Private."}
actions: {reply: "Reply now ({action})."}
models: {by_template: {companion: big-model}}
""")


def _spec(r: random.Random) -> AgentSpec:
    actions = r.sample(ACTIONS, r.randint(1, len(ACTIONS)))
    traits = {t: round(r.random(), 3) for t in r.sample(TRAITS, r.randint(0, 4))}
    return AgentSpec(persona={"name": "Ava", "description": r.choice(["", "A companion."])},
                     traits=traits, actions=actions,
                     context_keys=r.sample(["slot", "room_size", "dm"], r.randint(0, 2)),
                     template=r.choice([None, "companion"]), epsilon=r.random() * 0.3)


def _policy(r: random.Random, spec: AgentSpec) -> PolicyDocument:
    buckets = {}
    for b in r.sample(["*", "slot=morning", "slot=evening", "room_size=7", "slot=?"],
                      r.randint(0, 3)):
        vals = {a: r.choice([0.0, 0.5, r.random()]) for a in spec.actions if r.random() < 0.7}
        probs = None
        if r.random() < 0.3:
            probs = {a: r.random() for a in spec.actions if r.random() < 0.8}
        buckets[b] = BucketPolicy(values=vals, epsilon=r.choice([0.0, 0.1, r.random()]),
                                  probs=probs)
    probe_traits = r.sample(TRAITS, r.randint(0, 2))
    return PolicyDocument(
        agent_id="ava", version=r.randint(0, 9), epsilon=0.1, explore=r.random() < 0.85,
        traits={t: round(r.random(), 3) for t in r.sample(TRAITS, r.randint(0, 2))},
        trait_bounds={t: (0.1, 0.9) for t in probe_traits if r.random() < 0.5},
        buckets=buckets,
        reply_probability={"*": r.random()} if r.random() < 0.5 else {},
        probe=ProbeConfig(share=r.choice([0.0, 0.5, 1.0]), delta=r.choice([0.0, 0.1, 0.3]),
                          traits=probe_traits),
    )


def _context(r: random.Random) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    if r.random() < 0.8:
        ctx["slot"] = r.choice(["morning", "evening", "night"])
    if r.random() < 0.4:
        ctx["room_size"] = r.choice([2, 7, 5.0, 12.5, "big"])
    if r.random() < 0.3:
        ctx["dm"] = r.choice([True, False, 1, "yes"])
    if r.random() < 0.15:
        ctx["no_explore"] = r.choice([True, "true", 1, False])
    return ctx


def _history(r: random.Random) -> History | None:
    if r.random() < 0.5:
        return None
    stats = {a: ActionStats(count=r.randint(0, 6), success=r.randint(0, 3)) for a in ACTIONS}
    return History(per_action=stats, per_bucket={"slot=morning": dict(stats)})


def _reference(plan: DecisionPlan, rng: random.Random, user_id: str, ctx: dict[str, Any],
               ts: datetime | None, did: str) -> tuple[dict[str, Any], bytes]:
    ev, body = core.decide(
        tenant=plan.tenant, agent_id=plan.agent_id, spec=plan.spec, policy=plan.policy,
        rules=plan.rules, rules_version=plan.rules_version, user_id=user_id, context=ctx,
        ts=ts, rng=rng, decision_id=uuid.UUID(did), history=plan.history)
    return body, dump_event(ev)


@pytest.mark.parametrize("seed", range(40))
def test_plan_equals_reference(seed: int) -> None:
    r = random.Random(seed)
    spec = _spec(r)
    rules = r.choice([default_rules(), RULES_SAMPLE])
    plan = DecisionPlan("acme", "ava", spec, _policy(r, spec), rules, r.randint(0, 3),
                        _history(r))
    fast_rng, ref_rng = random.Random(seed), random.Random(seed)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    for i in range(60):  # repeats hit the plan's caches
        ctx = _context(r)
        ts = datetime(2026, 1, 1, 9, i % 60, i % 7, r.choice([0, 120000, 999999]),
                      tzinfo=r.choice(zones))
        did = uuid4_str(r.getrandbits(128))
        user = r.choice(["u1", "ü-ß \"quoted\" \\ \u2028 \x1f 🙂"])
        body, event, action, explored, eps = plan.decide(user_id=user, context=ctx, ts=ts,
                                                         rng=fast_rng, decision_id=did)
        ref_body, ref_event = _reference(plan, ref_rng, user, ctx, ts, did)
        assert body == ref_body
        assert orjson.dumps(body) == orjson.dumps(ref_body)
        assert event == ref_event
        assert (action, explored) == (ref_body["action"], ref_body["explored"])
        assert eps == core.epsilon_used(plan.policy, body["bucket"], core.may_explore(ctx))
    assert fast_rng.getstate() == ref_rng.getstate()


def test_event_without_ts_is_a_valid_decision_made() -> None:
    spec = AgentSpec(persona={"name": "Ava"}, actions=["a", "b"], context_keys=["slot"])
    plan = DecisionPlan("default", "ava", spec, PolicyDocument(agent_id="ava"),
                        default_rules(), 0, None)
    before = datetime.now(UTC)
    _, event, _, _, _ = plan.decide(user_id="u", context={"slot": "x"}, ts=None,
                                    rng=random.Random(1), decision_id=str(uuid.uuid4()))
    ev = parse_event(event)
    assert ev.type == "DecisionMade" and before <= ev.ts <= datetime.now(UTC)
    assert event == dump_event(ev)  # same bytes as the model would write


def test_ints_beyond_64_bits_take_the_model_path() -> None:
    spec = AgentSpec(persona={"name": "Ava"}, actions=["a"])
    plan = DecisionPlan("default", "ava", spec, PolicyDocument(agent_id="ava"),
                        default_rules(), 0, None)
    ctx = {"n": 10**30}
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    did = str(uuid.uuid4())
    _, event, _, _, _ = plan.decide(user_id="u", context=ctx, ts=ts, rng=random.Random(2),
                                    decision_id=did)
    _, ref = _reference(plan, random.Random(2), "u", ctx, ts, did)
    assert event == ref and b"1000000000000000000000000000000" in event


def test_invalid_fixed_fields_raise_like_the_model() -> None:
    spec = AgentSpec(persona={"name": "Ava"}, actions=["a"])
    plan = DecisionPlan("bad tenant!", "ava", spec, PolicyDocument(agent_id="ava"),
                        default_rules(), 0, None)
    with pytest.raises(ValidationError):
        plan.decide(user_id="u", context={}, ts=None, rng=random.Random(1),
                    decision_id=str(uuid.uuid4()))


def test_helpers() -> None:
    r = random.Random(5)
    for _ in range(200):
        bits = r.getrandbits(128)
        assert uuid4_str(bits) == str(uuid.UUID(int=bits, version=4))
    for d in (datetime(2026, 5, 1, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=3))),
              datetime(999, 1, 1, tzinfo=UTC)):
        assert orjson.dumps(iso_utc(d)) == parse_event(orjson.dumps({
            "type": "PrivacyRequest", "user_id": "u", "ts": d.isoformat()})).model_dump_json(
        ).encode().split(b'"ts":')[1].split(b",")[0]
