"""Run the population flow (:mod:`dataflows.population_flow`) against Kafka and Redis.

``python -m dataflows.population_run [--no-recovery]`` creates its recovery store
(``RF_POPULATION_RECOVERY_DIR``) if needed and runs ``python -m bytewax.run
"dataflows.population_run:get_flow()"``. It reads the agents and policies topics from the
earliest offset (Bytewax keeps positions in the recovery snapshot) and writes each
template's prior to ``rf:{tenant}:prior:{template}`` (:meth:`schemas.keys.Keys.prior`).
Prometheus metrics (:mod:`dataflows.population_metrics`) are served on
``RF_POPULATION_METRICS_PORT`` (9118; 0 turns the server off). Settings come from the
environment like the main flow's (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``RF_*``).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bytewax.connectors.kafka import KafkaSink, KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from redis import Redis

from dataflows.population_flow import build_flow
from dataflows.population_metrics import population_metrics
from dataflows.supervise import catch_stop_signals, supervise
from schemas.keys import Keys
from schemas.priors import PriorDocument
from schemas.settings import Settings, get_settings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger("rewardflow.population")

#: KEYS: prior; ARGV: version, doc. Writes only a newer version (replays are no-ops).
GUARDED_PRIOR_WRITE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and type(doc) == 'table' and tonumber(doc['version']) and
     tonumber(doc['version']) >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class _PriorPartition(StatelessSinkPartition[Any]):
    def __init__(self, url: str, keys: Keys) -> None:
        self.r = Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self.keys = keys
        self.script = self.r.register_script(GUARDED_PRIOR_WRITE)

    def write_batch(self, items: list[PriorDocument]) -> None:
        newest: dict[str, PriorDocument] = {}
        for doc in items:  # coalesce: only the newest version of each template matters
            key = self.keys.prior(doc.tenant, doc.template)
            if key not in newest or doc.version > newest[key].version:
                newest[key] = doc
        if not newest:
            return
        pipe = self.r.pipeline(transaction=False)
        for key, doc in newest.items():
            self.script(keys=[key], args=[doc.version, doc.model_dump_json()], client=pipe)
        written = pipe.execute()
        for (key, doc), ok in zip(newest.items(), written, strict=True):
            if ok:
                log.info("wrote %s v%d (%d archetypes)", key, doc.version, len(doc.archetypes))

    def close(self) -> None:
        self.r.close()


class PriorRedisSink(DynamicSink[Any]):
    """Writes :class:`PriorDocument`\\ s, each guarded by its version (idempotent)."""

    def __init__(self, url: str, keys: Keys) -> None:
        self.url = url
        self.keys = keys

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PriorPartition:
        return _PriorPartition(self.url, self.keys)


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Serve :func:`population_metrics` on ``population_metrics_port`` (plus the Bytewax
    process id) in a daemon thread, on loopback unless the gateway host is not, as the main
    flow does. Returns the server; ``None`` when the port is 0 (off) or busy (logged)."""
    if not settings.population_metrics_port:
        return None
    from prometheus_client import start_http_server

    port = settings.population_metrics_port + int(os.environ.get("BYTEWAX_PROCESS_ID", "0") or 0)
    addr = "127.0.0.1" if settings.gateway_host == "127.0.0.1" else "0.0.0.0"  # noqa: S104
    try:
        server, _ = start_http_server(port, addr=addr, registry=population_metrics().registry)
    except OSError as exc:
        log.warning("metrics port %s busy: %s", port, exc)
        return None
    log.info("population metrics on http://%s:%d/metrics", addr, port)
    return server


def get_flow(settings: Settings | None = None) -> Dataflow:
    """The production population flow (entry point for ``bytewax.run``)."""
    settings = settings or get_settings()
    if settings.log_json:
        from schemas.logjson import configure_logging

        configure_logging(settings.log_level, static={"service": "population"})
    if not settings.kafka_bootstrap_servers or not settings.redis_url:
        msg = "KAFKA_BOOTSTRAP_SERVERS and REDIS_URL must be set to run the population flow"
        raise RuntimeError(msg)
    serve_metrics(settings)
    topics = settings.topics
    source = KafkaSource([settings.kafka_bootstrap_servers], [topics.agents, topics.policies],
                         tail=True, batch_size=settings.dataflow_batch_size,
                         raise_on_errors=False, add_config={"auto.offset.reset": "earliest"})
    # live hand-offs are keyed by agent: produced with the partitioner the flow expects
    sink = KafkaSink([settings.kafka_bootstrap_servers], None,
                     add_config={"partitioner": settings.kafka_partitioner})
    return build_flow(source, sink, PriorRedisSink(settings.redis_url, settings.keys), settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-recovery", action="store_true")
    args = parser.parse_args(argv)
    settings = get_settings()
    cmd = [sys.executable, "-m", "bytewax.run", "dataflows.population_run:get_flow()"]
    if not args.no_recovery:
        from dataflows.recovery_store import ensure_recovery_store

        store = Path(settings.population_recovery_dir)
        ensure_recovery_store(store)
        cmd += ["-r", str(store), "-s", str(max(1, round(settings.snapshot_seconds))), "-b", "0"]
    stopping = catch_stop_signals()  # before the child starts: it inherits what is ignored
    return supervise([subprocess.Popen(cmd)], stopping)  # noqa: S603 - our own module


if __name__ == "__main__":
    raise SystemExit(main())
