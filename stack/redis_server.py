"""A redis-server child process for tests and the embedded stack."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from stack.ports import free_port, wait_for_port
from stack.processes import die_with_parent, terminate


@dataclass
class RedisServer:
    """redis-server on a loopback port, with AOF under ``data_dir`` when given."""

    port: int = 0
    data_dir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            msg = ("redis-server is not on PATH: install it (apt-get install redis-server) "
                   "or set REDIS_URL to a reachable Redis")
            raise RuntimeError(msg)
        if not self.port:
            self.port = free_port()
        args = [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--appendonly", "yes", "--appendfsync", "everysec",
                     "--dir", str(self.data_dir.resolve())]
        else:
            args += ["--appendonly", "no"]
        # its own session, like the broker's: stopped last, by whoever started it
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=die_with_parent())
        wait_for_port("127.0.0.1", self.port, timeout)
        self._wait_loaded(timeout)
        return self

    def _wait_loaded(self, timeout: float) -> None:
        """Block until Redis answers PING (it refuses commands while loading its AOF)."""
        import time

        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.BusyLoadingError, redis.ConnectionError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        terminate(self._proc)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
