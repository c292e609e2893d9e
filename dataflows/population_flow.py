"""The population flow: agents' published policies -> per-template archetypes -> priors.

A small Bytewax flow beside the main one (its own process, ``python -m
dataflows.population_run``)::

    agents + policies topics -> parse -> key by agent (template join)
        -> key by tenant:template (Population, throttled refit) -> PriorDocument -> Redis
    bad policies-topic messages -> DLQ

* **Template join.** ``PolicyUpdated`` does not name the template; ``AgentUpserted`` does.
  Per agent the flow keeps the template (and, until it is known, only the newest policy),
  so a policy read before its agent's registration still counts. An agent whose template
  changes leaves the old template's population.
* **Population.** Per ``tenant:template`` a :class:`dataflows.population.Population` keeps
  every agent's newest value table; values that the agent's learner blended with a prior
  this flow published are turned back into the agent's own means first
  (:func:`dataflows.population.own_table`), so a prior does not feed on itself.
* **Refit.** After ``population_refit_every`` new tables (but at most once per
  ``population_min_refit_seconds``), or ``population_refit_seconds`` (wall time) after the
  first table since the last fit, whichever comes first; a busy template is refitted a few
  times a second at most, however many policies arrive. A fit whose archetypes are empty
  (no agent has ``population_min_rewards`` yet) publishes nothing.
* **Versions.** A prior's version is the number of policy messages (plus template changes)
  its population had absorbed, so it only grows, and it depends on the input alone (not on
  how the two topics interleave): a replay ends at the same version. The Redis write is
  guarded by it (:mod:`dataflows.population_run`), which makes replays idempotent.

Input the main flow already dead-letters (bad messages on the agents topic) is skipped
here, so nothing reaches the DLQ twice; bad messages on the policies topic go to the DLQ
with ``step="population"``. Fits, the last published prior per template, absorbed policies
and dead letters are counted in :mod:`dataflows.population_metrics`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink
from pydantic import ValidationError

from dataflows.population import Population
from dataflows.population_metrics import PopulationMetrics, population_metrics
from dataflows.prior_handoff import Handoff, assignments
from schemas.events import AgentUpserted, DeadLetter, derived_id, dump_event, parse_event
from schemas.priors import PriorDocument
from schemas.settings import Settings

log = logging.getLogger("rewardflow.population")
Clock = Callable[[], float]

#: Priors kept per template to un-blend the values of agents that started from one.
KEEP_PRIORS = 4


def _dead(msg: Any, reason: str) -> DeadLetter:
    raw = msg.value or b""
    return DeadLetter(event_id=derived_id("dlq", "population", msg.topic, msg.partition,
                                          msg.offset),
                      reason=reason, step="population", topic=msg.topic,
                      partition=msg.partition, offset=msg.offset,
                      payload=raw[:2000].decode("utf-8", errors="replace"))


def parse(msg: Any, policies_topic: str) -> tuple[str, Any] | DeadLetter | None:
    """``(tenant:agent_id, item)``, a dead letter, or ``None`` (skipped).

    Items: ``("agent", tenant, template or "", agent_id)`` and
    ``("policy", tenant, agent_id, buckets, evidence, event time or None)``. Only what the
    population uses is checked (a policy's ``buckets`` and ``evidence``): one JSON parse per
    policy message.

    >>> from bytewax.connectors.kafka import KafkaSourceMessage as M
    >>> doc = {"type": "PolicyUpdated", "tenant": "t", "agent_id": "a", "version": 1,
    ...        "policy": {"buckets": {"*": {"values": {"x": 1.0}, "counts": {"x": 1}}}}}
    >>> parse(M(None, orjson.dumps(doc), topic="p.policies"), "p.policies")[1][0]
    'policy'
    >>> parse(M(None, b"{", topic="p.policies"), "p.policies").reason
    'invalid JSON'
    >>> parse(M(None, b"{", topic="p.agents"), "p.policies") is None
    True
    """
    if isinstance(msg, KafkaError):
        if msg.err.code() < 0:  # client-side and transient: not input
            log.warning("kafka: %s", msg.err)
            return None
        return _dead(msg.msg, f"kafka error: {msg.err}") if msg.msg.topic == policies_topic \
            else None
    if msg.topic != policies_topic:
        try:
            ev = parse_event(msg.value or b"")
        except ValidationError:
            return None  # the main flow dead-letters bad input on its own topics
        if isinstance(ev, AgentUpserted):
            return f"{ev.tenant}:{ev.agent_id}", ("agent", ev.tenant, ev.spec.template or "",
                                                  ev.agent_id)
        return None
    try:
        doc = orjson.loads(msg.value or b"")
    except orjson.JSONDecodeError:
        return _dead(msg, "invalid JSON")
    if not isinstance(doc, dict) or doc.get("type") != "PolicyUpdated":
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        return _dead(msg, f"event type {kind!r} is not accepted on {msg.topic}")
    tenant, agent_id, pol = doc.get("tenant", "default"), doc.get("agent_id"), doc.get("policy")
    if not isinstance(agent_id, str) or not agent_id or not isinstance(tenant, str):
        return _dead(msg, "agent_id: a non-empty string is required")
    if not isinstance(pol, dict) or not isinstance(pol.get("buckets"), dict) or not all(
            isinstance(b, dict) and isinstance(b.get("values", {}), dict)
            and isinstance(b.get("counts", {}), dict) for b in pol["buckets"].values()):
        return _dead(msg, "policy.buckets: an object of {values, counts} objects is required")
    evidence = pol.get("evidence") if isinstance(pol.get("evidence"), dict) else {}
    return f"{tenant}:{agent_id}", ("policy", tenant, agent_id, pol["buckets"], evidence,
                                    _event_time(doc.get("ts")))


def _event_time(value: Any) -> float | None:
    """A policy message's event time (ISO 8601) as epoch seconds; ``None`` if unreadable.

    >>> _event_time("1970-01-01T00:01:00+00:00"), _event_time("noon"), _event_time(None)
    (60.0, None, None)
    """
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).timestamp()


AgentTemplate = tuple[str | None, tuple[Any, ...] | None, int]


def join_template(state: AgentTemplate | None, item: tuple[Any, ...]
                  ) -> tuple[AgentTemplate, list[tuple[str, tuple[Any, ...]]]]:
    """Per agent: remember its template; route its policies to ``tenant:template``.

    State: ``(template, newest policy while the template is unknown, how many policies that
    one stands for)``; ``""`` means the agent has no template (its policies are dropped).
    Routed items are ``("policy", agent_id, buckets, evidence, event time, n)`` (``n``
    policies read, the newest of them carried) and ``("remove", agent_id)``, so a template's
    population counts every policy message of its agents exactly once, in whatever order
    the agents and policies topics are read.

    >>> st, out = join_template(None, ("policy", "t", "a", {"*": {}}, {}))
    >>> st, out = join_template(st, ("policy", "t", "a", {"*": {}}, {}))
    >>> out, st[0], st[2]
    ([], None, 2)
    >>> st, out = join_template(st, ("agent", "t", "coach", "a"))
    >>> [(k, x[0], x[-1]) for k, x in out]
    [('t:coach', 'policy', 2)]
    >>> st, out = join_template(st, ("agent", "t", "other", "a"))
    >>> [(k, x[0]) for k, x in out]
    [('t:coach', 'remove')]
    """
    template, pending, n = state if state is not None else (None, None, 0)
    out: list[tuple[str, tuple[Any, ...]]] = []
    if item[0] == "agent":
        tenant, new = item[1], item[2]
        if template and new != template:
            out.append((f"{tenant}:{template}", ("remove", item[3])))
        template = new
        if pending is not None and template:
            out.append((f"{tenant}:{template}", ("policy", *pending[2:], n)))
        return (template, None, 0), out
    if template is None:
        return (None, item, n + 1), out
    if template:
        out.append((f"{item[1]}:{template}", ("policy", *item[2:], 1)))
    return (template, None, 0), out


class PopulationLogic(StatefulBatchLogic[Any, Any, Any]):
    """Bytewax glue around one template's :class:`Population`: refit when due, emit priors
    (for Redis) and, when a hand-off is due (:mod:`dataflows.prior_handoff`), the
    ``PriorAssigned`` messages that hand the prior to the template's live agents."""

    def __init__(self, settings: Settings, clock: Clock, resume: Any = None,
                 metrics: PopulationMetrics | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or population_metrics()
        self.pop: Population | None = None
        self.priors: dict[int, PriorDocument] = {}
        self.pending_since: float | None = None
        self.last_fit: float | None = None
        #: the newest policy event time read, and the hand-off schedule
        self.event_ts: float | None = None
        self.handoff = Handoff(settings.population_handoff_seconds,
                               settings.population_handoff_min_rewards)
        if resume is not None:
            self.pop, self.priors, self.pending_since, self.last_fit = resume[:4]
            if len(resume) > 4:  # snapshots from before live hand-offs have none
                self.event_ts, self.handoff = resume[4], resume[5]
                self.handoff.every = settings.population_handoff_seconds
                self.handoff.min_rewards = settings.population_handoff_min_rewards
            if self.priors:  # the gauges show the newest prior again after a restart
                self.metrics.published(self.priors[max(self.priors)])

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        """``values``: ``(tenant:template, item)``; items from :func:`join_template`."""
        pop = self.pop
        if pop is None:
            tenant, template = values[0][0].split(":", 1)
            s = self.settings
            pop = self.pop = Population(tenant, template, min_rewards=s.population_min_rewards,
                                        max_agents=s.population_max_agents,
                                        refit_every=s.population_refit_every)
        absorbed = 0
        for _, item in values:
            if item[0] == "remove":
                pop.remove(item[1])
                continue
            agent_id, buckets, evidence, n = item[1], item[2], item[3], item[-1]
            ts = item[4] if len(item) > 5 else None  # (pending items of older snapshots)
            if ts is not None and (self.event_ts is None or ts > self.event_ts):
                self.event_ts = ts
            pop.observe_policy(agent_id, buckets, evidence, self.priors, count=n)
            absorbed += n
        if absorbed:
            self.metrics.policies.inc(absorbed)
        if pop.updates_since_fit and self.pending_since is None:
            self.pending_since = self.clock()
        return self._maybe_fit(), StatefulBatchLogic.RETAIN

    def _due_at(self) -> float | None:
        """Wall time of the next refit (``None``: nothing new since the last one)."""
        if self.pending_since is None or self.pop is None:
            return None
        s = self.settings
        at = self.pending_since + s.population_refit_seconds
        if self.pop.due():
            at = min(at, (self.last_fit or 0.0) + s.population_min_refit_seconds)
        return at

    def _maybe_fit(self) -> list[Any]:
        at = self._due_at()
        return self._fit() if at is not None and self.clock() >= at else []

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        return self._maybe_fit(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        due = self.pop is not None and self.pop.updates_since_fit > 0
        return (self._fit() if due else []), StatefulBatchLogic.RETAIN

    def _fit(self) -> list[Any]:
        self.pending_since = None
        self.last_fit = self.clock()
        pop = self.pop
        if pop is None:
            return []
        s = self.settings
        started = time.perf_counter()
        doc = pop.fit_with(s)
        self.metrics.fitted(pop.tenant, pop.template, time.perf_counter() - started)
        if not doc.archetypes:
            return []
        self.metrics.published(doc)
        self.priors[doc.version] = doc
        out: list[Any] = [doc]
        agents = self.handoff.targets(pop, self.event_ts, doc)
        if agents and self.event_ts is not None:
            self.handoff.record(doc.version)
            out += assignments(doc, agents, self.event_ts, s.topics.agents)
            self.metrics.handed_off(pop.tenant, pop.template, len(agents))
            log.info("prior %s:%s v%d handed to %d live agents", pop.tenant, pop.template,
                     doc.version, len(agents))
        # keep the newest priors and the ones handed off: agents' values blended with them
        # are un-blended before they enter the population (own_table)
        for v in sorted(self.priors)[:-KEEP_PRIORS]:
            if v not in self.handoff.versions:
                del self.priors[v]
        log.info("prior %s:%s v%d: %s", pop.tenant, pop.template, doc.version, doc.explanation)
        return out

    def notify_at(self) -> datetime | None:
        at = self._due_at()
        return datetime.fromtimestamp(at, UTC) if at is not None else None

    def snapshot(self) -> Any:
        pop = self.pop.snapshot() if self.pop is not None else None
        return (pop, dict(self.priors), self.pending_since, self.last_fit, self.event_ts,
                copy.copy(self.handoff))


def _parse_batch(msgs: list[Any], topics: Any, metrics: PopulationMetrics) -> list[Any]:
    out: list[Any] = []
    for msg in msgs:
        got = parse(msg, topics.policies)
        if got is None:
            continue
        if isinstance(got, DeadLetter):
            metrics.dead_letter(got.reason)
            out.append(KafkaSinkMessage(None, dump_event(got), topics.dlq))
        else:
            out.append(got)
    return out


def build_flow(source: Source[Any], kafka_sink: Sink[Any], redis_sink: Sink[Any],
               settings: Settings, *, clock: Clock = time.time,
               flow_id: str = "rewardflow-population",
               metrics: PopulationMetrics | None = None) -> Dataflow:
    """Wire the population flow. ``kafka_sink`` gets DLQ ``KafkaSinkMessage``s,
    and the ``PriorAssigned`` messages of live hand-offs, ``redis_sink`` gets
    :class:`PriorDocument`s (write them with a version guard).
    ``metrics``: where to record (default: the process's :func:`population_metrics`)."""
    topics = settings.topics
    m = metrics or population_metrics()

    def builder(resume: Any) -> PopulationLogic:
        return PopulationLogic(settings, clock, resume, m)

    flow = Dataflow(flow_id)
    msgs = op.input("kafka_in", flow, source)
    parsed = op.flat_map_batch("parse", msgs, lambda ms: _parse_batch(ms, topics, m))
    split = op.branch("valid", parsed, lambda p: p.__class__ is tuple)
    routed = op.stateful_map("template_join", split.trues, join_template)
    by_template = op.flat_map("by_template", routed, lambda kv: kv[1])
    tagged = op.map("tag_key", by_template, lambda kv: (kv[0], (kv[0], kv[1])))
    fitted = op.map("unkey", op.stateful_batch("population", tagged, builder), lambda kv: kv[1])
    out = op.branch("handoffs", fitted, lambda x: x.__class__ is KafkaSinkMessage)
    op.output("kafka_out", op.merge("kafka_merge", split.falses, out.trues), kafka_sink)
    op.output("prior_out", out.falses, redis_sink)
    return flow
