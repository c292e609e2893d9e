"""A local S3-compatible object store (moto's server) that outlives the embedded broker.

Tansu keeps its log in memory by default, so a broker restart starts empty. Pointed at an
object store (``s3://bucket/``), Tansu keeps its log there and a restarted broker on the
same store serves every record it had acknowledged, at the same offsets: the behaviour of
a Kafka broker restarting on its disk. The broker-restart test runs Tansu this way.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stack.ports import free_port, wait_for_port
from stack.processes import die_with_parent, terminate


@dataclass
class ObjectStore:
    """moto's S3 server on a loopback port holding one bucket. Call :meth:`start`."""

    bucket: str = "tansu"
    port: int = 0
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_url(self) -> str:
        """The ``--storage-engine`` URL Tansu takes."""
        return f"s3://{self.bucket}/"

    def client_env(self) -> dict[str, str]:
        """Environment that points an S3 client (Tansu's object_store) at this server."""
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "rewardflow", "AWS_SECRET_ACCESS_KEY": "rewardflow",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self, timeout: float = 30.0) -> ObjectStore:
        import httpx

        if not self.port:
            self.port = free_port()
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent())
        wait_for_port("127.0.0.1", self.port, timeout)
        resp = httpx.put(f"{self.endpoint}/{self.bucket}", timeout=10)
        if resp.status_code != 200:
            msg = f"object store at {self.endpoint}: creating bucket {self.bucket!r} gave {resp}"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        terminate(self._proc)
        self._proc = None
