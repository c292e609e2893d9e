"""Pipeline benchmark: ``python -m bench.pipeline [--events 200000] [--agents 1000]``.

Starts its own Tansu broker and Redis on free loopback ports, creates the topics (2
partitions) and, in one run, measures:

a. **raw consume**: N mixed events (decisions, explicit feedback, implicit signals with and
   without ``decision_id``, terminal signals; event times spanning about N/20k seconds up to
   now) are produced to the input topics, then read back with a bare confluent-kafka
   ``Consumer`` (partitions assigned, ``consume(1000)`` batches) -> raw msgs/s;
b. **end to end**: the dataflow (``python -m dataflows.run``, recovery on) is started on those
   topics; the clock runs from the moment the flow is ready (its metrics port listens, i.e.
   ``get_flow()`` ran) until Redis shows every event consumed (sum of the agents' summary
   ``counts.in`` == produced; this load has no unparseable events) -> events/s broker ->
   flow -> Redis, and its ratio to (a). The time including process start is printed too;
c. **freshness under live load**: with the flow running, a separate process produces fresh
   events (event time = send time) at a fixed rate (default 20k/s for 15 s) and, every 50 ms,
   a probe pair (``DecisionMade`` + explicit ``FeedbackGiven``) for one of 10 probe agents.
   Freshness = Redis showing the probe agent's new interaction minus the wall time the
   feedback was produced. By design it includes the watermark wait: explicit feedback is
   applied once the agent's watermark passes it (allowed lateness, or the idle fallback
   ``RF_IDLE_WATERMARK_SECONDS``, both 0.25 s by default).

Prints a table, writes ``bench/out/pipeline.json``. Everything is bounded in count and time,
loopback only; every child process is stopped on exit (also on Ctrl-C / SIGTERM).
Variants (labelled in the output): ``--batch-size``, ``--policy-every``, ``--snapshot``,
``--flow-procs 2`` (two Bytewax processes, ``-i 0/1 -a host:p1;host:p2``, recovery store with
2 partitions), ``--gc-threshold`` (the flow's ``RF_DATAFLOW_GC_THRESHOLD``; 0 = Python's default).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

OUT = Path(__file__).parent / "out" / "pipeline.json"
ACTIONS = ["reply", "ask_question", "share_fact", "stay_quiet"]
FEEDBACK = ["thumbs", "accept", "ignore", "more_like_this", "rating"]
IMPLICIT = ["reply_latency_ms", "message_length", "sentiment", "reaction", "reinvite"]
TS_MARK = "@@TS@@"
PROBE_AGENTS = 10


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _signal_value(kind: str, rng: random.Random) -> float:
    if kind == "reply_latency_ms":
        return round(rng.uniform(0, 120_000), 1)
    if kind == "message_length":
        return float(rng.randint(0, 600))
    if kind in ("sentiment", "reaction"):
        return round(rng.uniform(-1, 1), 3)
    return 1.0


def mixed_events(n: int, agents: int, seed: int, users: int = 50, *, start: float = 0.0,
                 rate: float = 20_000.0, agent_prefix: str = "ag"
                 ) -> list[tuple[float, int, bytes, dict[str, Any]]]:
    """About ``n`` events as ``(offset_s, topic_index, key, doc)``, sorted by offset.

    ``topic_index`` is 0 for decisions, 1 for signals. Offsets run from ``start`` at
    ``rate`` events/s: per decision 35% explicit feedback (0.1-2 s later), 40% 1-2 implicit
    signals (0.1-3 s later, half without ``decision_id``), 10% a terminal signal, the rest
    nothing (they stay open for the reward window). ``doc["ts"]`` is left to the caller.
    """
    rng = random.Random(seed)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    out: list[tuple[float, int, bytes, dict[str, Any]]] = []
    per_decision = 2.05
    step = per_decision / rate
    t = start
    i = 0
    while len(out) < n:
        t += step
        i += 1
        agent = f"{agent_prefix}{rng.randrange(agents)}"
        key = agent.encode()
        user = f"u{rng.randrange(users)}"
        did = uid()
        out.append((t, 0, key, {
            "event_id": uid(), "tenant": "default", "ts": None, "schema_version": 1,
            "type": "DecisionMade", "decision_id": did, "agent_id": agent, "user_id": user,
            "action": rng.choice(ACTIONS), "propensity": 0.25, "explored": False,
            "policy_version": 0, "bucket": f"slot={i % 3}"}))
        r = rng.random()
        if r < 0.35:
            kind = rng.choice(FEEDBACK)
            val = float(rng.randint(1, 5)) if kind == "rating" else rng.choice([-1.0, 1.0])
            out.append((t + rng.uniform(0.1, 2.0), 1, key, {
                "event_id": uid(), "tenant": "default", "ts": None, "schema_version": 1,
                "type": "FeedbackGiven", "decision_id": did, "agent_id": agent,
                "user_id": user, "kind": kind, "value": val}))
        elif r < 0.75:
            for _ in range(rng.randint(1, 2)):
                kind = rng.choice(IMPLICIT)
                out.append((t + rng.uniform(0.1, 3.0), 1, key, {
                    "event_id": uid(), "tenant": "default", "ts": None, "schema_version": 1,
                    "type": "SignalObserved", "decision_id": did if rng.random() < 0.5
                    else None, "agent_id": agent, "user_id": user, "kind": kind,
                    "value": _signal_value(kind, rng)}))
        elif r < 0.85:
            out.append((t + rng.uniform(0.1, 3.0), 1, key, {
                "event_id": uid(), "tenant": "default", "ts": None, "schema_version": 1,
                "type": "SignalObserved", "decision_id": did, "agent_id": agent,
                "user_id": user, "kind": rng.choice(["session_end", "abandonment"]),
                "value": 1.0}))
    out = out[:n]
    out.sort(key=lambda x: x[0])
    return out


def stamped(events: list[tuple[float, int, bytes, dict[str, Any]]], t0: float
            ) -> list[tuple[int, bytes, bytes]]:
    """Serialize with ``ts = t0 + offset`` (plus jitter below the allowed lateness)."""
    rng = random.Random(1)
    out = []
    for off, ti, key, doc in events:
        doc["ts"] = _iso(t0 + off)
        out.append((ti, key, orjson.dumps(doc), off + rng.uniform(0, 0.1)))
    out.sort(key=lambda x: x[3])
    return [(ti, key, payload) for ti, key, payload, _ in out]


# -- Kafka helpers ---------------------------------------------------------------------------
def _producer(bootstrap: str, linger_ms: int = 5) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms,
                     "queue.buffering.max.messages": 1_000_000, "enable.idempotence": False,
                     "batch.num.messages": 10_000})


def produce_all(bootstrap: str, topics: list[str], msgs: list[tuple[int, bytes, bytes]],
                progress: bool = True) -> float:
    from tqdm import tqdm

    p = _producer(bootstrap)
    t0 = time.perf_counter()
    for i, (ti, key, payload) in enumerate(tqdm(msgs, desc="produce", unit="ev",
                                                 disable=not progress, mininterval=0.5)):
        while True:
            try:
                p.produce(topics[ti], value=payload, key=key)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(120)
    if left:
        msg = f"{left} messages not delivered"
        raise RuntimeError(msg)
    return time.perf_counter() - t0


def raw_consume(bootstrap: str, topics: list[str], expected: int, partitions: int,
                timeout: float = 120.0, progress: bool = True) -> tuple[int, float]:
    """Read ``expected`` messages with a bare consumer; (count, seconds)."""
    from confluent_kafka import Consumer, TopicPartition
    from tqdm import tqdm

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4()}",
                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(t, p, 0) for t in topics for p in range(partitions)])
    n = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    with tqdm(total=expected, desc="raw consume", unit="msg", disable=not progress,
              mininterval=0.5) as bar:
        while n < expected and time.monotonic() < deadline:
            got = c.consume(1000, 0.5)
            k = sum(1 for m in got if m.error() is None)
            n += k
            bar.update(k)
    dt = time.perf_counter() - t0
    c.close()
    return n, dt


# -- Redis helpers ---------------------------------------------------------------------------
class Summaries:
    """Pipelined reads of the agents' summary docs."""

    def __init__(self, url: str, keys: Any, agents: list[str]) -> None:
        import redis

        self.r = redis.Redis.from_url(url)
        self.keys = [keys.summary("default", a) for a in agents]

    def docs(self) -> list[dict[str, Any] | None]:
        pipe = self.r.pipeline(transaction=False)
        for k in self.keys:
            pipe.hget(k, "doc")
        return [orjson.loads(d) if d else None for d in pipe.execute()]

    def counted_in(self) -> int:
        return sum(d["counts"]["in"] for d in self.docs() if d)


def wait_consumed(summ: Summaries, expected: int, timeout: float, progress: bool,
                  desc: str, interval: float = 0.1) -> tuple[float | None, float | None, int]:
    """Poll until sum(counts.in) == expected: (first seen time, done time, last count)."""
    from tqdm import tqdm

    first = None
    n = 0
    deadline = time.monotonic() + timeout
    with tqdm(total=expected, desc=desc, unit="ev", disable=not progress,
              mininterval=0.5) as bar:
        while time.monotonic() < deadline:
            now = time.time()
            m = summ.counted_in()
            if m and first is None:
                first = now
            bar.update(m - n)
            n = m
            if n >= expected:
                return first, time.time(), n
            time.sleep(interval)
    return first, None, n


# -- live load generator (its own process) ---------------------------------------------------
def _live_load(bootstrap: str, topics: list[str], rate: float, duration: float,
               agents: int, probe_every: float, seed: int, ready: Any, go: Any,
               conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    # Signals trail their decision by up to 3 s: generate extra and cut at ``duration`` so
    # the schedule is ``rate`` events/s flat from start to end (and start 3 s in).
    evs = [e for e in mixed_events(int(rate * (duration + 6)), agents, seed, rate=rate,
                                   start=-3.0) if 0.0 <= e[0] <= duration]
    parts: list[tuple[float, str, bytes, bytes, bytes]] = []
    for off, ti, key, doc in evs:
        doc["ts"] = TS_MARK
        pre, post = orjson.dumps(doc).split(TS_MARK.encode())
        parts.append((off, topics[ti], key, pre, post))
    p = _producer(bootstrap, linger_ms=1)
    ready.set()
    go.wait()
    t0 = time.time()
    i = sent = 0
    probes: list[tuple[str, int, float]] = []
    probe_n = [0] * PROBE_AGENTS
    next_probe = t0 + probe_every
    k = 0
    end = t0 + duration
    while i < len(parts):
        now = time.time()
        if now > end + 5:  # bounded: never run more than 5 s behind schedule
            break
        due = now - t0
        while i < len(parts) and parts[i][0] <= due:
            off, topic, key, pre, post = parts[i]
            payload = pre + _iso(t0 + off).encode() + post
            try:
                p.produce(topic, value=payload, key=key)
            except BufferError:
                p.poll(0.005)
                continue
            i += 1
            sent += 1
            if i % 2000 == 0:
                p.poll(0)
                break
        if now >= next_probe and now < end:
            a = k % PROBE_AGENTS
            k += 1
            agent = f"probe{a}"
            ts = _iso(now)
            did = str(uuid.uuid4())
            d = {"event_id": str(uuid.uuid4()), "ts": ts, "type": "DecisionMade",
                 "decision_id": did, "agent_id": agent, "user_id": "probe-user",
                 "action": "reply", "propensity": 1.0, "explored": False,
                 "policy_version": 0, "bucket": "*"}
            f = {"event_id": str(uuid.uuid4()), "ts": ts, "type": "FeedbackGiven",
                 "decision_id": did, "agent_id": agent, "user_id": "probe-user",
                 "kind": "thumbs", "value": 1.0}
            p.produce(topics[0], value=orjson.dumps(d), key=agent.encode())
            p.produce(topics[1], value=orjson.dumps(f), key=agent.encode())
            probe_n[a] += 1
            probes.append((agent, probe_n[a], time.time()))
            p.poll(0)
            next_probe += probe_every
        p.poll(0)
        if i < len(parts) and parts[i][0] > time.time() - t0:
            time.sleep(0.001)
    p.flush(30)
    t1 = time.time()
    conn.send({"produced": sent, "probes": probes, "t0": t0, "t1": t1,
               "planned": len(parts)})
    conn.close()


class ProbeWatcher(threading.Thread):
    """Polls the probe agents' summaries; records when each interaction count appears."""

    def __init__(self, url: str, keys: Any) -> None:
        super().__init__(daemon=True)
        self.summ = Summaries(url, keys, [f"probe{a}" for a in range(PROBE_AGENTS)])
        self.seen: dict[str, dict[int, float]] = {f"probe{a}": {} for a in range(PROBE_AGENTS)}
        self.base: dict[str, int] = {}
        self.stop_event = threading.Event()

    def snapshot_base(self) -> None:
        for a, d in zip(self.seen, self.summ.docs(), strict=True):
            self.base[a] = d["interactions"] if d else 0

    def run(self) -> None:
        last = dict(self.base)
        while not self.stop_event.is_set():
            docs = self.summ.docs()
            now = time.time()
            for a, d in zip(self.seen, docs, strict=True):
                if d is None:
                    continue
                n = d["interactions"] - self.base.get(a, 0)
                for j in range(last.get(a, 0) + 1, n + 1):
                    self.seen[a][j] = now
                last[a] = max(last.get(a, 0), n)
            time.sleep(0.002)


# -- the flow --------------------------------------------------------------------------------
class Flow:
    """``python -m dataflows.run`` (1 process) or two ``bytewax.run`` processes."""

    def __init__(self, settings: Any, procs: int, log_dir: Path) -> None:
        self.settings, self.procs, self.log_dir = settings, procs, log_dir
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        from stack.ports import free_port
        from stack.processes import settings_env, start_dataflow

        s = self.settings
        if self.procs == 1:
            self.children.append(start_dataflow(s, log_path=self.log_dir / "flow.log"))
            return
        store = Path(s.recovery_dir)
        store.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store),
                        str(self.procs)], check=True)
        addrs = ";".join(f"127.0.0.1:{free_port()}" for _ in range(self.procs))
        for i in range(self.procs):
            env = settings_env(s)
            env["BYTEWAX_PROCESS_ID"] = str(i)
            cmd = [sys.executable, "-m", "bytewax.run", "dataflows.run:get_flow()",
                   "-i", str(i), "-a", addrs, "-r", str(store),
                   "-s", str(s.snapshot_seconds), "-b", "0"]
            log = open(self.log_dir / f"flow{i}.log", "ab")  # noqa: SIM115
            self.children.append(subprocess.Popen(cmd, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT,
                                                  start_new_session=True))

    def wait_ready(self, timeout: float = 60) -> None:
        from stack.ports import wait_for_port

        for i in range(self.procs):
            wait_for_port("127.0.0.1", self.settings.dataflow_metrics_port + i, timeout)

    def pids(self) -> list[int]:
        """Python processes doing the work (dataflows.run forks bytewax.run)."""
        out = []
        for c in self.children:
            kids = subprocess.run(["pgrep", "-P", str(c.pid)], capture_output=True,
                                  text=True).stdout.split()
            out += [int(k) for k in kids] or [c.pid]
        return out

    def alive(self) -> bool:
        return all(c.poll() is None for c in self.children)

    def stop(self) -> None:
        from stack.processes import stop

        for c in self.children:
            stop(c)


def _pct(vals: list[float], q: float) -> float | None:
    if not vals:
        return None
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915
    from schemas.settings import Settings
    from stack.broker import EmbeddedBroker, create_topics
    from stack.ports import free_port
    from stack.redis_server import RedisServer

    progress = not args.no_progress
    work = Path(tempfile.mkdtemp(prefix="rf-bench-pipeline-"))
    broker = redis_srv = flow = loader = watcher = None
    result: dict[str, Any] = {
        "label": args.label or _label(args), "events": args.events, "agents": args.agents,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": os.getloadavg()},
        "variant": {"batch_size": args.batch_size, "policy_every_n_rewards": args.policy_every,
                    "snapshot_seconds": args.snapshot, "idle_watermark_seconds": args.idle,
                    "allowed_lateness_seconds": args.lateness, "flow_procs": args.flow_procs,
                    "gc_threshold": args.gc_threshold},
    }
    if args.gc_threshold is not None:  # the flow's children inherit the environment
        os.environ["RF_DATAFLOW_GC_THRESHOLD"] = str(args.gc_threshold)
    try:
        broker = EmbeddedBroker(log_path=work / "broker.log").start()
        redis_srv = RedisServer().start()
        s = Settings(kafka_bootstrap_servers=broker.bootstrap, redis_url=redis_srv.url,
                     topic_prefix="bench", key_prefix="bench", topic_partitions=2,
                     recovery_dir=str(work / "recovery"), dataflow_metrics_port=free_port(),
                     dataflow_batch_size=args.batch_size,
                     policy_every_n_rewards=args.policy_every,
                     snapshot_seconds=args.snapshot, idle_watermark_seconds=args.idle,
                     allowed_lateness_seconds=args.lateness)
        create_topics(broker.bootstrap, s.topics.all, partitions=2)
        topics = [s.topics.decisions, s.topics.signals]

        # a. produce + raw consume
        t_gen = time.perf_counter()
        span = args.events / 20_000
        evs = mixed_events(args.events, args.agents, seed=7)
        msgs = stamped(evs, time.time() - span - 1.0)
        del evs
        gen_s = time.perf_counter() - t_gen
        prod_s = produce_all(broker.bootstrap, topics, msgs, progress)
        n_raw, raw_s = raw_consume(broker.bootstrap, topics, len(msgs), 2,
                                   progress=progress)
        result["generate_seconds"] = round(gen_s, 2)
        result["produce"] = {"events": len(msgs), "seconds": round(prod_s, 3),
                             "events_per_s": round(len(msgs) / prod_s)}
        result["raw_consume"] = {"msgs": n_raw, "seconds": round(raw_s, 3),
                                 "msgs_per_s": round(n_raw / raw_s)}
        if n_raw != len(msgs):
            msg = f"raw consumer read {n_raw} of {len(msgs)}"
            raise RuntimeError(msg)

        # b. end to end through the flow
        agents = [f"ag{a}" for a in range(args.agents)]
        summ = Summaries(s.redis_url, s.keys, agents)
        flow = Flow(s, args.flow_procs, work)
        t_start = time.time()
        flow.start()
        flow.wait_ready()
        t_ready = time.time()
        pids = flow.pids()
        cpu0 = _cpu_seconds(pids)
        spy = _start_pyspy(args.pyspy, pids) if args.pyspy else None
        first, done, n_in = wait_consumed(summ, len(msgs), args.timeout, progress,
                                          "end to end")
        if spy is not None:
            _stop_pyspy(spy)
        cpu1 = _cpu_seconds(pids)
        if done is None:
            msg = (f"flow consumed {n_in} of {len(msgs)} within {args.timeout}s "
                   f"(alive={flow.alive()}); see {work}")
            raise RuntimeError(msg)
        e2e = len(msgs) / (done - t_ready)
        docs = [d for d in summ.docs() if d]
        counts = {k: sum(d["counts"].get(k, 0) for d in docs)
                  for k in ("in", "decisions", "joined", "dlq", "duplicates", "late", "rewards")}
        counts["buffered"] = sum(d["buffered"] for d in docs)
        counts["open_decisions"] = sum(d["open_decisions"] for d in docs)
        result["end_to_end"] = {
            "events": len(msgs), "seconds_from_ready": round(done - t_ready, 3),
            "events_per_s": round(e2e),
            "startup_seconds": round(t_ready - t_start, 3),
            "first_redis_write_after_ready": round((first or done) - t_ready, 3),
            "events_per_s_incl_startup": round(len(msgs) / (done - t_start)),
            "ratio_to_raw_consume": round(e2e / result["raw_consume"]["msgs_per_s"], 4),
            "flow_cpu_seconds": round(cpu1 - cpu0, 2),
            "flow_cpu_us_per_event": round((cpu1 - cpu0) / len(msgs) * 1e6, 1),
            "agent_counts_when_done": counts,
        }
        del msgs

        # c. freshness under live load
        if args.live_seconds > 0:
            watcher = ProbeWatcher(s.redis_url, s.keys)
            watcher.snapshot_base()
            ctx = mp.get_context("spawn")
            ready, go = ctx.Event(), ctx.Event()
            parent, child = ctx.Pipe(duplex=False)
            loader = ctx.Process(target=_live_load, daemon=True, args=(
                broker.bootstrap, topics, args.rate, args.live_seconds, args.agents,
                args.probe_ms / 1000, 11, ready, go, child))
            loader.start()
            if not ready.wait(120):
                msg = "load generator did not get ready"
                raise RuntimeError(msg)
            watcher.start()
            load0 = os.getloadavg()[0]
            cpu0 = _cpu_seconds(pids)
            go.set()
            from tqdm import tqdm
            for _ in tqdm(range(int(args.live_seconds * 10)), desc="live load",
                          disable=not progress, unit="x100ms"):
                time.sleep(0.1)
                if not loader.is_alive():
                    break
            if not parent.poll(args.live_seconds + 60):
                msg = "load generator sent no result"
                raise RuntimeError(msg)
            live = parent.recv()
            loader.join(10)
            t_stop = time.time()
            total = result["end_to_end"]["events"] + live["produced"]
            _, drained, n_in = wait_consumed(summ, total, 120, progress, "drain")
            cpu1 = _cpu_seconds(pids)
            # the last probes: give them up to 5 s
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(
                    n not in watcher.seen[a] for a, n, _ in live["probes"]):
                time.sleep(0.05)
            watcher.stop_event.set()
            probe_docs = [d for d in watcher.summ.docs() if d]
            fresh, missing = [], 0
            for a, n, t_send in live["probes"]:
                t_seen = watcher.seen[a].get(n)
                if t_seen is None:
                    missing += 1
                else:
                    fresh.append(t_seen - t_send)
            dur = live["t1"] - live["t0"]
            result["freshness"] = {
                "target_rate": args.rate, "seconds": round(dur, 2),
                "produced": live["produced"], "planned": live["planned"],
                "achieved_rate": round(live["produced"] / dur),
                "probes": len(live["probes"]), "probes_missing": missing,
                "probe_agents_late": sum(d["counts"]["late"] for d in probe_docs),
                "probe_agents_buffered": sum(d["buffered"] for d in probe_docs),
                "p50_s": _r(_pct(fresh, 0.5)), "p90_s": _r(_pct(fresh, 0.9)),
                "p99_s": _r(_pct(fresh, 0.99)), "max_s": _r(max(fresh) if fresh else None),
                "drain_after_stop_s": round(drained - t_stop, 3) if drained else None,
                "consumed_all": drained is not None,
                "flow_cpu_share": round((cpu1 - cpu0) / ((drained or time.time()) - live["t0"]),
                                        2),
                "load1_at_start": load0,
                "note": "includes the watermark wait by design: explicit feedback applies once "
                        "the agent's watermark passes it (allowed lateness / idle fallback "
                        f"{s.allowed_lateness_seconds}/{s.idle_watermark_seconds} s)",
            }
        result["machine"]["load_after"] = os.getloadavg()
    finally:
        if loader is not None and loader.is_alive():
            loader.terminate()
            loader.join(5)
        if watcher is not None:
            watcher.stop_event.set()
        if flow is not None:
            flow.stop()
        if redis_srv is not None:
            redis_srv.stop()
        if broker is not None:
            broker.stop()
        if args.keep_logs:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _label(args: argparse.Namespace) -> str:
    gc = "" if args.gc_threshold is None else f" gc={args.gc_threshold}"
    return (f"procs={args.flow_procs} batch={args.batch_size} "
            f"policy_every={args.policy_every} snapshot={args.snapshot}s{gc}")


def _start_pyspy(out: str, pids: list[int]) -> list[subprocess.Popen[bytes]]:
    exe = shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy"  # noqa: S108
    env = {**os.environ, "PYTHONPATH": "/tmp/pyspy"}  # noqa: S108
    procs = []
    for i, pid in enumerate(pids):
        path = f"{out}.{i}.txt" if len(pids) > 1 else f"{out}.txt"
        procs.append(subprocess.Popen([exe, "record", "-p", str(pid), "-f", "raw", "-o", path,
                                       "-r", "200", "--nonblocking"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def _stop_pyspy(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def table(res: dict[str, Any]) -> str:
    e, raw = res["end_to_end"], res["raw_consume"]
    rows = [f"rewardflow pipeline benchmark [{res['label']}]",
            f"  {res['events']} events, {res['agents']} agents, {res['machine']['cpus']} cpus, "
            f"load before {res['machine']['load_before'][0]:.2f}",
            f"  {'measure':<44}{'value':>14}",
            f"  {'produce (confluent-kafka -> Tansu)':<44}{res['produce']['events_per_s']:>10} /s",
            f"  {'raw consume (bare Consumer, batches 1000)':<44}{raw['msgs_per_s']:>10} /s",
            f"  {'end to end (broker -> flow -> Redis)':<44}{e['events_per_s']:>10} /s",
            f"  {'  ratio end to end / raw consume':<44}{e['ratio_to_raw_consume']:>14.3f}",
            f"  {'  incl. flow process start':<44}{e['events_per_s_incl_startup']:>10} /s",
            f"  {'  flow CPU per event':<44}{e['flow_cpu_us_per_event']:>11} us"]
    f = res.get("freshness")
    if f:
        rows += [
            f"  {'live load: target / achieved rate':<44}{f['target_rate']:>7.0f} / "
            f"{f['achieved_rate']:<6}/s",
            f"  {'  freshness p50 (feedback -> Redis)':<44}{_fmt(f['p50_s'])}",
            f"  {'  freshness p99':<44}{_fmt(f['p99_s'])}",
            f"  {'  freshness max':<44}{_fmt(f['max_s'])}",
            f"  {'  probes (missing)':<44}{f['probes']:>10} ({f['probes_missing']})",
            f"  {'  drain after the load stopped':<44}{_fmt(f['drain_after_stop_s'])}",
            f"  note: freshness {f['note']}"]
    ok_rate = e["events_per_s"] >= 20_000
    ok_fresh = f is not None and f["p99_s"] is not None and f["p99_s"] < 1.0 \
        and f["consumed_all"]
    rows.append(f"  targets: >= 20k events/s end to end: {'MET' if ok_rate else 'NOT MET'}; "
                f"p99 freshness < 1 s at the target rate: "
                f"{'MET' if ok_fresh else 'NOT MET' if f else 'not measured'}")
    return "\n".join(rows)


def _fmt(x: float | None) -> str:
    return f"{'n/a':>12}" if x is None else f"{x * 1000:>11.0f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--rate", type=float, default=20_000.0, help="live load events/s (c)")
    p.add_argument("--live-seconds", type=float, default=15.0, help="0 skips (c)")
    p.add_argument("--probe-ms", type=float, default=50.0)
    p.add_argument("--batch-size", type=int, default=1000, help="RF_DATAFLOW_BATCH_SIZE")
    p.add_argument("--policy-every", type=int, default=1, help="RF_POLICY_EVERY_N_REWARDS")
    p.add_argument("--snapshot", type=int, default=5, help="RF_SNAPSHOT_SECONDS")
    p.add_argument("--idle", type=float, default=0.25, help="RF_IDLE_WATERMARK_SECONDS")
    p.add_argument("--lateness", type=float, default=0.25, help="RF_ALLOWED_LATENESS_SECONDS")
    p.add_argument("--flow-procs", type=int, default=1, choices=[1, 2])
    p.add_argument("--gc-threshold", type=int, default=None,
                   help="RF_DATAFLOW_GC_THRESHOLD of the flow (0 = Python's default GC)")
    p.add_argument("--timeout", type=float, default=300.0, help="max seconds for (b)")
    p.add_argument("--label", default="")
    p.add_argument("--pyspy", default="", help="record py-spy raw stacks of (b) to PATH.txt")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.events < 1000 or args.events > 5_000_000 or args.live_seconds > 120:
        p.error("--events must be in [1000, 5e6] and --live-seconds <= 120")

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        res = run(args)
    except KeyboardInterrupt:
        print("interrupted; children stopped", file=sys.stderr)
        return 130
    print(table(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    if args.out.exists():
        try:
            prev = json.loads(args.out.read_text())
            runs = prev.get("runs", []) if isinstance(prev, dict) else []
        except ValueError:
            runs = []
    runs = [r for r in runs if r.get("label") != res["label"]] + [res]
    args.out.write_text(json.dumps({"latest": res, "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
