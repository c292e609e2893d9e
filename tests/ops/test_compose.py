"""docker/compose.yaml, the Dockerfile and the container helpers.

There is no Docker engine here, but ``docker compose config`` needs none: it validates the file
against the Compose specification. ``docker/tools/ensure-compose.sh`` provides the CLI.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
TOOLS_BIN = Path(os.environ.get("RF_TOOLS_DIR", ROOT / "var" / "tools" / "bin"))


@lru_cache(maxsize=1)
def compose_cmd() -> tuple[str, ...]:
    """``docker compose`` if the plugin works, else the docker-compose v2 binary (installed)."""
    proc = subprocess.run(
        ["/bin/bash", str(DOCKER / "tools" / "ensure-compose.sh"), str(TOOLS_BIN)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        msg = f"no Docker Compose v2 CLI and ensure-compose.sh failed:\n{proc.stdout}{proc.stderr}"
        raise RuntimeError(msg)
    return tuple(lines[-1].split())


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_cmd(), "-f", str(COMPOSE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose file as Compose itself resolves it (anchors, defaults, profiles)."""
    proc = compose("--profile", "sim", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    import json

    return json.loads(proc.stdout)


def test_compose_file_is_valid_for_docker_compose() -> None:
    proc = compose("config", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = compose("--profile", "sim", "config", "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_services_and_profiles(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {
        "kafka",
        "redis",
        "create-topics",
        "dataflow",
        "population",
        "gateway",
        "prometheus",
        "grafana",
        "simulator",
    }
    assert services["simulator"]["profiles"] == ["sim"]
    default = compose("config", "--services")
    assert default.returncode == 0, default.stderr
    assert "simulator" not in default.stdout.split()


def test_kafka_is_single_node_kraft_with_healthcheck(resolved: dict[str, Any]) -> None:
    k = resolved["services"]["kafka"]
    assert k["image"].startswith("apache/kafka:")
    env = k["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert len(env["CLUSTER_ID"]) == 22  # base64url UUID, as kafka-storage format wants
    assert k["healthcheck"]["test"]
    assert any(v["target"] == "/var/lib/kafka/data" for v in k["volumes"])


def test_redis_uses_aof_on_a_volume_with_healthcheck(resolved: dict[str, Any]) -> None:
    r = resolved["services"]["redis"]
    cmd = r["command"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert any(v["target"] == "/data" and v["type"] == "volume" for v in r["volumes"])
    assert "redis-cli" in " ".join(r["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["gateway", "dataflow"])
def test_app_services_wiring(resolved: dict[str, Any], name: str) -> None:
    s = resolved["services"][name]
    env = s["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["RF_RECOVERY_DIR"] == "/data/recovery"
    deps = s["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps["create-topics"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(s["healthcheck"]["test"])
    assert s["build"]["dockerfile"] == "docker/Dockerfile"
    assert Path(s["build"]["context"]).resolve() == ROOT


def test_dataflow_metrics_are_reachable_from_prometheus(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["dataflow"]["environment"]
    assert env["RF_DATAFLOW_METRICS_PORT"] == "9108"
    # else dataflows.run binds its metrics server to loopback
    assert env["RF_GATEWAY_HOST"] == "0.0.0.0"  # noqa: S104


def test_population_metrics_are_reachable_from_prometheus(resolved: dict[str, Any]) -> None:
    s = resolved["services"]["population"]
    env = s["environment"]
    assert env["RF_POPULATION_METRICS_PORT"] == "9118"
    assert env["RF_GATEWAY_HOST"] == "0.0.0.0"  # noqa: S104
    assert "9118" in s["expose"]
    assert "http://127.0.0.1:9118/" in " ".join(s["healthcheck"]["test"])


def test_dataflow_recovery_store_is_on_a_volume(resolved: dict[str, Any]) -> None:
    vols = resolved["services"]["dataflow"]["volumes"]
    assert any(v["type"] == "volume" and "/data/recovery".startswith(v["target"]) for v in vols)


def test_one_shot_topic_job_and_monitoring_mounts(resolved: dict[str, Any]) -> None:
    s = resolved["services"]
    assert s["create-topics"]["command"] == ["create-topics"]
    assert s["create-topics"]["restart"] == "no"
    prom_mounts = {v["target"]: v["source"] for v in s["prometheus"]["volumes"]}
    assert Path(prom_mounts["/etc/prometheus"]) == DOCKER / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in s["prometheus"]["command"]
    ports = {
        p["target"]: p["published"]
        for svc in ("gateway", "prometheus", "grafana")
        for p in s[svc]["ports"]
    }
    assert ports == {8000: "8000", 9090: "9090", 3000: "3000"}


def test_dockerfile_roles_and_files() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for src in line.split()[1:-1]:
                if not src.startswith("--") and src != ".":
                    assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    entry = (DOCKER / "entrypoint.sh").read_text()
    assert "uvicorn --factory gateway.main:create_app" in entry
    assert "--host 0.0.0.0" in entry and "python -m dataflows.run" in entry
    assert "python -m simulator.demo --base-url" in entry
    sh = shutil.which("sh")
    assert sh
    proc = subprocess.run(
        [sh, "-n", str(DOCKER / "entrypoint.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_uvicorn_log_config_builds_json_formatter() -> None:
    import logging.config

    cfg = yaml.safe_load((DOCKER / "logging.yaml").read_text())
    level = logging.getLogger().level
    logging.config.dictConfig(cfg)  # imports schemas.logjson.JsonFormatter
    try:
        handler = logging.getLogger("uvicorn.access").handlers[0]
        assert type(handler.formatter).__name__ == "JsonFormatter"
    finally:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).handlers.clear()
        root = logging.getLogger()
        for h in list(root.handlers):
            if type(h.formatter).__name__ == "JsonFormatter":
                root.removeHandler(h)
        root.setLevel(level)


# --- container helpers, run for real -----------------------------------------------------------


@pytest.fixture()
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/readyz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_healthcheck_script_follows_http_status(http_server: str) -> None:
    script = str(DOCKER / "healthcheck.py")
    ok = subprocess.run(
        [sys.executable, script, f"{http_server}/readyz"],
        check=False,
        capture_output=True,
        timeout=10,
    )
    bad = subprocess.run(
        [sys.executable, script, f"{http_server}/notready"],
        check=False,
        capture_output=True,
        timeout=10,
    )
    assert (ok.returncode, bad.returncode) == (0, 1)


@pytest.mark.integration
def test_create_topics_job_creates_every_topic_idempotently(broker: Any) -> None:
    from confluent_kafka.admin import AdminClient

    from schemas.topics import Topics

    prefix = f"ops{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "RF_TOPIC_PREFIX": prefix,
        "RF_TOPIC_PARTITIONS": "3",
        "PYTHONPATH": str(ROOT),
    }
    for _ in range(2):  # the second run finds them all and still succeeds
        proc = subprocess.run(
            [sys.executable, str(DOCKER / "create_topics.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("exists") == len(Topics(prefix).all)
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    for topic in Topics(prefix).all:
        assert topic in md.topics
        assert len(md.topics[topic].partitions) == 3
