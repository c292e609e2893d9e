"""Loopback port helpers."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until ``host:port`` accepts connections; raise ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                msg = f"nothing listening on {host}:{port} after {timeout}s"
                raise TimeoutError(msg) from None
            time.sleep(0.05)


def port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 0.3).close()
        return True
    except OSError:
        return False
