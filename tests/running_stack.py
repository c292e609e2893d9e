"""The dataflow, optionally the population process, and the gateway as child processes, for
tests that drive the whole loop over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.client import RewardflowClient
from schemas.settings import Settings
from stack.ports import wait_for_port
from stack.processes import start_dataflow, start_gateway, start_population, stop
from tests.dataflows.kafka_io import wait_until


@contextmanager
def running_stack(s: Settings, tmp_path: Path, population: bool = False
                  ) -> Iterator[RewardflowClient]:
    """Start the processes on ``s`` (logs under ``tmp_path``), yield a ready client, stop all."""
    flow = start_dataflow(s, log_path=tmp_path / "flow.log")
    pop = start_population(s, log_path=tmp_path / "population.log") if population else None
    gw = None
    client = None
    try:
        wait_for_port("127.0.0.1", s.dataflow_metrics_port, timeout=30)
        gw = start_gateway(s, log_path=tmp_path / "gateway.log")
        client = RewardflowClient(f"http://{s.gateway_host}:{s.gateway_port}")
        wait_until(client.ready, timeout=30, interval=0.2)
        yield client
    finally:
        if client is not None:
            client.close()
        stop(gw)
        stop(pop)
        stop(flow)
