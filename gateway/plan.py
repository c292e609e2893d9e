"""Decision plans: :func:`gateway.core.decide` with its per-agent work done once.

A :class:`DecisionPlan` belongs to one (agent view, compile rules) pair, i.e. to fixed spec,
policy, history and rules, and caches what only depends on those:

* the action distribution of each (bucket, may-explore) pair and the epsilon it used (with
  linear scoring, only for contexts without any of the features: the others are scored per
  decision);
* the compiled prompt of each (action, bucket, matching context rules) when no trait probe
  moved the traits (with a probe the prompt is compiled per decision, as before);
* whether the fixed fields of ``DecisionMade`` validate, so the event can be written as JSON
  straight from a dict (orjson) instead of building and dumping the pydantic model.

:meth:`DecisionPlan.decide` draws from the rng in the same order as :func:`gateway.core.decide`
(choice, probe, reply draw), so with equal seeds both return the same decision, body and event
bytes; ``tests/gateway/test_plan.py`` checks that on random policies, contexts and rules.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from gateway.compiler import (
    CompiledPrompt,
    compile_prompt,
    effective_traits,
    matched_contexts,
    should_reply,
)
from gateway.core import apply_probe, may_explore
from gateway.rules import CompileRules
from schemas import SCHEMA_VERSION
from schemas.agent import AgentSpec
from schemas.buckets import context_bucket
from schemas.events import DecisionMade, Probe, dump_event
from schemas.policy import PolicyDocument, draw
from schemas.projections import History

#: Cached buckets/prompts per plan; past this many the cache starts over (contexts with
#: unbounded values, e.g. a timestamp among the context keys, must not grow memory).
MAX_CACHED = 4096

_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_V4 = (0x8000 << 48) | (4 << 76)


def uuid4_str(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` without building the UUID.

    >>> b = 0x1234567890ABCDEF1234567890ABCDEF
    >>> uuid4_str(b) == str(uuid.UUID(int=b, version=4))
    True
    """
    h = "%032x" % ((bits & _UUID_CLEAR) | _UUID_V4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iso_utc(ts: datetime) -> str:
    """``ts`` in UTC as pydantic writes an aware datetime (``...Z``).

    >>> iso_utc(datetime(2026, 1, 1, 9, 30, tzinfo=UTC))
    '2026-01-01T09:30:00Z'
    """
    return ts.astimezone(UTC).isoformat()[:-6] + "Z"


class _Choice:
    """The action distribution of one (bucket, may-explore) pair."""

    __slots__ = ("actions", "epsilon", "probs", "top")

    def __init__(self, policy: PolicyDocument, bucket: str, actions: list[str],
                 explore: bool) -> None:
        self.probs = policy.action_probabilities(bucket, actions, explore)
        self.actions = actions
        self.top = max(self.probs.values())
        self.epsilon = (policy.bucket_policy(bucket).epsilon
                        if policy.explore and explore else 0.0)

    def draw(self, rng: random.Random) -> tuple[str, float, bool]:
        """:func:`schemas.policy.draw` over the cached distribution."""
        return draw(self.probs, self.actions, rng, self.top)


class DecisionPlan:
    """Everything about one agent's decisions that does not depend on the request."""

    __slots__ = ("agent_id", "base_traits", "features", "history", "policy", "rules",
                 "rules_version", "sample_reply", "spec", "tenant", "_choices", "_compiled",
                 "_fast_event")

    def __init__(self, tenant: str, agent_id: str, spec: AgentSpec, policy: PolicyDocument,
                 rules: CompileRules, rules_version: int, history: History | None) -> None:
        self.tenant = tenant
        self.agent_id = agent_id
        self.spec = spec
        self.policy = policy
        self.rules = rules
        self.rules_version = rules_version
        self.history = history
        self.base_traits = effective_traits(spec, policy)
        self.sample_reply = rules.reply.mode == "sample"
        self.features = tuple(policy.linear.features) if policy.linear is not None else ()
        self._choices: dict[tuple[str, bool], _Choice] = {}
        self._compiled: dict[tuple[str, str, tuple[int, ...]], CompiledPrompt] = {}
        self._fast_event = self._fixed_fields_valid()

    def _fixed_fields_valid(self) -> bool:
        """Whether the request-independent fields of ``DecisionMade`` validate (else every
        event goes through the model, which raises exactly as before)."""
        try:
            DecisionMade(
                decision_id=uuid.UUID(int=0), tenant=self.tenant, agent_id=self.agent_id,
                user_id="u", action=self.spec.actions[0], propensity=1.0, explored=False,
                policy_version=self.policy.version, bucket="*", traits=self.base_traits,
                rules_version=self.rules_version, template=self.spec.template,
            )
        except ValidationError:
            return False
        return True

    def _choice(self, bucket: str, explore: bool) -> _Choice:
        key = (bucket, explore)
        c = self._choices.get(key)
        if c is None:
            if len(self._choices) >= MAX_CACHED:
                self._choices.clear()
            c = self._choices[key] = _Choice(self.policy, bucket, self.spec.actions, explore)
        return c

    def _compile(self, action: str, bucket: str, context: Mapping[str, Any]) -> CompiledPrompt:
        """The prompt for the base traits (no probe); the reply decision is not used."""
        key = (action, bucket, matched_contexts(self.rules, context))
        out = self._compiled.get(key)
        if out is None:
            if len(self._compiled) >= MAX_CACHED:
                self._compiled.clear()
            out = self._compiled[key] = compile_prompt(
                self.spec, self.policy, self.rules, context, action, traits=self.base_traits,
                bucket=bucket, history=self.history,
            )
        return out

    def decide(
        self, *, user_id: str, context: dict[str, Any], ts: datetime | None,
        rng: random.Random, decision_id: str,
    ) -> tuple[dict[str, Any], bytes, str, bool, float]:
        """One decision: ``(response body, DecisionMade JSON, action, explored, epsilon)``.

        Equal to :func:`gateway.core.decide` for equal rng states (the body is its body,
        the JSON is ``dump_event`` of its event).
        """
        spec = self.spec
        bucket = context_bucket(context, spec.context_keys)
        explore = may_explore(context)
        choice = self._choice(bucket, explore)
        if self.features and any(f in context for f in self.features):
            probs = self.policy.action_probabilities(bucket, spec.actions, explore, context)
            action, propensity, explored = draw(probs, spec.actions, rng)
        else:
            action, propensity, explored = choice.draw(rng)
        traits = self.base_traits
        probe: Probe | None = None
        if explore:
            traits, probe = apply_probe(spec, self.policy, traits, rng)
        reply_draw = rng.random() if self.sample_reply else None
        if probe is None:
            compiled = self._compile(action, bucket, context)
            reply = should_reply(self.policy, self.rules, bucket, reply_draw)
        else:
            compiled = compile_prompt(
                spec, self.policy, self.rules, context, action, traits=traits, bucket=bucket,
                history=self.history, reply_draw=reply_draw,
            )
            reply = compiled.should_reply
        probe_doc = {"trait": probe.trait, "delta": probe.delta} if probe else None
        body = {
            "decision_id": decision_id,
            "action": action,
            "propensity": propensity,
            "explored": explored,
            "policy_version": self.policy.version,
            "traits": traits,
            "probe": probe_doc,
            "prompt": {"system": compiled.system, "params": compiled.params},
            "model": compiled.model,
            "should_reply": reply,
            "bucket": bucket,
            "rules_version": self.rules_version,
            "sections_used": compiled.sections_used,
        }
        event = None
        if self._fast_event and 0.0 < propensity <= 1.0:
            try:
                event = orjson.dumps({
                    "event_id": decision_id,
                    "tenant": self.tenant,
                    "ts": iso_utc(ts) if ts is not None else iso_utc(datetime.now(UTC)),
                    "schema_version": SCHEMA_VERSION,
                    "type": "DecisionMade",
                    "decision_id": decision_id,
                    "agent_id": self.agent_id,
                    "user_id": user_id,
                    "action": action,
                    "propensity": propensity,
                    "explored": explored,
                    "policy_version": self.policy.version,
                    "bucket": bucket,
                    "context": context,
                    "traits": traits,
                    "probe": probe_doc,
                    "rules_version": self.rules_version,
                    "template": spec.template,
                })
            except TypeError:  # e.g. an int beyond 64 bits in the context: the model path
                event = None
        if event is None:
            did = uuid.UUID(decision_id)
            event = dump_event(DecisionMade(
                event_id=did, decision_id=did, tenant=self.tenant, ts=ts or datetime.now(UTC),
                agent_id=self.agent_id, user_id=user_id, action=action, propensity=propensity,
                explored=explored, policy_version=self.policy.version, bucket=bucket,
                context=dict(context), traits=traits, probe=probe,
                rules_version=self.rules_version, template=spec.template,
            ))
        return body, event, action, explored, choice.epsilon
