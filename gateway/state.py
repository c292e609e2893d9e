"""Per-app state: the Redis and Kafka clients (opened in the lifespan) and short caches.

All Redis IO of the gateway goes through here so that routers stay thin.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from gateway.auth import Principal, hash_key
from gateway.metrics import Metrics
from gateway.plan import DecisionPlan
from gateway.producer import EventProducer
from gateway.rules import CompileRules, default_rules, rules_to_json
from schemas.agent import AgentSpec
from schemas.policy import BucketPolicy, PolicyDocument
from schemas.priors import PriorDocument, archetype_weights, prior_tables
from schemas.projections import History
from schemas.settings import Settings

log = logging.getLogger(__name__)

AUTH_CACHE_SECONDS = 5.0

# Writes the initial policy unless a learned one (version >= 1) is already there: the
# dataflow owns versions >= 1 and is never overwritten.
INIT_POLICY_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if not ok or tonumber(doc['version']) ~= 0 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], '0', ARGV[1])
if cur then return 2 end
return 1
"""

# Stores {version, rules, updated_at} with version = previous + 1 (single key).
PUT_RULES_LUA = """
local cur = redis.call('GET', KEYS[1])
local v = 1
if cur then v = tonumber(cjson.decode(cur)['version']) + 1 end
redis.call('SET', KEYS[1], '{"version":' .. v .. ',"updated_at":"' .. ARGV[2] ..
  '","rules":' .. ARGV[1] .. '}')
return v
"""

# Records explicit feedback time for the feedback-prompt rate limits, if the agent exists.
TOUCH_FEEDBACK_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'last_feedback', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


@dataclass(slots=True)
class AgentView:
    spec: AgentSpec
    policy: PolicyDocument
    history: History | None
    expires: float
    #: The Redis values it was parsed from (spec, policy, history): a refresh that reads the
    #: same bytes keeps this view, its parsed models and its decision plan.
    raw: tuple[bytes | None, ...] = ()
    plan: DecisionPlan | None = None


@dataclass(slots=True)
class RulesEntry:
    raw: bytes | None
    rules: CompileRules
    version: int
    expires: float


def initial_policy(tenant: str, agent_id: str, spec: AgentSpec,
                   prior: PriorDocument | None = None) -> PolicyDocument:
    """Version 0 of an agent's policy: the spec's traits, and, when its template has a
    population prior, the prior's values (archetypes weighted by their population shares),
    so the agent's very first decisions already use what the population learned.

    >>> from schemas.priors import Archetype
    >>> spec = AgentSpec.model_validate({"persona": {"name": "x"}, "actions": ["a", "b"],
    ...                                  "template": "t", "epsilon": 0.1})
    >>> prior = PriorDocument(template="t", version=7, actions=["a", "b"], archetypes=[
    ...     Archetype(name="arch0", size=3, values={"*": {"a": 0.6, "b": -0.2}}),
    ...     Archetype(name="arch1", size=1, values={"*": {"a": -0.6, "b": 0.6}})])
    >>> doc = initial_policy("default", "ag", spec, prior)
    >>> doc.buckets["*"].values, doc.buckets["*"].counts, doc.evidence["prior.version"]
    ({'a': 0.3, 'b': 0.0}, {}, 7.0)
    >>> initial_policy("default", "ag", spec).buckets
    {}
    """
    buckets: dict[str, BucketPolicy] = {}
    evidence: dict[str, float] = {}
    explanation = "initial policy"
    if prior is not None and prior.archetypes:
        tables = prior_tables(prior, actions=spec.actions)
        buckets = {b: BucketPolicy(values=vals, epsilon=spec.epsilon if spec.explore else 0.0)
                   for b, vals in tables.items()}
        if buckets:
            evidence["prior.version"] = float(prior.version)
            for arch, w in zip(prior.archetypes, archetype_weights(prior, []), strict=True):
                evidence[f"prior.weight.{arch.name}"] = round(w, 4)
            explanation = (f"initial policy from the population prior of template "
                           f"{prior.template!r} (v{prior.version}: {prior.explanation})")
    return PolicyDocument(
        agent_id=agent_id, tenant=tenant, version=0, epsilon=spec.epsilon,
        explore=spec.explore, traits=dict(spec.traits),
        trait_bounds={k: (float(lo), float(hi)) for k, (lo, hi) in spec.trait_bounds.items()},
        buckets=buckets, evidence=evidence, explanation=explanation,
    )


class AppState:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.keys = settings.keys
        self.topics = settings.topics
        self.metrics = metrics
        self.redis: Redis | None = None
        self.producer = EventProducer(settings.kafka_bootstrap_servers, metrics,
                                      partitioner=settings.kafka_partitioner)
        self.rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        self._agents: dict[tuple[str, str], AgentView] = {}
        self._rules: dict[str, RulesEntry] = {}
        self._auth: dict[str, tuple[Principal | None, float]] = {}
        self._scripts: dict[str, Any] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self.default_principal = Principal(settings.default_tenant, admin=True)
        self._decision_children: dict[tuple[str, bool], Any] = {}

    def count_decision(self, action: str, explored: bool, epsilon: float) -> None:
        child = self._decision_children.get((action, explored))
        if child is None:
            child = self._decision_children[(action, explored)] = self.metrics.decisions.labels(
                action, "true" if explored else "false")
        child.inc()
        self.metrics.epsilon.observe(epsilon)

    # -- lifecycle --------------------------------------------------------------------------
    async def open(self) -> None:
        self.redis = Redis.from_url(
            self.settings.redis_url or "redis://127.0.0.1:6379/0",
            socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=30,
        )
        for name, src in (("init_policy", INIT_POLICY_LUA), ("put_rules", PUT_RULES_LUA),
                          ("touch_feedback", TOUCH_FEEDBACK_LUA)):
            self._scripts[name] = self.redis.register_script(src)
        self.producer.start()

    async def close(self) -> None:
        self.producer.close()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]
            self.redis = None

    @property
    def r(self) -> Redis:
        if self.redis is None:
            msg = "redis client is not open (lifespan not started)"
            raise RuntimeError(msg)
        return self.redis

    # -- agents, policies, rules ------------------------------------------------------------
    def invalidate(self, tenant: str, agent_id: str | None = None) -> None:
        if agent_id is None:
            self._rules.pop(tenant, None)
        else:
            self._agents.pop((tenant, agent_id), None)

    def _rules_entry(self, tenant: str, raw: bytes | None, now: float) -> RulesEntry:
        ttl = self.settings.policy_cache_seconds
        cur = self._rules.get(tenant)
        if cur is not None and cur.raw == raw:
            cur.expires = now + ttl
            return cur
        if raw is None:
            entry = RulesEntry(None, default_rules(), 0, now + ttl)
        else:
            doc = orjson.loads(raw)
            entry = RulesEntry(raw, CompileRules.model_validate(doc["rules"]),
                               int(doc["version"]), now + ttl)
        self._rules[tenant] = entry
        return entry

    async def load(self, tenant: str, agent_id: str) -> tuple[AgentView | None, RulesEntry]:
        """Spec, policy and history of the agent plus the tenant's rules: cached, else one
        Redis round trip (MGET of the agent's keys and GET of the rules, pipelined).

        Concurrent misses for one agent share a single fetch (no stampede at expiry)."""
        now = time.monotonic()
        view = self._agents.get((tenant, agent_id))
        rules = self._rules.get(tenant)
        if (view is not None and view.expires > now
                and rules is not None and rules.expires > now):
            return view, rules
        key = (tenant, agent_id)
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)  # type: ignore[no-any-return]
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._fetch(tenant, agent_id)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved when nobody else waits
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _fetch(self, tenant: str, agent_id: str) -> tuple[AgentView | None, RulesEntry]:
        now = time.monotonic()
        view = self._agents.get((tenant, agent_id))
        rules = self._rules.get(tenant)
        view_ok = view is not None and view.expires > now
        rules_ok = rules is not None and rules.expires > now
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        if not view_ok:
            pipe.mget(k.agent(tenant, agent_id), k.policy(tenant, agent_id),
                      k.history(tenant, agent_id))
        if not rules_ok:
            pipe.get(k.compile_rules(tenant))
        res = await pipe.execute()
        if not rules_ok:
            rules = self._rules_entry(tenant, res[-1], now)
        if not view_ok:
            raw = tuple(res[0])
            raw_spec, raw_policy, raw_hist = raw
            if raw_spec is None:
                self._agents.pop((tenant, agent_id), None)
                return None, rules  # type: ignore[return-value]
            expires = now + self.settings.policy_cache_seconds
            if view is not None and view.raw == raw:
                view.expires = expires  # unchanged in Redis: keep the parsed view and plan
                return view, rules  # type: ignore[return-value]
            spec = AgentSpec.model_validate_json(raw_spec)
            policy = (PolicyDocument.model_validate_json(raw_policy) if raw_policy
                      else initial_policy(tenant, agent_id, spec))
            hist = History.model_validate_json(raw_hist) if raw_hist else None
            view = AgentView(spec, policy, hist, expires, raw)
            if self.settings.policy_cache_seconds > 0:
                if len(self._agents) > 100_000:
                    self._agents.clear()
                self._agents[(tenant, agent_id)] = view
        return view, rules  # type: ignore[return-value]

    async def load_plan(self, tenant: str, agent_id: str) -> DecisionPlan | None:
        """The agent's decision plan for the current spec, policy, history and rules
        (built on first use, kept while none of them changes); None for an unknown agent."""
        view, rules = await self.load(tenant, agent_id)
        if view is None:
            return None
        plan = view.plan
        if plan is None or plan.rules is not rules.rules or plan.rules_version != rules.version:
            plan = view.plan = DecisionPlan(tenant, agent_id, view.spec, view.policy,
                                            rules.rules, rules.version, view.history)
        return plan

    async def agent_exists(self, tenant: str, agent_id: str) -> bool:
        view = self._agents.get((tenant, agent_id))
        if view is not None and view.expires > time.monotonic():
            return True
        return bool(await self.r.exists(self.keys.agent(tenant, agent_id)))

    async def template_prior(self, tenant: str, template: str | None) -> PriorDocument | None:
        """The template's current population prior (``None``: no template, no prior yet,
        or a document this gateway cannot read, which is logged and ignored)."""
        if not template:
            return None
        raw = await self.r.get(self.keys.prior(tenant, template))
        if raw is None:
            return None
        try:
            doc = PriorDocument.model_validate_json(raw)
        except ValueError:
            log.warning("ignoring unreadable prior of template %r (tenant %r)", template, tenant)
            return None
        return doc if doc.archetypes else None

    async def upsert_agent(self, tenant: str, agent_id: str, spec: AgentSpec
                           ) -> tuple[bool, PriorDocument | None]:
        """Store the spec, index it, write policy version 0 if allowed.

        Returns ``(created, prior)``: ``prior`` is the template's population prior when the
        version 0 just written was blended from it (a new agent, or one without a learned
        version yet); the learner must then start from the same prior.
        """
        k = self.keys
        prior = await self.template_prior(tenant, spec.template)
        policy = initial_policy(tenant, agent_id, spec, prior)
        if not policy.buckets:
            prior = None  # none of the spec's actions is in the prior
        pipe = self.r.pipeline(transaction=True)
        pipe.set(k.agent(tenant, agent_id), spec.model_dump_json(), get=True)
        pipe.sadd(k.agents_index(tenant), agent_id)
        res = await pipe.execute()
        wrote = await self._scripts["init_policy"](
            keys=[k.policy(tenant, agent_id), k.policy_history(tenant, agent_id)],
            args=[policy.model_dump_json()],
        )
        self.invalidate(tenant, agent_id)
        return res[0] is None, prior if int(wrote) else None

    async def put_rules(self, tenant: str, rules: CompileRules, updated_at: str) -> int:
        v = await self._scripts["put_rules"](
            keys=[self.keys.compile_rules(tenant)], args=[rules_to_json(rules), updated_at]
        )
        self.invalidate(tenant)
        return int(v)

    async def get_rules(self, tenant: str) -> dict[str, Any]:
        raw = await self.r.get(self.keys.compile_rules(tenant))
        if raw is None:
            return {"version": 0, "updated_at": None,
                    "rules": default_rules().model_dump(mode="json")}
        return dict(orjson.loads(raw))

    async def touch_feedback(self, tenant: str, agent_id: str, user_id: str, ts: float) -> bool:
        return bool(await self._scripts["touch_feedback"](
            keys=[self.keys.agent(tenant, agent_id), self.fbp_key(tenant, agent_id, user_id)],
            args=[repr(ts), 90 * 86400],
        ))

    def fbp_key(self, tenant: str, agent_id: str, user_id: str) -> str:
        """Feedback-prompt rate-limit state of one agent+user (same hash slot as the agent)."""
        return f"{self.keys.agent_base(tenant, agent_id)}:fbp:{user_id}"

    # -- auth -------------------------------------------------------------------------------
    async def principal(self, api_key: str) -> Principal | None:
        h = hash_key(api_key)
        now = time.monotonic()
        hit = self._auth.get(h)
        if hit is not None and hit[1] > now:
            return hit[0]
        raw = await self.r.hget(self.keys.api_keys(), h)
        p = Principal.from_record(raw) if raw else None
        if len(self._auth) > 10_000:
            self._auth.clear()
        self._auth[h] = (p, now + AUTH_CACHE_SECONDS)
        return p
