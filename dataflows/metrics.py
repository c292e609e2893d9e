"""Prometheus metrics of a dataflow process, defined once on one registry."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.values import MutexValue

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_REWARD = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
_WAIT = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_DELAY = (0.1, 0.5, 1, 5, 15, 60, 300, 600, 1800, 3600)


class LabelCache:
    """Cached label children: ``labels()`` costs microseconds and runs per event."""

    _children: dict[tuple[str, ...], Any]

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


@dataclass
class FlowMetrics(LabelCache):
    """Every metric a dataflow worker exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_in = Counter("rewardflow_events_in_total", "Input events by topic and type",
                                 ["topic", "type"], registry=r)
        self.dlq = Counter("rewardflow_dlq_total", "Messages sent to the DLQ by reason",
                           ["reason"], registry=r)
        self.duplicates = Counter("rewardflow_duplicates_total",
                                  "Events dropped as duplicates of an event_id", registry=r)
        self.late = Counter("rewardflow_late_signals_total",
                            "Events older than the watermark or for a closed decision",
                            registry=r)
        self.unattributed = Counter("rewardflow_unattributed_signals_total",
                                    "Signals with no decision to credit", registry=r)
        self.joined = Counter("rewardflow_joined_signals_total",
                              "Signals joined to an open decision", registry=r)
        self.rewards_total = Counter("rewardflow_rewards_total", "Rewards computed",
                                     ["template", "closed_by"], registry=r)
        self.reward = Histogram("rewardflow_reward", "Reward values", ["template"],
                                buckets=_REWARD, registry=r)
        self.reward_delay = Histogram("rewardflow_reward_delay_seconds",
                                      "Event time from decision to its reward", buckets=_DELAY,
                                      registry=r)
        self.policy_versions = Counter("rewardflow_policy_versions_total",
                                       "Policy versions emitted", registry=r)
        self.policy_clamps = Counter("rewardflow_policy_clamps_total",
                                     "Policy values clamped by a safety rule", registry=r)
        self.policy_epsilon = Histogram("rewardflow_policy_epsilon",
                                        "Epsilon of emitted policy buckets",
                                        buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
                                        registry=r)
        self.learner_seconds = Histogram("rewardflow_learner_update_seconds",
                                         "Time to apply one batch to an agent's state",
                                         buckets=_SECONDS, registry=r)
        self.redis_seconds = Histogram("rewardflow_redis_write_seconds",
                                       "Time of one pipelined Redis flush", buckets=_SECONDS,
                                       registry=r)
        self.redis_documents = Counter("rewardflow_redis_documents_total",
                                       "Agent document sets written to Redis (at most one per "
                                       "agent per RF_PROJECTION_WRITE_SECONDS)", registry=r)
        self.kafka_seconds = Histogram("rewardflow_kafka_write_seconds",
                                       "Time to hand one batch to the Kafka producer",
                                       buckets=_SECONDS, registry=r)
        self.consumer_lag = Gauge("rewardflow_consumer_lag",
                                  "Messages behind the partition's high watermark",
                                  ["topic", "partition"], registry=r)
        self.input_wait = Histogram(
            "rewardflow_input_wait_seconds",
            "Age of the oldest message of each poll when the flow read it (now minus its "
            "Kafka timestamp)", buckets=_WAIT, registry=r)
        self.watermark_lag = Gauge("rewardflow_watermark_lag_seconds",
                                   "Wall clock minus the newest agent watermark", registry=r)
        self.snapshot_seconds = Histogram(
            "rewardflow_state_snapshot_seconds",
            "Time to snapshot one agent shard at an epoch end (pickling what changed and "
            "committing the cold store)", buckets=_SECONDS, registry=r)
        self.snapshot_bytes = Counter("rewardflow_state_snapshot_bytes_total",
                                      "Bytes of agent shard snapshots handed to Bytewax",
                                      registry=r)
        self.cold_bytes = Gauge("rewardflow_cold_store_bytes",
                                "Bytes of agent state in the process's cold store", registry=r)
        self._children = {}

    def events_in_for(self, topic: str, type_: str) -> Any:
        return self._child(self.events_in, topic, type_)

    def dlq_for(self, reason: str) -> Any:
        return self._child(self.dlq, reason)

    def reward_for(self, template: str) -> Any:
        return self._child(self.reward, template)

    def rewards_for(self, template: str, closed_by: str) -> Any:
        return self._child(self.rewards_total, template, closed_by)


_METRICS: FlowMetrics | None = None
#: Next offset to read per (topic, partition), as seen by this process's parse step.
POSITIONS: dict[tuple[str, int], int] = {}


class InputClock:
    """Wall time of the newest input message this process read, and of its latest poll
    (both set by the parse step).

    The agents' idle-watermark fallback only advances when the whole input has been quiet,
    never while the flow works through a backlog, and only for time the input was polled:
    while the flow itself stalls (a long epoch snapshot, a starved CPU) nothing is read, and
    that must not pass for quiet input (see :func:`dataflows.agent_step._input_last`).
    """

    last: float = 0.0
    polled: float = 0.0
    #: input partitions whose first fetch has not answered yet: the input is not quiet, it
    #: has not started (the idle fallback waits for them)
    starting: ClassVar[set[Any]] = set()


def flow_metrics() -> FlowMetrics:
    """The process-wide metrics (created on first use)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = FlowMetrics()
    return _METRICS


# -- per-batch accounting ----------------------------------------------------------------------
# A counter ``inc`` or histogram ``observe`` takes a lock and a few Python calls: several per
# event added up to ~8% of the flow. The hot path records into plain per-thread dicts
# (:func:`count`, :func:`observe`) and :func:`flush` applies them once per batch (the parse
# step, the agent step's output and the sinks flush). Counts are integers and every
# observation is added to the histogram's sum in the same order as before, so the exported
# values are the same; they only appear up to one batch later.
class _Pending(threading.local):
    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}
        self.obs: dict[Any, list[float]] = {}
        self.flushed = 0.0


_PENDING = _Pending()


def count(child: Any, n: int = 1) -> None:
    """``child.inc(n)`` at the next :func:`flush` of this thread."""
    c = _PENDING.counts
    c[child] = c.get(child, 0) + n


def observe(child: Any, amount: float) -> None:
    """``child.observe(amount)`` at the next :func:`flush` of this thread."""
    o = _PENDING.obs.get(child)
    if o is None:
        _PENDING.obs[child] = [amount]
    else:
        o.append(amount)


def _observe_all(child: Any, amounts: list[float]) -> None:
    total = getattr(child, "_sum", None)
    bounds = getattr(child, "_upper_bounds", None)
    if not isinstance(total, MutexValue) or bounds is None:
        for a in amounts:
            child.observe(a)
        return
    per_bucket = [0] * len(bounds)
    last = len(bounds)
    for a in amounts:
        if a == a:  # noqa: PLR0124 - NaN lands in no bucket, as in ``observe``
            i = bisect_left(bounds, a)  # first bound >= a, i.e. ``a <= bound``
            if i < last:
                per_bucket[i] += 1
    with total._lock:  # noqa: SLF001 - same additions, same order as ``observe``
        v = total._value  # noqa: SLF001
        for a in amounts:
            v += a
        total._value = v  # noqa: SLF001
    for i, n in enumerate(per_bucket):
        if n:
            child._buckets[i].inc(n)  # noqa: SLF001


def maybe_flush(every: float = 0.25) -> None:
    """:func:`flush` if this thread last flushed ``every`` seconds ago or more."""
    now = time.monotonic()
    if now - _PENDING.flushed >= every:
        flush()


def flush() -> None:
    """Apply this thread's pending counts and observations to the metrics."""
    p = _PENDING
    p.flushed = time.monotonic()
    if p.counts:
        counts, p.counts = p.counts, {}
        for child, n in counts.items():
            child.inc(n)
    if p.obs:
        obs, p.obs = p.obs, {}
        for child, amounts in obs.items():
            _observe_all(child, amounts)
