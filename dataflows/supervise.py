"""Supervise a launcher's flow processes (``python -m dataflows.run`` and
``dataflows.population_run`` start ``bytewax.run`` children and wait in here).

A launcher that only waits for its child (``subprocess.call``) dies on a SIGTERM of its own
and leaves the child running; a supervised child is stopped with it. The launcher catches
SIGINT and SIGTERM *before* it starts the children (:func:`catch_stop_signals`): a handled
signal starts as the default in a child, while an ignored one stays ignored, and a launcher
started as a background job inherits SIGINT ignored, which its Bytewax processes would
inherit in turn and never see a Ctrl-C.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time

log = logging.getLogger("rewardflow.supervise")  # the flow and the population launchers


def catch_stop_signals() -> list[int]:
    """Record SIGINT and SIGTERM from now on instead of dying of them; the list fills with
    the signals received. Call it before starting the children.

    >>> import os
    >>> before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    >>> stopping = catch_stop_signals()
    >>> os.kill(os.getpid(), signal.SIGTERM)
    >>> stopping == [signal.SIGTERM]
    True
    >>> for s, handler in before.items():
    ...     _ = signal.signal(s, handler)
    """
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return stopping


def supervise(children: list[subprocess.Popen[bytes]], stopping: list[int],
              grace: float = 5.0) -> int:
    """Wait for the flow processes; when one exits, stop the others and return its non-zero
    exit code; when this process is told to stop (``stopping``, from
    :func:`catch_stop_signals`), stop them all and return 0.

    The processes share this one's process group, so a signal to the group (Ctrl-C,
    :func:`stack.processes.stop`) reaches each of them directly: they get ``grace`` seconds
    to finish on their own before SIGINT, SIGTERM and SIGKILL are sent in turn. A signal to
    this process alone (``kill PID``; the parent-death signal of a test or benchmark that
    was killed) reaches them that way after the grace."""

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
    if not stopping:  # a child ended on its own (a stop request ends them with codes too)
        for c in children:
            if c.poll() is not None and c.returncode:
                log.error("Bytewax process %s exited with %s; stopping the others", c.pid,
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
