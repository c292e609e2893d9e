"""Prometheus metrics of the population process, defined once on one registry.

The population flow (:mod:`dataflows.population_flow`) records them; ``get_flow()`` in
:mod:`dataflows.population_run` serves them on ``RF_POPULATION_METRICS_PORT`` (9118). Per
template metrics are labelled ``tenant`` and ``template``: one series per population the flow
keeps (templates are few), and two tenants' templates of the same name stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dataflows.metrics import LabelCache
from schemas.priors import PriorDocument

#: A fit is a k-means over at most ``population_max_agents`` value tables for each k.
_FIT_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0)

#: Dead-letter reasons of the population flow (:func:`dataflows.population_flow.parse`), by
#: how the reason starts, as bounded label values (the reasons themselves name event types
#: and topics).
_DLQ_REASONS = (
    ("invalid JSON", "invalid_json"),
    ("event type", "unexpected_type"),
    ("agent_id", "invalid_agent_id"),
    ("policy.buckets", "invalid_policy"),
    ("kafka error", "kafka_error"),
)


def dlq_reason(reason: str) -> str:
    """The ``reason`` label of a dead letter's reason.

    >>> dlq_reason("event type 'X' is not accepted on p.policies"), dlq_reason("?")
    ('unexpected_type', 'other')
    """
    for prefix, label in _DLQ_REASONS:
        if reason.startswith(prefix):
            return label
    return "other"


@dataclass
class PopulationMetrics(LabelCache):
    """Every metric the population process exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.policies = Counter("rewardflow_population_policies_total",
                                "Policy documents absorbed into a template's population",
                                registry=r)
        self.dlq = Counter("rewardflow_population_dlq_total",
                           "Policies-topic messages the population flow sent to the DLQ",
                           ["reason"], registry=r)
        self.fits = Counter("rewardflow_population_fits_total",
                            "Archetype fits of a template's population", ["tenant", "template"],
                            registry=r)
        self.fit_seconds = Histogram("rewardflow_population_fit_seconds",
                                     "Time of one archetype fit", buckets=_FIT_SECONDS,
                                     registry=r)
        self.agents = Gauge("rewardflow_population_agents",
                            "Agents in the template's last published prior",
                            ["tenant", "template"], registry=r)
        self.archetypes = Gauge("rewardflow_population_archetypes",
                                "Archetypes of the template's last published prior",
                                ["tenant", "template"], registry=r)
        self.prior_version = Gauge("rewardflow_population_prior_version",
                                   "Version of the template's last published prior",
                                   ["tenant", "template"], registry=r)
        self.handoffs = Counter("rewardflow_population_handoffs_total",
                                "Live agents handed a newer prior of their template "
                                "(PriorAssigned events produced)", ["tenant", "template"],
                                registry=r)
        self._children = {}

    def dead_letter(self, reason: str) -> None:
        """Count one dead letter with this (free-text) reason."""
        self._child(self.dlq, dlq_reason(reason)).inc()

    def fitted(self, tenant: str, template: str, seconds: float) -> None:
        """Count one fit of ``tenant:template`` that took ``seconds``."""
        self._child(self.fits, tenant, template).inc()
        self.fit_seconds.observe(seconds)

    def published(self, doc: PriorDocument) -> None:
        """Set the per-template gauges to the prior ``doc`` (the newest one published)."""
        t = (doc.tenant, doc.template)
        self._child(self.agents, *t).set(doc.agents)
        self._child(self.archetypes, *t).set(len(doc.archetypes))
        self._child(self.prior_version, *t).set(doc.version)


    def handed_off(self, tenant: str, template: str, agents: int) -> None:
        """Count ``agents`` live agents of ``tenant:template`` handed its newest prior."""
        self._child(self.handoffs, tenant, template).inc(agents)


_METRICS: PopulationMetrics | None = None


def population_metrics() -> PopulationMetrics:
    """The process-wide metrics (created on first use)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = PopulationMetrics()
    return _METRICS
