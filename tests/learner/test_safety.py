"""Safety rules hold for every published policy, whatever the feedback stream."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflows.learner import LEARNERS, make_learner
from gateway.core import apply_probe, decide
from gateway.rules import default_rules
from schemas.agent import AgentSpec
from schemas.policy import PolicyDocument, SafetyRules

TRAITS = ["humor", "warmth", "formality"]
ACTIONS = ["a", "b", "c"]
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def setups(draw):
    traits, bounds = {}, {}
    for t in TRAITS:
        lo, hi = sorted((draw(unit), draw(unit)))
        bounds[t] = (lo, hi)
        traits[t] = draw(st.floats(lo, hi))
    spec = AgentSpec(persona={"name": "x"}, actions=ACTIONS, context_keys=["k"],
                     traits=traits, trait_bounds=bounds, template="tpl",
                     explore=draw(st.booleans()), algorithm=draw(st.sampled_from(sorted(LEARNERS))),
                     probe_share=draw(st.none() | unit), epsilon=draw(unit))
    rule_traits = {t: {"floor": f, "ceiling": c} for t in TRAITS
                   if draw(st.booleans()) for f, c in [sorted((draw(unit), draw(unit)))]}
    rules = SafetyRules.model_validate({
        "default": {"max_step": draw(st.floats(0.01, 0.2)),
                    "probe_share_max": draw(unit)},
        "templates": {"tpl": {"traits": rule_traits, "explore": draw(st.none() | st.booleans())}},
    })
    stream = draw(st.lists(st.tuples(
        st.sampled_from(["k=1", "k=2"]), st.sampled_from(ACTIONS),
        st.floats(-1, 1), st.none() | st.tuples(st.sampled_from(TRAITS), st.sampled_from([-1, 1])),
    ), max_size=150))
    return spec, rules, stream


@given(setups())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rules_always_hold(setup):
    spec, rules, stream = setup
    lrn = make_learner("ag", "acme", spec, safety=rules, probe_min_count=3, probe_z=0.5)
    resolved = rules.resolve("acme", "tpl")
    limits = {t: resolved.limits(t, spec.bounds_for(t)) for t in TRAITS}
    explore = spec.explore and resolved.explore
    prev = None
    docs = [lrn.policy_dict()]
    for i, (bucket, action, r, probe) in enumerate(stream):
        pr = (probe[0], probe[1] * 0.1) if probe else None
        lrn.update(bucket, action, r, float(i), probe=pr)
        raw = lrn.maybe_publish()
        if raw is not None:
            docs.append(raw)
    rng = random.Random(0)
    for raw in docs:
        doc = PolicyDocument.model_validate(raw)
        for t, v in doc.traits.items():
            lo, hi = limits[t]
            assert lo - 1e-9 <= v <= hi + 1e-9, (t, v, limits[t])
            assert tuple(doc.trait_bounds[t]) == limits[t]
        assert doc.probe.share <= resolved.probe_share_max + 1e-12
        if prev is not None:  # at most one bounded step per version
            for t in TRAITS:
                assert abs(doc.traits[t] - prev.traits[t]) <= resolved.max_step + 1e-9
        # the spec's own values are clamped into the rules, and the clamp is on record
        if prev is None and any(not limits[t][0] <= spec.traits[t] <= limits[t][1]
                                for t in TRAITS):
            assert doc.clamps
        assert doc.explore == explore
        for bucket in ("k=1", "k=2", "k=3"):
            probs = doc.action_probabilities(bucket, ACTIONS)
            assert abs(sum(probs.values()) - 1) < 1e-9
            no_ctx = doc.action_probabilities(bucket, ACTIONS, explore=False)
            assert max(no_ctx.values()) == 1.0  # a no_explore context never explores
            if not explore:
                assert doc.probe.share == 0.0
                assert max(probs.values()) == 1.0
        # what the gateway does with it stays inside the limits, probes included
        for _ in range(5):
            traits, probe = apply_probe(spec, doc, {**spec.traits, **doc.traits}, rng)
            if not explore:
                assert probe is None
            for t, v in traits.items():
                assert limits[t][0] - 1e-9 <= v <= limits[t][1] + 1e-9
        prev = doc


def test_no_explore_context_at_the_gateway():
    import uuid

    spec = AgentSpec(persona={"name": "x"}, actions=ACTIONS, traits={"humor": 0.5})
    doc = PolicyDocument(agent_id="a", buckets={"*": {"values": {"b": 0.5},
                                                      "probs": {"a": 0.4, "b": 0.2, "c": 0.4}}},
                         probe={"share": 1.0, "delta": 0.1, "traits": ["humor"]})
    for i in range(50):
        ev, body = decide(tenant="t", agent_id="a", spec=spec, policy=doc,
                          rules=default_rules(), rules_version=0, user_id="u",
                          context={"no_explore": True}, ts=None, rng=random.Random(i),
                          decision_id=uuid.UUID(int=i + 1))
        assert ev.action == "b" and ev.propensity == 1.0 and ev.probe is None


def test_clamps_are_counted():
    from dataflows.metrics import flow_metrics

    rules = SafetyRules.model_validate(
        {"templates": {"tpl": {"traits": {"humor": {"ceiling": 0.3}}}}})
    spec = AgentSpec(persona={"name": "x"}, actions=ACTIONS, traits={"humor": 0.9},
                     template="tpl")
    before = flow_metrics().policy_clamps._value.get()
    lrn = make_learner("ag", "acme", spec, safety=rules)
    lrn.update("*", "a", 1.0, 0.0)
    doc = lrn.maybe_publish()
    assert doc["traits"]["humor"] == 0.3 and doc["clamps"]
    assert "humor" in doc["clamps"][0]
    assert flow_metrics().policy_clamps._value.get() == before + 1
