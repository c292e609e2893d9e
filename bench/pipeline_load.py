"""Load for the pipeline benchmark (:mod:`bench.pipeline`): the mixed event stream, Kafka
produce / raw consume helpers and the live load generator (run in its own process)."""

from __future__ import annotations

import random
import signal
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.producer import LINGER_MS as GATEWAY_LINGER_MS
from stack.progress import redraw_every

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
#: ``linger.ms`` of the live load's producer: the gateway's producer's, so the load reaches
#: the broker in the batches rewardflow's own producer sends. The broker's CPU is per produce
#: request: on 2026-12-04 (2 flow processes, 20k/s live) 5 ms kept Tansu at 0.40 cores and the
#: machine saturated (p99 3.4 s), 20 ms at 0.17 cores (p99 0.78 s); the linger is inside the
#: measured freshness either way.
LIVE_LINGER_MS = GATEWAY_LINGER_MS


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
                                                 disable=not progress,
                                                 mininterval=redraw_every())):
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
              mininterval=redraw_every()) as bar:
        while n < expected and time.monotonic() < deadline:
            got = c.consume(1000, 0.5)
            k = sum(1 for m in got if m.error() is None)
            n += k
            bar.update(k)
    dt = time.perf_counter() - t0
    c.close()
    return n, dt


# -- live load generator (its own process) ---------------------------------------------------
def live_schedule(rate: float, duration: float, agents: int, seed: int
                  ) -> list[tuple[float, int, bytes, bytes, bytes]]:
    """``rate`` mixed events/s for ``duration`` seconds as ``(offset_s, topic_index, key,
    JSON before ts, JSON after ts)``: the sender puts the ISO time in between.

    Signals trail their decision by up to 3 s: this generates extra and cuts at
    ``duration``, so the schedule is ``rate`` events/s flat from start to end (and starts
    3 s in).
    """
    out = []
    for off, ti, key, doc in mixed_events(int(rate * (duration + 6)), agents, seed,
                                          rate=rate, start=-3.0):
        if 0.0 <= off <= duration:
            doc["ts"] = TS_MARK
            pre, post = orjson.dumps(doc).split(TS_MARK.encode())
            out.append((off, ti, key, pre, post))
    return out


def _live_load(bootstrap: str, topics: list[str], rate: float, duration: float,
               agents: int, probe_every: float, seed: int, ready: Any, go: Any,
               conn: Any, linger_ms: int = LIVE_LINGER_MS) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    parts = [(off, topics[ti], key, pre, post)
             for off, ti, key, pre, post in live_schedule(rate, duration, agents, seed)]
    p = _producer(bootstrap, linger_ms=linger_ms)
    ready.set()
    if not go.wait(300):  # the benchmark died before the load (bounded: never wait forever)
        conn.close()
        return
    cpu0 = time.process_time()
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
               "planned": len(parts), "cpu_seconds": time.process_time() - cpu0})
    conn.close()
