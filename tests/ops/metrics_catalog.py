"""Every metric name rewardflow exports, by process, with its Prometheus type.

The dashboard and the alert rules may use only these (tests/ops checks it); the gateway and
dataflow tests can use :func:`missing_metrics` to check that their /metrics expose them all.
"""

from __future__ import annotations

import re

DATAFLOW_METRICS: dict[str, str] = {
    "rewardflow_events_in_total": "counter",  # {topic, type}
    "rewardflow_dlq_total": "counter",  # {reason}
    "rewardflow_duplicates_total": "counter",
    "rewardflow_late_signals_total": "counter",
    "rewardflow_unattributed_signals_total": "counter",
    "rewardflow_joined_signals_total": "counter",
    "rewardflow_reward": "histogram",  # {template}
    "rewardflow_reward_delay_seconds": "histogram",
    "rewardflow_rewards_total": "counter",  # {template, closed_by}
    "rewardflow_policy_versions_total": "counter",
    "rewardflow_policy_clamps_total": "counter",
    "rewardflow_policy_epsilon": "histogram",
    "rewardflow_learner_update_seconds": "histogram",
    "rewardflow_redis_write_seconds": "histogram",
    "rewardflow_redis_documents_total": "counter",
    "rewardflow_kafka_write_seconds": "histogram",
    "rewardflow_consumer_lag": "gauge",  # {topic, partition}
    "rewardflow_input_wait_seconds": "histogram",
    "rewardflow_watermark_lag_seconds": "gauge",
    "rewardflow_state_snapshot_seconds": "histogram",
    "rewardflow_state_snapshot_bytes_total": "counter",
    "rewardflow_cold_store_bytes": "gauge",
}

GATEWAY_METRICS: dict[str, str] = {
    "rewardflow_gateway_requests_total": "counter",  # {route, method, status}
    "rewardflow_gateway_request_duration_seconds": "histogram",  # {route}
    "rewardflow_gateway_decisions_total": "counter",  # {action, explored}
    "rewardflow_gateway_feedback_total": "counter",  # {kind}
    "rewardflow_gateway_signals_total": "counter",  # {kind}
    "rewardflow_gateway_produce_errors_total": "counter",  # {topic}
    "rewardflow_gateway_epsilon": "histogram",
}

POPULATION_METRICS: dict[str, str] = {
    "rewardflow_population_policies_total": "counter",
    "rewardflow_population_dlq_total": "counter",  # {reason}
    "rewardflow_population_fits_total": "counter",  # {tenant, template}
    "rewardflow_population_fit_seconds": "histogram",
    "rewardflow_population_agents": "gauge",  # {tenant, template}
    "rewardflow_population_archetypes": "gauge",  # {tenant, template}
    "rewardflow_population_prior_version": "gauge",  # {tenant, template}
    "rewardflow_population_handoffs_total": "counter",  # {tenant, template}
}

ALL_METRICS: dict[str, str] = {**DATAFLOW_METRICS, **GATEWAY_METRICS, **POPULATION_METRICS}

_SUFFIXES = {
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "counter": ("_created",),
    "gauge": (),
}
NAME_RE = re.compile(r"\brewardflow_[a-zA-Z0-9_]*")


def series_names(metrics: dict[str, str] = ALL_METRICS) -> set[str]:
    """Every series name a metric family can produce (``x_bucket``, ``x_sum``, ...).

    >>> sorted(series_names({"a_seconds": "histogram"}))
    ['a_seconds', 'a_seconds_bucket', 'a_seconds_count', 'a_seconds_created', 'a_seconds_sum']
    """
    out = set()
    for name, kind in metrics.items():
        out.add(name)
        base = name.removesuffix("_total") if kind == "counter" else name
        out.update(base + s for s in _SUFFIXES[kind])
    return out


def unknown_names(text: str, metrics: dict[str, str] = ALL_METRICS) -> set[str]:
    """``rewardflow_*`` names used in ``text`` (PromQL, JSON, YAML) that no metric produces.

    >>> unknown_names('rate(rewardflow_reward_bucket[5m]) + rewardflow_rewards_totl')
    {'rewardflow_rewards_totl'}
    """
    return set(NAME_RE.findall(text)) - series_names(metrics)


def missing_metrics(exposition: str, metrics: dict[str, str]) -> set[str]:
    """Families in ``metrics`` with no ``# TYPE`` line in a /metrics ``exposition``.

    >>> missing_metrics("# TYPE rewardflow_reward histogram\\n", {"rewardflow_reward": "histogram",
    ...                 "rewardflow_consumer_lag": "gauge"})
    {'rewardflow_consumer_lag'}
    """
    typed = set(re.findall(r"^# TYPE (\S+) ", exposition, flags=re.MULTILINE))
    # prometheus_client types counters by their name without ``_total``.
    return {n for n in metrics if n not in typed and n.removesuffix("_total") not in typed}
