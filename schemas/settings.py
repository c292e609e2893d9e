"""Settings shared by every rewardflow process, read from the environment (prefix ``RF_``).

``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` are also read without the prefix, as the
README documents. Build settings with :func:`get_settings`, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.keys import Keys
from schemas.topics import Topics

#: how producers map a key to a partition (librdkafka's names; ``dataflows/partitions.py``)
KafkaPartitioner = Literal["consistent_random", "murmur2_random"]


class Settings(BaseSettings):
    """rewardflow configuration.

    >>> s = Settings(topic_prefix="t1", key_prefix="k1")
    >>> s.topics.signals, s.keys.policy("default", "a")
    ('t1.signals', 'k1:{default:a}:policy')
    """

    model_config = SettingsConfigDict(env_prefix="RF_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "RF_KAFKA_BOOTSTRAP_SERVERS"),
    )
    redis_url: str = Field(
        default="", validation_alias=AliasChoices("REDIS_URL", "RF_REDIS_URL")
    )
    topic_prefix: str = "rewardflow"
    topic_partitions: int = Field(default=2, ge=1)
    #: how producers map an ``agent_id`` key to a partition: librdkafka's default
    #: ``consistent_random`` (CRC32) or ``murmur2_random`` (the Java client's default). The
    #: gateway produces with it; co-partitioned flow processes check every event against it
    #: (``dataflows/partitions.py``)
    kafka_partitioner: KafkaPartitioner = "consistent_random"
    key_prefix: str = "rf"
    default_tenant: str = "default"

    # Reward join (event time).
    reward_window_seconds: float = Field(default=600.0, gt=0)
    allowed_lateness_seconds: float = Field(default=0.25, ge=0)
    idle_watermark_seconds: float | None = Field(default=0.25, gt=0)
    dedup_horizon_seconds: float = Field(default=86400.0, gt=0)
    #: how often each input partition tells the agent shards its clock (the tick watermark,
    #: ``dataflows/ticks.py``); 0 turns ticks off
    watermark_tick_ms: float = Field(default=100.0, ge=0)
    reward_model_path: str | None = None

    # Projections.
    projection_ttl_seconds: int = Field(default=30 * 86400, gt=0)
    history_length: int = Field(default=20, ge=1, le=1000)
    relationship_half_life_seconds: float = Field(default=7 * 86400.0, gt=0)
    #: each agent's Redis documents are written at most this often (wall time; the newest
    #: state always lands): a per-agent cost, so with many agents a longer interval buys CPU
    #: for staleness (1 s at 10k events/s live over 1,000 agents, ``bench.pipeline``,
    #: 2026-12-06: flow 1.25 -> 1.12 cores, Redis 0.15 -> 0.08, p99 freshness 0.92 -> 1.48 s)
    projection_write_seconds: float = Field(default=0.2, gt=0, le=60)

    # Learner.
    epsilon_floor: float = Field(default=0.02, ge=0, le=1)
    epsilon_decay_count: float = Field(default=20.0, gt=0)
    policy_every_n_rewards: int = Field(default=1, ge=1)
    #: an agent publishes at most one policy version per this many seconds of event time;
    #: rewards that close sooner are folded into the version published when the interval
    #: ends (0: a version may follow every reward). For agents with several rewards a
    #: second the policy path (document, Kafka message, Redis history) is then paid once a
    #: second: at 20k events/s live over 1,000 agents (``python -m bench.pipeline
    #: --flow-procs 2``, 2026-12-04) p99 freshness 0.70 s with 1 s against 0.84-1.36 s with 0.
    policy_min_interval_seconds: float = Field(default=1.0, ge=0)

    # Dataflow runtime.
    recovery_dir: str = "var/recovery"
    #: epoch (recovery snapshot) interval: every epoch re-pickles each agent it touched, so a
    #: short one costs CPU and freshness; a long one replays more input after a crash
    snapshot_seconds: int = Field(default=30, ge=1)
    #: metrics port of the first flow process (process ``i`` serves on port + ``i``)
    dataflow_metrics_port: int = 9108
    #: independent flow processes ``python -m dataflows.run`` starts, each reading its share
    #: of the co-partitioned input partitions (``p % processes == index``) with a recovery
    #: store of its own; nothing moves between them (``dataflows/partitions.py``)
    dataflow_processes: int = Field(default=1, ge=1, le=256)
    #: which share this process reads (set by ``dataflows.run`` for each process it starts)
    dataflow_process_index: int = Field(default=0, ge=0)
    #: most messages one poll of one input partition returns; a flow that fell behind reads
    #: full batches, and its per-batch work (each touched agent's Redis document, one
    #: pipeline, one produce call) is then shared by more events
    dataflow_batch_size: int = Field(default=5000, ge=1)
    #: keys of the stateful agent step; part of the recovery layout (change it only with a
    #: fresh recovery store)
    agent_shards: int = Field(default=64, ge=1)
    #: the agent join's implementation: ``native`` (``dataflows.agent_native``, compiled by
    #: ``make install``) or ``python`` (``dataflows.agent_state``, the reference it is
    #: checked against call by call). Agents restored from a recovery store keep the one
    #: that wrote them.
    agent_core: Literal["python", "native"] = "native"
    #: after a poll that did not fill a batch, wait this long before the next one
    source_poll_ms: float = Field(default=50.0, ge=0)
    #: librdkafka ``fetch.wait.max.ms`` of the flow's consumer (its default is 500)
    kafka_fetch_wait_ms: int = Field(default=100, ge=0)
    #: generation-0 threshold of the flow process's cyclic GC; 0 keeps Python's defaults
    dataflow_gc_threshold: int = Field(default=50_000, ge=0)

    # Population priors (the population process, ``python -m dataflows.population_run``).
    population_refit_every: int = Field(default=50, ge=1)
    population_refit_seconds: float = Field(default=5.0, gt=0)
    population_min_refit_seconds: float = Field(default=1.0, ge=0)
    population_min_rewards: int = Field(default=20, ge=1)
    population_max_agents: int = Field(default=5000, ge=2)
    population_max_k: int = Field(default=6, ge=1)
    population_strength: float = Field(default=4.0, ge=0, le=100)
    #: live hand-off (dataflows.prior_handoff): a fitted prior goes to the template's live
    #: agents with at least ``population_handoff_min_rewards`` own rewards, at most once per
    #: this many seconds of event time (0: only new agents get priors)
    population_handoff_seconds: float = Field(default=86400.0, ge=0)
    population_handoff_min_rewards: int = Field(default=28, ge=1)
    population_recovery_dir: str = "var/recovery-population"
    #: port of the population process's /metrics (0: no metrics server); above the flow
    #: processes' ``dataflow_metrics_port + i``
    population_metrics_port: int = Field(default=9118, ge=0, le=65535)

    # Logging: one JSON object per line (schemas.logjson) unless turned off.
    log_json: bool = True
    log_level: str = "INFO"

    # Gateway.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    auth_enabled: bool = False
    policy_cache_seconds: float = Field(default=0.25, ge=0)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    cors_origins: list[str] = Field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def keys(self) -> Keys:
        return Keys(self.key_prefix)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
