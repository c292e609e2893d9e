"""Where a flow process keeps its recovery state: Bytewax's store and, beside it, the cold
store (:mod:`dataflows.cold_store`). IO at the edge: :func:`dataflows.run.get_flow` calls
these once at start."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from dataflows.cold_store import ColdStore, activate

log = logging.getLogger("rewardflow.dataflow")


def ensure_recovery_store(path: Path, partitions: int = 1) -> None:
    """Create a Bytewax recovery store at ``path`` unless one exists."""
    if path.exists() and any(path.iterdir()):
        return
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(path), str(partitions)],
                   check=True)


def recovery_dir(argv: list[str]) -> Path | None:
    """The recovery directory ``bytewax.run`` was started with (``-r DIR``,
    ``--recovery-directory DIR`` or ``BYTEWAX_RECOVERY_DIRECTORY``), or None.

    >>> recovery_dir(["run.py", "dataflows.run:get_flow()", "-r", "var/rec", "-s", "30"])
    PosixPath('var/rec')
    >>> recovery_dir(["run.py", "x", "--recovery-directory=/r"]), recovery_dir(["run.py"])
    (PosixPath('/r'), None)
    """
    for i, arg in enumerate(argv):
        if arg in ("-r", "--recovery-directory") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--recovery-directory="):
            return Path(arg.split("=", 1)[1])
    env = os.environ.get("BYTEWAX_RECOVERY_DIRECTORY")
    return Path(env) if env else None


def open_cold_store(directory: Path | None, proc: int, grace: float) -> ColdStore | None:
    """With recovery on (``directory``), open and activate flow process ``proc``'s store in
    its recovery directory; without, deactivate (agent state stays inline in snapshots)."""
    if directory is None:
        activate(None)
        return None
    store = ColdStore(directory / f"cold-{proc}.db", grace=grace)
    store.open()
    activate(store)
    log.info("cold store %s: %d pieces, %.1f MB", store.path, store.pieces, store.bytes / 1e6)
    return store
