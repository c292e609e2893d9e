"""Supervise a launcher's flow processes (``python -m dataflows.run`` and
``dataflows.population_run`` start ``bytewax.run`` children and wait in here).

A launcher that only waits for its child (``subprocess.call``) dies on a SIGTERM of its own
and leaves the child running; a supervised child is stopped with it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time

log = logging.getLogger("rewardflow.dataflow")


def supervise(children: list[subprocess.Popen[bytes]], grace: float = 5.0) -> int:
    """Wait for the flow processes; when one exits, or this process is told to stop, stop
    the others and return the first non-zero exit code.

    The processes share this one's process group, so a signal to the group (Ctrl-C,
    :func:`stack.processes.stop`) reaches each of them directly: they get ``grace`` seconds
    to finish on their own before SIGINT, SIGTERM and SIGKILL are sent in turn. A signal to
    this process alone (``kill PID``; the parent-death signal of a test or benchmark that
    was killed) reaches them that way after the grace."""
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    def wait_all(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(c.poll() is not None for c in children):
                return True
            time.sleep(0.05)
        return False

    while not stopping and all(c.poll() is None for c in children):
        time.sleep(0.2)
    code = 0
    for c in children:
        if c.poll() is not None and c.returncode:
            log.error("flow process %s exited with %s; stopping the others", c.pid,
                      c.returncode)
            code = code or c.returncode
    if stopping and wait_all(grace):
        return code
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        for c in children:
            if c.poll() is None:
                c.send_signal(sig)
        if wait_all(grace):
            break
    return code
