"""Gateway benchmark: ``python -m bench.gateway``.

Starts its own broker and Redis, registers an agent, serves the gateway and a bare FastAPI
endpoint with the same uvicorn settings (each in its own subprocess), and drives each from a
separate load-generator process over loopback:

* open loop: a fixed rate (default 1000 req/s for 10 s); latency counts from the scheduled
  send time, so queueing delay is included (no coordinated omission);
* closed loop: N connections sending back to back for a few seconds (max throughput).

Prints p50/p99/throughput of both, the server's CPU per request (user+system of the uvicorn
process tree from /proc, which includes librdkafka's threads; far less sensitive to other
load on the machine than latency) and the ratios; writes ``bench/out/gateway.json`` with the
load average at the start. ``--workers N`` serves both apps with N uvicorn workers.

The load generator is a minimal asyncio HTTP/1.1 keep-alive client, cheap enough that the
server, not the client, is what is measured. Like any HTTP client it does not reuse a pooled
connection that the server has closed (uvicorn closes keep-alive connections idle for 5 s;
an open-loop run that once needed many connections leaves idle ones behind); the count is in
``stale_connections_replaced``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "out" / "gateway.json"
UVICORN_ARGS = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log",
                "--backlog", "2048"]
SPEC = {
    "persona": {"name": "Bench", "description": "A benchmark companion."},
    "traits": {"humor": 0.6, "warmth": 0.8, "brevity": 0.5, "exploration": 0.3},
    "actions": ["reply", "ask_question", "share_fact", "stay_quiet"],
    "context_keys": ["slot"],
    "epsilon": 0.1,
}


def bare_app() -> Any:
    """The baseline: a bare FastAPI endpoint returning a small JSON."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    async def bare() -> dict[str, Any]:
        """Return a small JSON."""
        return {"ok": True, "action": "reply"}

    return app


# -- load generator (runs in its own process) ------------------------------------------------
def _percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def call(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length:
            await self.reader.readexactly(length)
        return status


def _requests(path: str, host: str) -> list[bytes]:
    out = []
    for i in range(64):
        body = json.dumps({"user_id": f"u{i}", "context": {
            "slot": ("morning", "evening")[i % 2]}}).encode()
        out.append(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
    return out


async def _open(host: str, port: int) -> _Conn:
    r, w = await asyncio.open_connection(host, port)
    return _Conn(r, w)


async def open_loop(host: str, port: int, path: str, rate: float, duration: float,
                    max_conns: int = 256) -> dict[str, Any]:
    reqs = _requests(path, f"{host}:{port}")
    idle: list[_Conn] = [await _open(host, port) for _ in range(8)]
    n_conns = len(idle)
    lat: list[float] = []
    errors = 0
    dropped = 0
    stale = 0
    n = int(rate * duration)
    tasks: set[asyncio.Task[None]] = set()

    statuses: dict[str, int] = {}

    async def one(i: int, scheduled: float) -> None:
        nonlocal n_conns, errors, stale
        conn = None
        while idle:
            conn = idle.pop()
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                break
            # The server closed it after its keep-alive timeout (uvicorn: 5 s idle), as
            # it may; HTTP clients drop such connections instead of sending on them.
            stale += 1
            n_conns -= 1
            conn.writer.close()
            conn = None
        if conn is None:
            n_conns += 1
            conn = await _open(host, port)
        try:
            status = await conn.call(reqs[i % len(reqs)])
        except Exception as exc:
            errors += 1
            n_conns -= 1
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            return
        lat.append(time.perf_counter() - scheduled)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status >= 400:
            errors += 1
        idle.append(conn)

    t0 = time.perf_counter() + 0.05
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if n_conns >= max_conns and not idle:
            dropped += 1
            continue
        t = asyncio.create_task(one(i, scheduled))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {"mode": "open", "rate": rate, "duration_s": duration, "sent": n,
            "completed": len(lat), "errors": errors, "dropped": dropped,
            "throughput_rps": len(lat) / elapsed, "connections": n_conns,
            "stale_connections_replaced": stale, "statuses": statuses,
            "p50_ms": _percentile(lat, 0.50) * 1e3, "p90_ms": _percentile(lat, 0.90) * 1e3,
            "p99_ms": _percentile(lat, 0.99) * 1e3, "max_ms": lat[-1] * 1e3 if lat else None}


async def closed_loop(host: str, port: int, path: str, conns: int,
                      duration: float) -> dict[str, Any]:
    reqs = _requests(path, f"{host}:{port}")
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def worker(w: int) -> None:
        nonlocal errors
        conn = await _open(host, port)
        i = w
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            status = await conn.call(reqs[i % len(reqs)])
            lat.append(time.perf_counter() - t)
            if status >= 400:
                errors += 1
            i += conns
        conn.writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(conns)))
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {"mode": "closed", "connections": conns, "duration_s": duration,
            "completed": len(lat), "errors": errors, "throughput_rps": len(lat) / elapsed,
            "p50_ms": _percentile(lat, 0.50) * 1e3, "p99_ms": _percentile(lat, 0.99) * 1e3}


def _loadgen_main(args: argparse.Namespace) -> None:
    if args.mode == "open":
        res = asyncio.run(open_loop("127.0.0.1", args.port, args.path, args.rate,
                                    args.duration))
    else:
        res = asyncio.run(closed_loop("127.0.0.1", args.port, args.path, args.conns,
                                      args.duration))
    print(json.dumps(res))


def _drive(port: int, path: str, mode: str, rate: float, duration: float,
           conns: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.gateway", "--loadgen", "--port", str(port),
           "--path", path, "--mode", mode, "--rate", str(rate), "--duration", str(duration),
           "--conns", str(conns)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60,
                         check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- orchestration --------------------------------------------------------------------------
def _serve(factory: str, port: int, env: dict[str, str],
           workers: int = 1) -> subprocess.Popen[bytes]:
    from stack.ports import wait_for_port
    from stack.processes import die_with_parent

    extra = ["--workers", str(workers)] if workers > 1 else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port),
         *UVICORN_ARGS, *extra], env=env, preexec_fn=die_with_parent(),
    )
    wait_for_port("127.0.0.1", port, 20)
    return proc


def _cpu_seconds(pid: int) -> float | None:
    """User+system CPU of ``pid`` and its descendants (Linux /proc; None elsewhere)."""
    try:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        fields = f.read().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    tree, grew = {pid}, True
    while grew:
        grew = False
        for p, (ppid, _) in stats.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    total = sum(stats[p][1] for p in tree if p in stats)
    return total / os.sysconf("SC_CLK_TCK")


def _measured(proc: subprocess.Popen[bytes], port: int, path: str, mode: str, rate: float,
              duration: float, conns: int) -> dict[str, Any]:
    """One load-generator run plus the server's CPU per completed request."""
    before = _cpu_seconds(proc.pid)
    res = _drive(port, path, mode, rate, duration, conns)
    after = _cpu_seconds(proc.pid)
    if before is not None and after is not None and res["completed"]:
        res["server_cpu_us_per_req"] = (after - before) / res["completed"] * 1e6
    return res


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(rate: float, duration: float, closed_duration: float, conns: int,
        workers: int = 1) -> dict[str, Any]:
    from gateway.client import RewardflowClient
    from schemas.settings import Settings
    from stack.broker import EmbeddedBroker, create_topics
    from stack.ports import free_port
    from stack.redis_server import RedisServer

    load_at_start = os.getloadavg()
    broker = EmbeddedBroker().start()
    redis = RedisServer().start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        tag = uuid.uuid4().hex[:8]
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=redis.url,
                            topic_prefix=f"bench{tag}", key_prefix=f"bench{tag}")
        create_topics(broker.bootstrap, settings.topics.all, partitions=2)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
               "REDIS_URL": redis.url, "RF_TOPIC_PREFIX": settings.topic_prefix,
               "RF_KEY_PREFIX": settings.key_prefix}
        gw_port, bare_port = free_port(), free_port()
        gw_proc = _serve("gateway.main:create_app", gw_port, env, workers)
        procs.append(gw_proc)
        bare_proc = _serve("bench.gateway:bare_app", bare_port, env, workers)
        procs.append(bare_proc)
        with RewardflowClient(f"http://127.0.0.1:{gw_port}") as c:
            deadline = time.monotonic() + 20
            while not c.ready():
                if time.monotonic() > deadline:
                    msg = "gateway not ready"
                    raise RuntimeError(msg)
                time.sleep(0.2)
            c.upsert_agent("bench", SPEC)
            for _ in range(4 * workers):  # every worker loads the agent
                c.decide("bench", "warmup", {"slot": "morning"})
        targets = {"gateway_decide": (gw_proc, gw_port, "/v1/agents/bench/decide"),
                   "bare": (bare_proc, bare_port, "/bare")}
        results: dict[str, Any] = {}
        for name, (proc, port, path) in targets.items():
            _drive(port, path, "closed", rate, 1.0, conns)  # warm-up
            results[name] = {
                "open": _measured(proc, port, path, "open", rate, duration, conns),
                "closed": _measured(proc, port, path, "closed", rate, closed_duration, conns),
            }
        gw, bare = results["gateway_decide"], results["bare"]
        results["ratios"] = {
            "closed_throughput_gateway_over_bare":
                gw["closed"]["throughput_rps"] / bare["closed"]["throughput_rps"],
            "open_p99_gateway_over_bare": gw["open"]["p99_ms"] / bare["open"]["p99_ms"],
            "open_p50_gateway_over_bare": gw["open"]["p50_ms"] / bare["open"]["p50_ms"],
        }
        results["targets"] = {
            "decide_open_p99_ms_below_5": gw["open"]["p99_ms"] < 5.0,
            "closed_throughput_ratio_at_least_0.5":
                results["ratios"]["closed_throughput_gateway_over_bare"] >= 0.5,
        }
        results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "uvicorn_args": UVICORN_ARGS, "workers": workers,
                              "loadavg_at_start": load_at_start}
        return results
    finally:
        for p in procs:
            _stop(p)
        redis.stop()
        broker.stop()


def _print(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"workers={m['workers']} cpus={m['cpus']} "
          f"loadavg at start={' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}")
    print(f"{'target':<16}{'mode':<8}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
          f"{'cpu us/req':>12}")
    for name in ("gateway_decide", "bare"):
        for mode in ("open", "closed"):
            r = results[name][mode]
            cpu = r.get("server_cpu_us_per_req")
            print(f"{name:<16}{mode:<8}{r['throughput_rps']:>10.0f}{r['p50_ms']:>10.2f}"
                  f"{r['p99_ms']:>10.2f}{r['errors']:>8}"
                  f"{'' if cpu is None else f'{cpu:.0f}':>12}")
    for k, v in results["ratios"].items():
        print(f"{k}: {v:.2f}")
    for k, v in results["targets"].items():
        print(f"{k}: {'PASS' if v else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gateway")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--closed-duration", type=float, default=5.0)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--workers", type=int, default=1,
                   help="uvicorn workers of both the gateway and the bare endpoint")
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--path", default="/", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="open", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.loadgen:
        _loadgen_main(args)
        return 0
    results = run(args.rate, args.duration, args.closed_duration, args.conns, args.workers)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    _print(results)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
