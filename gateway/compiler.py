"""The BehaviorCompiler: a pure function from (agent, policy, rules, context, action[, history])
to a system prompt, LLM parameters, a model and whether to reply at all.

No IO, no randomness of its own (a ``reply_draw`` in [0, 1) comes from the caller when the
rules ask for sampled replies), no ``eval``: the rules are data (:mod:`gateway.rules`).

>>> from schemas.agent import AgentSpec
>>> from schemas.policy import PolicyDocument
>>> from gateway.rules import default_rules
>>> spec = AgentSpec(persona={"name": "Ava"}, traits={"humor": 0.9, "brevity": 1.0},
...                  actions=["chat"])
>>> out = compile_prompt(spec, PolicyDocument(agent_id="a"), default_rules(), {}, "chat")
>>> print(out.system)
You are Ava.
Keep it short: a sentence or two.
Be witty; friendly jokes are welcome.
Next, do this: chat.
>>> out.params["max_tokens"], out.model, out.should_reply
(100, 'small-chat', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.rules import CompileRules, fill
from schemas.agent import AgentSpec
from schemas.buckets import GLOBAL_BUCKET
from schemas.policy import PolicyDocument
from schemas.projections import History


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    system: str
    params: dict[str, float | int]
    model: str
    should_reply: bool
    sections_used: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "params": self.params}


def effective_traits(spec: AgentSpec, policy: PolicyDocument) -> dict[str, float]:
    """The agent's declared traits overridden by the policy's learned ones."""
    if not policy.traits:
        return dict(spec.traits)
    return {**spec.traits, **policy.traits}


def bucket_label(bucket: str) -> str:
    """``slot=morning|day=mon`` -> ``morning, mon``; the global bucket reads ``overall``.

    >>> bucket_label("slot=morning|day=mon"), bucket_label("*")
    ('morning, mon', 'overall')
    """
    if bucket == GLOBAL_BUCKET:
        return "overall"
    return ", ".join(part.partition("=")[2] or part for part in bucket.split("|"))


def adaptation_lines(rules: CompileRules, bucket: str, history: History | None) -> list[str]:
    """Bounded lines like ``morning: deep_work ignored 3 of 3`` for this bucket."""
    ad = rules.adaptation
    if not ad.enabled or history is None or ad.max_lines == 0:
        return []
    stats = history.per_bucket.get(bucket)
    label = bucket_label(bucket)
    if not stats:
        stats, label = history.per_action, bucket_label(GLOBAL_BUCKET)
    ranked = sorted(
        ((a, s) for a, s in stats.items() if s.count >= ad.min_count),
        key=lambda item: (-item[1].count, item[0]),
    )
    lines: list[str] = []
    used = len(ad.header)
    for action, s in ranked[: ad.max_lines]:
        welcomed = s.success * 2 >= s.count
        line = fill(ad.line, {
            "bucket": label,
            "action": action,
            "verdict": ad.welcomed if welcomed else ad.ignored,
            "n": str(s.success if welcomed else s.count - s.success),
            "count": str(s.count),
        })
        if used + len(line) + 1 > ad.max_chars:
            break
        used += len(line) + 1
        lines.append(line)
    return lines


def _route_model(rules: CompileRules, template: str | None, traits: Mapping[str, float]) -> str:
    if template is not None and template in rules.models.by_template:
        return rules.models.by_template[template]
    for route in rules.models.by_trait:
        v = traits.get(route.trait)
        if v is not None and route.min <= v <= route.max:
            return route.model
    return rules.models.default


def compile_prompt(
    spec: AgentSpec,
    policy: PolicyDocument,
    rules: CompileRules,
    context: Mapping[str, Any],
    action: str,
    *,
    traits: Mapping[str, float] | None = None,
    bucket: str = GLOBAL_BUCKET,
    history: History | None = None,
    reply_draw: float | None = None,
) -> CompiledPrompt:
    """Compile one decision into prompt, params, model and should_reply (pure)."""
    tr = effective_traits(spec, policy) if traits is None else traits
    sections: list[str] = []
    lines: list[str] = []

    persona = " ".join(
        fill(rules.persona, {"name": spec.persona.name,
                             "description": spec.persona.description}).split()
    )
    if persona:
        lines.append(persona)
        sections.append("persona")

    for name in sorted(tr):
        text = rules.band_text(name, tr[name])
        if text:
            lines.append(text)
            sections.append(f"trait:{name}")

    if action in rules.actions:
        lines.append(fill(rules.actions[action], {"action": action}))
        sections.append(f"action:{action}")
    elif rules.default_action:
        lines.append(fill(rules.default_action, {"action": action}))
        sections.append("action:default")

    params: dict[str, float | int] = dict(rules.params.defaults)
    for m in rules.params.maps:
        if m.trait in tr:
            v = m.intercept + m.slope * tr[m.trait]
            if m.min is not None:
                v = max(m.min, v)
            if m.max is not None:
                v = min(m.max, v)
            params[m.param] = round(v) if m.round else round(v, 4)

    ctx = dict(context)
    for i, rule in enumerate(rules.contexts):
        if not rule.matches(ctx):
            continue
        if rule.text:
            lines.append(rule.text)
        for p, cap in rule.caps.items():
            params[p] = min(params[p], cap) if p in params else cap
        for p, floor in rule.floors.items():
            params[p] = max(params[p], floor) if p in params else floor
        sections.append(f"context:{i}:{rule.key}")

    for p in rules.params.integer:
        if p in params:
            params[p] = int(round(params[p]))

    adapt = adaptation_lines(rules, bucket, history)
    if adapt:
        lines.append(rules.adaptation.header)
        lines.extend(f"- {line}" for line in adapt)
        sections.append("adaptation")

    return CompiledPrompt(
        system="\n".join(lines),
        params=params,
        model=_route_model(rules, spec.template, tr),
        should_reply=should_reply(policy, rules, bucket, reply_draw),
        sections_used=sections,
    )


def matched_contexts(rules: CompileRules, context: Mapping[str, Any]) -> tuple[int, ...]:
    """Indexes of the context rules that apply to ``context``.

    The compiled prompt is a function of (traits, action, bucket, these indexes), which is
    what lets the gateway's hot path cache it (:mod:`gateway.plan`).
    """
    ctx = context if isinstance(context, dict) else dict(context)
    return tuple(i for i, rule in enumerate(rules.contexts) if rule.matches(ctx))


def should_reply(policy: PolicyDocument, rules: CompileRules, bucket: str,
                 reply_draw: float | None = None) -> bool:
    """Whether the agent should reply at all in ``bucket``.

    ``threshold`` mode: the bucket's reply probability is at least the threshold;
    ``sample`` mode (with a draw): the draw is below that probability.
    """
    rp = policy.reply_probability
    p_reply = rp.get(bucket, rp.get(GLOBAL_BUCKET, rules.reply.default_probability))
    if rules.reply.mode == "sample" and reply_draw is not None:
        return reply_draw < p_reply
    return p_reply >= rules.reply.threshold
