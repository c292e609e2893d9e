"""The gateway is stateless: several uvicorn workers on one port serve one consistent API, and
any worker's /metrics reports the requests of all of them (prometheus-client multiprocess
mode, as the Docker image runs it)."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from stack.ports import free_port, wait_for_port
from stack.processes import settings_env, stop
from tests.dataflows.kafka_io import consume_all, wait_until
from tests.ops.promtool import check_metrics

pytestmark = pytest.mark.integration

SPEC = {"persona": {"name": "Ava"}, "actions": ["ask", "joke", "suggest"],
        "context_keys": ["room"]}
DECISIONS = 60


def _decisions_total(text: str) -> float:
    rows = re.findall(r"^rewardflow_gateway_decisions_total\{[^}]*\} (\S+)$", text, re.M)
    return sum(float(v) for v in rows)


@pytest.fixture()
def two_workers(settings, tmp_path):
    port = free_port()
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    env = settings_env(settings.model_copy(update={"gateway_port": port}))
    env["PROMETHEUS_MULTIPROC_DIR"] = str(mp_dir)
    log = open(tmp_path / "gateway.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "gateway.main:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--no-access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port("127.0.0.1", port, 30)
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, 0.2)
        yield base, mp_dir
    finally:
        stop(proc)
        log.close()


def test_two_workers_share_state_and_report_metrics_of_both(two_workers, settings):
    base, mp_dir = two_workers
    assert httpx.put(f"{base}/v1/agents/ava", json=SPEC).status_code == 201

    def decide(i: int) -> httpx.Response:  # a new connection each time
        return httpx.post(f"{base}/v1/agents/ava/decide",
                          json={"user_id": f"u{i}", "context": {"room": "dm"}})

    with ThreadPoolExecutor(8) as pool:  # concurrent, so both workers accept connections
        responses = list(pool.map(decide, range(DECISIONS)))
    assert all(r.status_code == 200 for r in responses)  # every worker finds the agent
    ids = [r.json()["decision_id"] for r in responses]
    assert len(set(ids)) == DECISIONS
    workers = {p.stem.rsplit("_", 1)[-1] for p in mp_dir.glob("counter_*.db")}
    assert len(workers) == 2, f"requests reached workers {workers}"
    for _ in range(4):  # whichever worker answers the scrape reports both workers' counts
        text = httpx.get(f"{base}/metrics").text
        assert _decisions_total(text) == DECISIONS
    check_metrics(text)
    logged = consume_all(settings.kafka_bootstrap_servers, settings.topics.decisions)
    assert sorted(d["decision_id"] for d in logged) == sorted(ids)
