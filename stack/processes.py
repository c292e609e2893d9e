"""Start the dataflow, the population process and the gateway as child processes configured
from a Settings object."""

from __future__ import annotations

import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from schemas.settings import Settings
from stack.ports import wait_for_port

_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not Linux
        return None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when this process dies
    (Linux ``PR_SET_PDEATHSIG``), so that a test or benchmark run that is SIGKILLed (a CI
    timeout, the OOM killer) leaves no broker, Redis, flow or gateway behind to skew the next
    run. None off Linux, and off the main thread: the kernel ties the signal to the *thread*
    that started the child, and a worker thread's exit must not stop a server.

    >>> import subprocess, sys
    >>> subprocess.run([sys.executable, "-c", "pass"], preexec_fn=die_with_parent(),
    ...                check=True).returncode
    0
    """
    prctl = _prctl() if sys.platform.startswith("linux") else None
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    env = dict(os.environ if base is None else base)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        env[f"RF_{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) \
            else str(value)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    env["REDIS_URL"] = settings.redis_url
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _out(log_path: Path | None) -> int | IO[bytes]:
    if log_path is None:
        return subprocess.DEVNULL
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return open(log_path, "ab")  # noqa: SIM115 - handed to the child


def _start(args: list[str], settings: Settings, log_path: Path | None
           ) -> subprocess.Popen[bytes]:
    """One of the product's processes with ``settings``: output to ``log_path`` (or nowhere),
    in its own process group (:func:`stop` signals the group), stopped if this one dies."""
    out = _out(log_path)
    try:
        return subprocess.Popen(args, env=settings_env(settings), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent())
    finally:
        if not isinstance(out, int):
            out.close()  # the child has its own copy


def start_dataflow(settings: Settings, *, workers: int = 1, recovery: bool = True,
                   processes: int | None = None,
                   log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """``python -m dataflows.run`` with ``settings`` (``processes``: co-partitioned flow
    processes, default ``settings.dataflow_processes``); returns the process."""
    args = [sys.executable, "-m", "dataflows.run", "-w", str(workers)]
    if processes is not None:
        args += ["-p", str(processes)]
    if not recovery:
        args.append("--no-recovery")
    return _start(args, settings, log_path)


def start_population(settings: Settings, *, recovery: bool = True,
                     log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """``python -m dataflows.population_run`` (template priors) with ``settings``; it serves
    its metrics on ``settings.population_metrics_port`` (passed as ``RF_*`` like every
    setting; 0: none)."""
    args = [sys.executable, "-m", "dataflows.population_run"]
    if not recovery:
        args.append("--no-recovery")
    return _start(args, settings, log_path)


def start_gateway(settings: Settings, *, workers: int = 1, log_path: Path | None = None,
                  timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """uvicorn serving the gateway on ``settings.gateway_host:gateway_port``."""
    args = [sys.executable, "-m", "uvicorn", "--factory", "gateway.main:create_app",
            "--host", settings.gateway_host, "--port", str(settings.gateway_port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    proc = _start(args, settings, log_path)
    try:
        wait_for_port(settings.gateway_host, settings.gateway_port, timeout)
    except TimeoutError:
        proc.kill()
        raise
    return proc


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM a child server (broker, Redis, object store), SIGKILL it after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGINT the process group (Bytewax and uvicorn shut down cleanly on it), then SIGTERM,
    then SIGKILL, waiting up to ``timeout`` seconds after each."""
    if proc is None or proc.poll() is not None:
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is not None:
            break
    proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group at once (crash tests)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()
