"""The rewardflow dataflow: read + parse + partition clock -> agent shards -> Kafka + Redis.

``build_flow(source, kafka_sink, redis_sink, settings)`` wires the input step
(:mod:`dataflows.source`) and one stateful step keyed by agent shard
(:mod:`dataflows.agent_step`); tests run it with ``TestingSource``/``TestingSink`` under
``run_main`` and a 2-worker ``cluster_main``, production with the lean Kafka source and the
sinks in :mod:`dataflows.sinks` (see :mod:`dataflows.run`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, Source
from bytewax.outputs import FixedPartitionedSink, Sink

from dataflows.agent_docs import snapshot_item
from dataflows.agent_step import AgentLogic, ShardLogic
from dataflows.join_types import JoinConfig
from dataflows.reward_model import RewardModel, load_reward_model
from dataflows.sinks import local_key
from dataflows.source import ClockedSource, TickConfig
from schemas.settings import Settings

__all__ = ["AgentLogic", "build_flow", "join_config", "snapshot_item"]

Clock = Callable[[], float]
log = logging.getLogger("rewardflow.dataflow")


def join_config(settings: Settings, model: RewardModel | None = None) -> JoinConfig:
    """The join configuration from settings (and the reward model they point at)."""
    return JoinConfig(
        reward_model=model or load_reward_model(settings.reward_model_path),
        window=settings.reward_window_seconds,
        lateness=settings.allowed_lateness_seconds,
        idle=settings.idle_watermark_seconds,
        dedup_horizon=settings.dedup_horizon_seconds,
        history_length=settings.history_length,
        half_life=settings.relationship_half_life_seconds,
        epsilon_floor=settings.epsilon_floor,
        epsilon_decay_count=settings.epsilon_decay_count,
        every_n_rewards=settings.policy_every_n_rewards,
        policy_interval=settings.policy_min_interval_seconds,
        write_every=settings.projection_write_seconds,
        core=settings.agent_core,
    )


def _is_event(item: tuple[str, Any]) -> bool:
    """An event or a watermark tick (for the agent step), not a dead letter."""
    return item[1].__class__ is not KafkaSinkMessage


def _is_kafka(item: tuple[str, Any]) -> bool:
    return item[1].__class__ is KafkaSinkMessage


def _values(kvs: list[tuple[str, Any]]) -> list[Any]:
    return [kv[1] for kv in kvs]


def _output(step_id: str, up: Any, sink: Sink[Any]) -> None:
    """``(key, item)`` pairs to ``sink``: keyed for this process's own partition of a
    fixed-partitioned sink (the production ones, see :func:`dataflows.sinks.local_key`),
    unkeyed for a dynamic one (``TestingSink``)."""
    if isinstance(sink, FixedPartitionedSink):
        key = local_key()
        up = op.flat_map_batch(f"{step_id}_local", up,
                               lambda kvs: [(key, kv[1]) for kv in kvs])
    else:
        up = op.flat_map_batch(f"{step_id}_unkey", up, _values)
    op.output(step_id, up, sink)


def build_flow(
    source: Source[Any],
    kafka_sink: Sink[Any],
    redis_sink: Sink[Any],
    settings: Settings,
    *,
    reward_model: RewardModel | None = None,
    clock: Clock = time.time,
    flow_id: str = "rewardflow",
) -> Dataflow:
    """Wire the dataflow. ``kafka_sink`` gets ``KafkaSinkMessage``s (DLQ, rewards, policies);
    ``redis_sink`` gets per-agent snapshots (:func:`snapshot_item`); a fixed-partitioned
    sink gets them as ``(shard key, item)`` pairs."""
    cfg = join_config(settings, reward_model)
    topics = settings.topics

    def builder(resume: dict[str, bytes] | None) -> ShardLogic:
        return ShardLogic(cfg, topics, clock, resume)

    flow = Dataflow(flow_id)
    if not isinstance(source, FixedPartitionedSource):
        msg = "build_flow needs a fixed-partitioned source of Kafka messages"
        raise TypeError(msg)
    ticks = TickConfig(settings.watermark_tick_ms / 1000, settings.idle_watermark_seconds,
                       [topics.agents])
    parsed = op.input("kafka_in", flow, ClockedSource(source, topics.dlq,
                                                         settings.agent_shards, ticks))
    split = op.branch("valid", parsed, _is_event)
    results = op.stateful_batch("agent", split.trues, builder)
    out = op.branch("route", results, _is_kafka)
    _output("kafka_out", op.merge("kafka_merge", split.falses, out.trues), kafka_sink)
    _output("redis_out", out.falses, redis_sink)
    return flow
