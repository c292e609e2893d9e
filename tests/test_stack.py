"""The fixtures start a real broker and a real Redis."""

from __future__ import annotations

import io

from confluent_kafka import Consumer, Producer, TopicPartition


def test_broker_round_trip(settings):
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    p.produce(settings.topics.signals, key=b"a1", value=b"hello")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "x",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(settings.topics.signals, i, 0) for i in range(2)])
    got = []
    for _ in range(50):
        got += [m.value() for m in c.consume(10, 0.2) if m.error() is None]
        if got:
            break
    c.close()
    assert got == [b"hello"]


def test_redis_round_trip(settings, redis_client):
    key = settings.keys.policy("default", "a1")
    redis_client.set(key, "v")
    assert redis_client.get(key) == "v"


_PARENT = """
import sys, time
from pathlib import Path
from schemas.settings import Settings
from stack.broker import EmbeddedBroker, create_topics
from stack.ports import free_port, wait_for_port
from stack.processes import start_dataflow, start_population
from stack.redis_server import RedisServer

b, r = EmbeddedBroker().start(), RedisServer().start()
s = Settings(kafka_bootstrap_servers=b.bootstrap, redis_url=r.url, topic_prefix="orphan",
             key_prefix="orphan", topic_partitions=1, dataflow_metrics_port=free_port(),
             population_metrics_port=free_port())
create_topics(b.bootstrap, s.topics.all, partitions=1)
flow = start_dataflow(s, processes=1, recovery=False, log_path=Path(sys.argv[1]) / "flow.log")
pop = start_population(s, recovery=False, log_path=Path(sys.argv[1]) / "population.log")
wait_for_port("127.0.0.1", s.dataflow_metrics_port, 60)
wait_for_port("127.0.0.1", s.population_metrics_port, 60)
print(b._proc.pid, r._proc.pid, flow.pid, pop.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def test_a_killed_parent_leaves_no_servers_behind(tmp_path):
    """SIGKILL a process that started a broker, Redis, the flow and the population process (as
    a CI timeout kills a test or benchmark run): every one of them, and the Bytewax process
    each of the two launchers runs, stops."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path)],
                              stdout=subprocess.PIPE, cwd=root, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 4, f"the parent did not start its servers: {line!r}"
        for launcher in pids[2:]:
            kids = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True,
                                  text=True, check=False).stdout.split()
            assert len(kids) == 1, "each launcher runs one Bytewax process"
            pids.append(int(kids[0]))
        assert all(_alive(p) for p in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left:  # do not leave them to the next test either
        os.kill(p, signal.SIGKILL)
    assert left == [], f"still running after the parent was killed: {left}"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_redraw_seldom_in_a_log():
    """A bar redraws in place on a terminal; in a file every redraw is a new line."""
    from stack.progress import IN_A_LOG, redraw_every

    assert redraw_every(0.1, _Tty()) == 0.1
    assert redraw_every(0.5, io.StringIO()) == IN_A_LOG
    assert redraw_every(0.5, object()) == IN_A_LOG  # type: ignore[arg-type]  # no isatty
