"""Golden tests of the BehaviorCompiler: (policy, context) -> exact prompt and params."""

from __future__ import annotations

import pytest

from gateway.compiler import compile_prompt
from gateway.rules import default_rules, parse_rules
from schemas.agent import AgentSpec
from schemas.policy import PolicyDocument
from schemas.projections import ActionStats, History

SPEC = AgentSpec(persona={"name": "Ava", "description": "A companion."},
                 traits={"humor": 0.5}, actions=["reply", "deep_work", "walk"],
                 context_keys=["slot"])

GOLDEN = [
    # (policy traits, context, action, expected system, expected params, model)
    ({"humor": 0.1, "brevity": 0.0}, {}, "reply",
     "You are Ava. A companion.\nTake the room to explain in detail.\n"
     "Avoid jokes; keep a straight, sincere tone.\nNext, do this: reply.",
     {"temperature": 0.7, "max_tokens": 800, "top_p": 1.0}, "small-chat"),
    ({"humor": 0.8, "brevity": 1.0, "exploration": 1.0}, {"room_size": 7}, "walk",
     "You are Ava. A companion.\nKeep it short: a sentence or two.\n"
     "Be witty; friendly jokes are welcome.\nNext, do this: walk.\n"
     "Several people are in the room: keep replies short and do not dominate.",
     {"temperature": 1.1, "max_tokens": 100, "top_p": 1.0}, "small-chat"),
    ({"humor": 0.5, "brevity": 0.5, "exploration": 0.0, "depth": 0.9},
     {"room_size": 20, "dm": True}, "reply",
     "You are Ava. A companion.\nLight humor is fine when it fits.\nNext, do this: reply.\n"
     "Several people are in the room: keep replies short and do not dominate.\n"
     "This is a private conversation.",
     {"temperature": 0.2, "max_tokens": 150, "top_p": 1.0}, "large-chat"),
    ({"warmth": 0.9, "formality": 0.5}, {"room_size": 4, "dm": "yes"}, "deep_work",
     "You are Ava. A companion.\nLight humor is fine when it fits.\n"
     "Be warm and encouraging.\nNext, do this: deep_work.",
     {"temperature": 0.7, "max_tokens": 400, "top_p": 1.0}, "small-chat"),
]


@pytest.mark.parametrize(("traits", "context", "action", "system", "params", "model"), GOLDEN)
def test_golden(traits, context, action, system, params, model) -> None:
    policy = PolicyDocument(agent_id="ava", traits=traits)
    out = compile_prompt(SPEC, policy, default_rules(), context, action)
    assert out.system == system
    assert out.params == params
    assert out.model == model
    assert out.should_reply is True


def test_should_reply_threshold_and_sample() -> None:
    policy = PolicyDocument(agent_id="ava", reply_probability={"slot=night": 0.3, "*": 0.9})
    rules = default_rules()
    assert not compile_prompt(SPEC, policy, rules, {}, "reply", bucket="slot=night").should_reply
    assert compile_prompt(SPEC, policy, rules, {}, "reply", bucket="slot=day").should_reply
    sample = parse_rules("reply: {mode: sample}")
    assert compile_prompt(SPEC, policy, sample, {}, "reply", bucket="slot=night",
                          reply_draw=0.29).should_reply
    assert not compile_prompt(SPEC, policy, sample, {}, "reply", bucket="slot=night",
                              reply_draw=0.31).should_reply


def test_template_routing_and_action_instructions() -> None:
    rules = parse_rules("""
actions: {walk: "Suggest a short walk outside."}
models: {default: m0, by_template: {coach: m1}, by_trait: [{trait: humor, min: 0.4, model: m2}]}
""")
    spec = SPEC.model_copy(update={"template": "coach"})
    out = compile_prompt(spec, PolicyDocument(agent_id="a"), rules, {}, "walk")
    assert out.model == "m1" and out.system.endswith("Suggest a short walk outside.")
    assert "action:walk" in out.sections_used
    assert compile_prompt(SPEC, PolicyDocument(agent_id="a"), rules, {}, "x").model == "m2"


def test_adaptation_section_is_bounded() -> None:
    hist = History(per_bucket={"slot=morning": {
        "deep_work": ActionStats(count=3, success=0), "walk": ActionStats(count=4, success=3),
        "reply": ActionStats(count=1, success=1), "x": ActionStats(count=2, success=1),
        "y": ActionStats(count=2, success=0)}})
    out = compile_prompt(SPEC, PolicyDocument(agent_id="a"), default_rules(), {}, "walk",
                         bucket="slot=morning", history=hist)
    tail = out.system.split("What worked with people here before:\n")[1]
    assert tail == ("- morning: walk welcomed 3 of 4\n- morning: deep_work ignored 3 of 3\n"
                    "- morning: x welcomed 1 of 2")
    assert "adaptation" in out.sections_used
    tight = parse_rules("adaptation: {max_chars: 70, max_lines: 5}")
    out = compile_prompt(SPEC, PolicyDocument(agent_id="a"), tight, {}, "walk",
                         bucket="slot=morning", history=hist)
    assert out.system.count("\n- ") == 1


def test_rules_are_data_not_code() -> None:
    rules = parse_rules('persona: "{name.__class__} {__import__} {name}"')
    out = compile_prompt(SPEC, PolicyDocument(agent_id="a"), rules, {}, "reply")
    assert out.system.startswith("{name.__class__} {__import__} Ava")
