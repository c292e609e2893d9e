"""Run the dataflow against Kafka and Redis with Bytewax recovery.

``python -m dataflows.run [-w WORKERS] [-p PROCESSES]`` creates the recovery store if needed
and runs ``python -m bytewax.run "dataflows.run:get_flow()" -r DIR -s SECS -b 0``. With
several processes (``-p`` or ``RF_DATAFLOW_PROCESSES``) it runs one such dataflow per share
of the co-partitioned input partitions, each with its store under ``DIR/proc-I-of-N``, and
stops them all when one exits (:mod:`dataflows.partitions`); ``-i I`` runs only share ``I``
(one host of several). Settings come from the
environment (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``RF_*``).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bytewax.dataflow import Dataflow
from confluent_kafka import TopicPartition

from dataflows.flow import build_flow
from dataflows.kafka_sink import TimedKafkaSink
from dataflows.kafka_source import LeanKafkaSource
from dataflows.metrics import POSITIONS, flow_metrics
from dataflows.partitions import Share, check_store_layout, store_dir
from dataflows.recovery_store import ensure_recovery_store, open_cold_store, recovery_dir
from dataflows.sinks import RedisProjectionSink
from dataflows.supervise import catch_stop_signals, supervise
from schemas.settings import Settings, get_settings

log = logging.getLogger("rewardflow.dataflow")
def _lag_monitor(settings: Settings, interval: float = 5.0) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": "rewardflow-lag-monitor", "enable.auto.commit": False})
    gauge = flow_metrics().consumer_lag
    while True:
        for (topic, part), pos in list(POSITIONS.items()):
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, part), timeout=2)
                gauge.labels(topic, str(part)).set(max(0, high - pos))
            except Exception:  # noqa: BLE001 - a metric must never kill the flow
                log.debug("lag lookup failed for %s/%s", topic, part)
        time.sleep(interval)


# RF_KAFKA_FETCH_WAIT_MS (100): how long the broker may hold a fetch that has not much new
# (librdkafka's default is 500 ms). Measured on the embedded Tansu broker with a steady 9k
# msgs/s stream: 500 ms gives a consume latency of p50 126 ms / p99 267 ms, 100 ms gives
# 33 / 62 ms for about 10% more broker CPU, 10 ms gives 8 / 17 ms for 55% more (Tansu
# answers many more small fetches); a quiet partition's first message took 222 ms with
# 500 ms.


# RF_DATAFLOW_GC_THRESHOLD (50,000): generation-0 threshold of the cyclic GC in the flow
# process (CPython's default is 700), and every object a collection finds alive is frozen
# (``gc.freeze``: never walked again).
# The flow allocates a few hundred short-lived objects per event, freed by reference
# counting, and creates almost no cycles; what a collection walks is what is still alive:
# the agents' state. At CPython's defaults the older generations walk every agent's state
# over and over (~25% of the flow's CPU). With only a high threshold (1,000,000, until
# 2026-12-05) collections were rare but each walked up to a million live objects: a pause
# of 0.8 s in each flow process at 20k events/s, the largest freshness spike after the epoch
# snapshot. Freezing the survivors of every collection keeps each pause to the objects
# allocated since the last one (at 50,000: under 0.11 s, seen in ``bench.pipeline``), and
# the older generations empty. The price: a cycle still alive at one collection and dropped
# later is never collected (reference counting frees everything else). 0 keeps Python's
# defaults.
def tune_gc(gen0: int) -> None:
    """Freeze what startup allocated; collect young objects only, and freeze survivors."""
    import gc

    if gen0 <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, 20, 100)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """``gc.callbacks`` hook: after a collection, move what it kept to the permanent
    generation."""
    if phase == "stop":
        import gc

        gc.freeze()


def get_flow() -> Dataflow:
    """The production dataflow (entry point for ``bytewax.run``)."""
    settings = get_settings()
    if settings.log_json:
        from schemas.logjson import configure_logging

        configure_logging(settings.log_level, static={"service": "dataflow"})
    if not settings.kafka_bootstrap_servers or not settings.redis_url:
        msg = "KAFKA_BOOTSTRAP_SERVERS and REDIS_URL must be set to run the dataflow"
        raise RuntimeError(msg)
    from prometheus_client import start_http_server

    share = Share(settings.dataflow_process_index, settings.dataflow_processes)
    # co-partitioned processes are each a dataflow of their own; a Bytewax cluster's
    # processes (``bytewax.run -i/-a``) are told apart by BYTEWAX_PROCESS_ID
    proc = share.index if not share.alone else int(os.environ.get("BYTEWAX_PROCESS_ID", "0")
                                                    or 0)
    try:
        start_http_server(settings.dataflow_metrics_port + proc, addr="127.0.0.1"
                          if settings.gateway_host == "127.0.0.1" else "0.0.0.0",  # noqa: S104
                          registry=flow_metrics().registry)
    except OSError as exc:
        log.warning("metrics port %s busy: %s", settings.dataflow_metrics_port + proc, exc)
    threading.Thread(target=_lag_monitor, args=(settings,), daemon=True).start()
    # A position past the end of the log (a restarted in-memory broker, a truncated topic)
    # restarts from the earliest offset: replayed events are dropped as duplicates or late,
    # while skipping to the end would lose whatever was produced since.
    source = LeanKafkaSource([settings.kafka_bootstrap_servers], list(settings.topics.inputs),
                             tail=True, batch_size=settings.dataflow_batch_size,
                             raise_on_errors=False,
                             poll_every=settings.source_poll_ms / 1000,
                             share=share, partitioner=settings.kafka_partitioner,
                             add_config={"auto.offset.reset": "earliest",
                                         "fetch.wait.max.ms": str(settings.kafka_fetch_wait_ms)})
    flow = build_flow(
        source,
        TimedKafkaSink(settings.kafka_bootstrap_servers),
        RedisProjectionSink(settings.redis_url, settings.keys, settings.projection_ttl_seconds),
        settings,
    )
    open_cold_store(recovery_dir(sys.argv), proc, grace=2 * settings.snapshot_seconds)
    tune_gc(settings.dataflow_gc_threshold)
    log.info("dataflow ready: topics %s on %s, %d agent shards, batch %d, process %d of %d",
             ",".join(settings.topics.inputs), settings.kafka_bootstrap_servers,
             settings.agent_shards, settings.dataflow_batch_size, share.index + 1,
             share.processes)
    return flow


def _command(settings: Settings, workers: int, store: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "bytewax.run", "dataflows.run:get_flow()", "-w", str(workers)]
    if store is not None:
        ensure_recovery_store(store)
        cmd += ["-r", str(store), "-s", str(max(1, round(settings.snapshot_seconds))), "-b", "0"]
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataflows.run", description=__doc__)
    parser.add_argument("-w", "--workers", type=int, default=1,
                        help="worker threads in each process (prefer processes, see README)")
    parser.add_argument("-p", "--processes", type=int, default=None,
                        help="co-partitioned flow processes (default: RF_DATAFLOW_PROCESSES)")
    parser.add_argument("-i", "--index", type=int, default=None,
                        help="run only this share of the N (one host of several)")
    parser.add_argument("--no-recovery", action="store_true")
    args = parser.parse_args(argv)
    settings = get_settings()
    n = args.processes or settings.dataflow_processes
    if args.index is not None and not 0 <= args.index < n:
        parser.error(f"--index {args.index} is outside 0..{n - 1}")
    ports = range(settings.dataflow_metrics_port, settings.dataflow_metrics_port + n)
    if settings.population_metrics_port in ports:
        parser.error(f"flow processes serve metrics on ports {ports.start}-{ports.stop - 1}, "
                     f"which takes RF_POPULATION_METRICS_PORT={settings.population_metrics_port}"
                     "; move one of them")
    base = None if args.no_recovery else Path(settings.recovery_dir)
    if base is not None:
        try:
            check_store_layout(base, n)
        except ValueError as exc:
            print(f"rewardflow dataflow: {exc}", file=sys.stderr)
            return 2
    stopping = catch_stop_signals()  # before the children start: they inherit what is ignored
    children = []
    if n == 1:  # supervised too: a SIGTERM to this process alone must reach the flow
        children.append(subprocess.Popen(_command(settings, args.workers, base)))
    else:
        for i in range(n) if args.index is None else [args.index]:
            share = Share(i, n)
            env = {**os.environ, "RF_DATAFLOW_PROCESSES": str(n),
                   "RF_DATAFLOW_PROCESS_INDEX": str(i)}
            store = store_dir(base, share) if base is not None else None
            children.append(subprocess.Popen(_command(settings, args.workers, store),
                                             env=env))
    return supervise(children, stopping)


if __name__ == "__main__":
    raise SystemExit(main())
