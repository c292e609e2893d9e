"""The decision core: pure functions from (spec, policy, rules, request, rng) to a decision.

>>> import random, uuid
>>> from schemas.agent import AgentSpec
>>> from schemas.policy import PolicyDocument, BucketPolicy
>>> spec = AgentSpec(persona={"name": "Ava"}, actions=["a", "b"], context_keys=["slot"])
>>> pol = PolicyDocument(agent_id="x", epsilon=0.0,
...                      buckets={"slot=am": BucketPolicy(values={"b": 1.0}, epsilon=0.0)})
>>> from gateway.rules import default_rules
>>> ev, body = decide(tenant="t", agent_id="x", spec=spec, policy=pol, rules=default_rules(),
...     rules_version=0, user_id="u", context={"slot": "am"}, ts=None, rng=random.Random(1),
...     decision_id=uuid.UUID(int=1))
>>> body["action"], body["propensity"], body["explored"], body["bucket"], ev.tenant
('b', 1.0, False, 'slot=am', 't')
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.compiler import compile_prompt, effective_traits
from gateway.rules import CompileRules
from schemas.agent import AgentSpec
from schemas.buckets import context_bucket
from schemas.events import DecisionMade, Probe, utcnow
from schemas.policy import PolicyDocument
from schemas.projections import History


def trait_bounds(spec: AgentSpec, policy: PolicyDocument, trait: str) -> tuple[float, float]:
    if trait in policy.trait_bounds:
        lo, hi = policy.trait_bounds[trait]
        return float(lo), float(hi)
    return spec.bounds_for(trait)


def apply_probe(
    spec: AgentSpec, policy: PolicyDocument, traits: dict[str, float], rng: random.Random
) -> tuple[dict[str, float], Probe | None]:
    """With probability ``policy.probe.share`` move one probe trait by +/-delta in bounds.

    The logged delta is the move actually applied (smaller when a bound clips it); a trait
    at a bound is moved the other way.
    """
    cfg = policy.probe
    if cfg.share <= 0.0 or not cfg.traits or cfg.delta <= 0.0 or rng.random() >= cfg.share:
        return traits, None
    trait = cfg.traits[rng.randrange(len(cfg.traits))]
    lo, hi = trait_bounds(spec, policy, trait)
    base = traits.get(trait, (lo + hi) / 2)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    new = min(hi, max(lo, base + sign * cfg.delta))
    if new == base:
        new = min(hi, max(lo, base - sign * cfg.delta))
    if new == base:
        return traits, None
    moved = dict(traits)
    moved[trait] = min(hi, max(lo, round(new, 6)))  # clamp after rounding: stay in bounds
    return moved, Probe(trait=trait, delta=round(moved[trait] - base, 6))


#: A context key that forbids exploration and trait probes for that decision.
NO_EXPLORE_KEY = "no_explore"


def may_explore(context: Mapping[str, object]) -> bool:
    """False when the context forbids exploring (``no_explore`` true, ``"true"`` or 1).

    >>> may_explore({}), may_explore({"no_explore": True}), may_explore({"no_explore": "true"})
    (True, False, False)
    """
    v = context.get(NO_EXPLORE_KEY)
    return not (v is True or v == 1 or (isinstance(v, str) and v.lower() in ("true", "1", "yes")))


def decide(
    *,
    tenant: str,
    agent_id: str,
    spec: AgentSpec,
    policy: PolicyDocument,
    rules: CompileRules,
    rules_version: int,
    user_id: str,
    context: Mapping[str, str | int | float | bool],
    ts: datetime | None,
    rng: random.Random,
    decision_id: uuid.UUID,
    history: History | None = None,
) -> tuple[DecisionMade, dict[str, Any]]:
    """Choose, probe, compile; return the ``DecisionMade`` event and the response body."""
    bucket = context_bucket(context, spec.context_keys)
    explore = may_explore(context)
    action, propensity, explored = policy.choose(bucket, spec.actions, rng, explore=explore,
                                                 context=context)
    traits = effective_traits(spec, policy)
    probe = None
    if explore:
        traits, probe = apply_probe(spec, policy, traits, rng)
    compiled = compile_prompt(
        spec, policy, rules, context, action, traits=traits, bucket=bucket, history=history,
        reply_draw=rng.random() if rules.reply.mode == "sample" else None,
    )
    event = DecisionMade(
        event_id=decision_id,
        decision_id=decision_id,
        tenant=tenant,
        ts=ts or utcnow(),
        agent_id=agent_id,
        user_id=user_id,
        action=action,
        propensity=propensity,
        explored=explored,
        policy_version=policy.version,
        bucket=bucket,
        context=dict(context),
        traits=traits,
        probe=probe,
        rules_version=rules_version,
        template=spec.template,
    )
    body = {
        "decision_id": str(decision_id),
        "action": action,
        "propensity": propensity,
        "explored": explored,
        "policy_version": policy.version,
        "traits": traits,
        "probe": {"trait": probe.trait, "delta": probe.delta} if probe else None,
        "prompt": {"system": compiled.system, "params": compiled.params},
        "model": compiled.model,
        "should_reply": compiled.should_reply,
        "bucket": bucket,
        "rules_version": rules_version,
        "sections_used": compiled.sections_used,
    }
    return event, body


def epsilon_used(policy: PolicyDocument, bucket: str, explore: bool = True) -> float:
    return policy.bucket_policy(bucket).epsilon if policy.explore and explore else 0.0
