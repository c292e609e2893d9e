"""Replay a JSONL event log through Kafka into the dataflow.

``python -m stack.replay LOG.jsonl [--rate N] [--speedup X]`` reads one JSON event per line
(the :mod:`schemas.events` format: ``DecisionMade``, ``FeedbackGiven``, ``SignalObserved``,
and the agents topic's ``AgentUpserted``, ``PolicyRollbackRequested`` and ``PriorAssigned``),
routes each line by its ``type`` to its input topic (``settings.topics``)
keyed by ``agent_id``, and prints a summary of what it read and produced. Settings come from
the environment (``KAFKA_BOOTSTRAP_SERVERS``, ``RF_TOPIC_PREFIX``, ...).

Validity: **the dataflow is the judge.** Lines are produced byte for byte as read; the
replayer only parses enough JSON to route them. A line that is not a JSON object, or whose
``type`` is missing or not an input type, is still produced, to the *signals* topic (key
empty), so the dataflow dead-letters it with its topic/partition/offset like any other bad
message. The summary lists such lines ("unroutable") with their line numbers, so a broken
log is visible before you look at the DLQ. ``--check`` additionally validates every
routable line with the schema locally and lists failures by line number (still producing
them).
Blank lines are skipped and counted. Replaying the same log twice is harmless: events keep
their ``event_id`` and the dataflow counts the repeats as duplicates.

Pacing: without options, as fast as the producer takes. ``--rate N`` caps at N lines/s;
``--speedup X`` follows the log's event times (``ts``) X times faster than recorded (both may
be combined; lines without a parseable ``ts`` are not delayed).

``python -m stack.replay convert-obd IN.csv OUT.jsonl`` converts an Open Bandit Dataset-style
CSV (columns ``timestamp,item_id,position,click,propensity_score[,user_feature_*...]``) to a
log: one ``DecisionMade`` per row (action ``item<item_id>``, bucket ``position=<position>``,
the logged propensity, user features as context) and, for a click, a ``FeedbackGiven``
(kind ``accept``, value 1.0) one second later. Ids are uuid5s of the file name and row, so
converting twice gives the same log (and a replay of it is idempotent).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from schemas.settings import Settings, get_settings
from schemas.topics import Topics
from stack.progress import redraw_every

#: The input event types and the topic each goes to.
ROUTES = {"AgentUpserted": "agents", "PolicyRollbackRequested": "agents",
          "PriorAssigned": "agents", "DecisionMade": "decisions",
          "FeedbackGiven": "signals", "SignalObserved": "signals"}
MAX_LISTED = 20


def route(raw: bytes, topics: Topics) -> tuple[str, bytes | None, float | None, str | None]:
    """``(topic, key, ts, problem)`` of one line; ``problem`` is None when routable.

    >>> t = Topics("p")
    >>> route(b'{"type": "DecisionMade", "agent_id": "a1", "ts": "2026-01-01T00:00:00Z"}', t)
    ('p.decisions', b'a1', 1767225600.0, None)
    >>> route(b'not json', t)[0::3]
    ('p.signals', 'not a JSON object')
    >>> route(b'{"type": "RewardComputed"}', t)[0::3]
    ('p.signals', "type 'RewardComputed' is not an input event type")
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return topics.signals, None, None, "not a JSON object"
    if not isinstance(obj, dict):
        return topics.signals, None, None, "not a JSON object"
    typ = obj.get("type")
    name = ROUTES.get(typ) if isinstance(typ, str) else None
    if name is None:
        what = "missing type" if typ is None else f"type {typ!r} is not an input event type"
        return topics.signals, None, None, what
    agent = obj.get("agent_id")
    key = agent.encode() if isinstance(agent, str) else None
    ts = None
    raw_ts = obj.get("ts")
    if isinstance(raw_ts, str):
        try:
            ts = datetime.fromisoformat(raw_ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            ts = None
    return getattr(topics, name), key, ts, None


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from fh


class Pacer:
    """Sleeps to keep ``rate`` lines/s and/or event-time spacing divided by ``speedup``."""

    def __init__(self, rate: float | None, speedup: float | None) -> None:
        self.rate, self.speedup = rate, speedup
        self.start = time.monotonic()
        self.n = 0
        self.ts0: float | None = None

    def wait(self, ts: float | None, poll: Any) -> None:
        due = self.start
        if self.rate:
            due = max(due, self.start + self.n / self.rate)
        if self.speedup and ts is not None:
            if self.ts0 is None:
                self.ts0 = ts
            due = max(due, self.start + (ts - self.ts0) / self.speedup)
        self.n += 1
        while (left := due - time.monotonic()) > 0:
            poll(min(left, 0.05))


def replay(path: Path, settings: Settings, *, rate: float | None = None,
           speedup: float | None = None, check: bool = False, progress: bool = True,
           out: Any = None) -> dict[str, Any]:
    """Produce every line of ``path``; returns (and prints to ``out``) the summary."""
    from confluent_kafka import Producer
    from tqdm import tqdm

    if not settings.kafka_bootstrap_servers:
        msg = "KAFKA_BOOTSTRAP_SERVERS must be set"
        raise SystemExit(msg)
    topics = settings.topics
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "linger.ms": 5, "queue.buffering.max.messages": 500_000,
                         "enable.idempotence": False})
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    parse = None
    if check:
        from pydantic import ValidationError

        from dataflows.parse import _reason
        from schemas.events import parse_event
        parse = (parse_event, ValidationError, _reason)

    read = blank = 0
    per_topic: Counter[str] = Counter()
    unroutable: list[tuple[int, str]] = []
    invalid: list[tuple[int, str]] = []
    pacer = Pacer(rate, speedup)
    total = path.stat().st_size
    t0 = time.perf_counter()
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"replay {path.name}",
              disable=not progress, file=sys.stderr, mininterval=redraw_every()) as bar:
        for lineno, line in enumerate(_lines(path), 1):
            bar.update(len(line))
            raw = line.strip()
            read += 1
            if not raw:
                blank += 1
                continue
            topic, key, ts, problem = route(raw, topics)
            if problem is not None:
                unroutable.append((lineno, problem))
            elif parse is not None:
                try:
                    parse[0](raw)
                except parse[1] as exc:
                    invalid.append((lineno, parse[2](exc)))
            if rate or speedup:
                pacer.wait(ts, producer.poll)
            while True:
                try:
                    producer.produce(topic, value=raw, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            per_topic[topic] += 1
            if per_topic.total() % 10_000 == 0:
                producer.poll(0)
        left = producer.flush(60)
    elapsed = time.perf_counter() - t0
    produced = per_topic.total()
    summary = {
        "file": str(path), "lines_read": read, "blank_lines": blank, "produced": produced,
        "produced_per_topic": dict(per_topic), "delivery_failures": len(failed) + left,
        "unroutable_lines": len(unroutable),
        "unroutable_first": [{"line": n, "problem": p} for n, p in unroutable[:MAX_LISTED]],
        "seconds": round(elapsed, 3),
        "lines_per_second": round(produced / elapsed) if elapsed > 0 else None,
    }
    if check:
        summary["invalid_lines"] = len(invalid)
        summary["invalid_first"] = [{"line": n, "problem": p} for n, p in invalid[:MAX_LISTED]]
    if out is not None:
        print(_format(summary), file=out)
    return summary


def _format(s: dict[str, Any]) -> str:
    rows = [f"replayed {s['file']} in {s['seconds']} s ({s['lines_per_second']} lines/s)",
            f"  lines read           {s['lines_read']:>10}",
            f"  blank (skipped)      {s['blank_lines']:>10}",
            f"  produced             {s['produced']:>10}"]
    rows += [f"    {t:<30} {n:>8}" for t, n in sorted(s["produced_per_topic"].items())]
    rows.append(f"  delivery failures    {s['delivery_failures']:>10}")
    rows.append(f"  unroutable lines     {s['unroutable_lines']:>10}  (sent to the signals "
                "topic: the dataflow dead-letters them)")
    rows += [f"    line {u['line']}: {u['problem']}" for u in s["unroutable_first"]]
    if "invalid_lines" in s:
        rows.append(f"  schema-invalid lines {s['invalid_lines']:>10}  (--check; produced "
                    "anyway: the dataflow dead-letters them)")
        rows += [f"    line {u['line']}: {u['problem']}" for u in s["invalid_first"]]
    return "\n".join(rows)


# -- Open Bandit Dataset-style CSV -> JSONL ---------------------------------------------------
def convert_obd(src: Path, dst: Path, *, agent_id: str = "obd", tenant: str = "default",
                feedback_delay: float = 1.0) -> dict[str, int]:
    """Convert an OBD-style CSV log to a JSONL event log; returns counts.

    Rows need ``timestamp``, ``item_id``, ``position``, ``click``, ``propensity_score``;
    ``user_feature_*`` columns become the decision's context and a hash of them the user id.
    """
    import hashlib

    from schemas.events import DecisionMade, FeedbackGiven, derived_id

    counts = Counter[str]()
    with src.open(newline="") as fh, dst.open("wb") as out:
        for i, row in enumerate(csv.DictReader(fh)):
            try:
                ts = datetime.fromisoformat(row["timestamp"].strip())
                if ts.tzinfo is None:
                    ts = ts.replace(tzinfo=UTC)
                feats = {k: v for k, v in row.items()
                         if k and k.startswith("user_feature") and v is not None}
                user = "u" + hashlib.sha1(  # noqa: S324 - an id, not security
                    orjson.dumps(feats, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
                did = derived_id("obd", src.name, i)
                d = DecisionMade(
                    event_id=derived_id("obd-decision", src.name, i), tenant=tenant, ts=ts,
                    decision_id=did, agent_id=agent_id, user_id=user,
                    action=f"item{int(float(row['item_id']))}",
                    propensity=float(row["propensity_score"]), explored=True,
                    policy_version=0, bucket=f"position={int(float(row['position']))}",
                    context={k: v[:64] for k, v in feats.items()})
            except (KeyError, ValueError) as exc:  # a bad row is reported, not fatal
                counts["bad_rows"] += 1
                print(f"row {i + 2}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            out.write(d.model_dump_json().encode() + b"\n")
            counts["decisions"] += 1
            if float(row["click"]) > 0:
                f = FeedbackGiven(
                    event_id=derived_id("obd-feedback", src.name, i), tenant=tenant,
                    ts=ts + timedelta(seconds=feedback_delay), decision_id=did,
                    agent_id=agent_id, user_id=user, kind="accept", value=1.0)
                out.write(f.model_dump_json().encode() + b"\n")
                counts["feedback"] += 1
    return dict(counts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "convert-obd":
        p = argparse.ArgumentParser(prog="python -m stack.replay convert-obd",
                                    description="Open Bandit Dataset-style CSV -> JSONL")
        p.add_argument("src", type=Path)
        p.add_argument("dst", type=Path)
        p.add_argument("--agent-id", default="obd")
        p.add_argument("--tenant", default="default")
        a = p.parse_args(argv[1:])
        counts = convert_obd(a.src, a.dst, agent_id=a.agent_id, tenant=a.tenant)
        print(f"wrote {a.dst}: {counts}")
        return 0 if counts.get("decisions") else 1
    p = argparse.ArgumentParser(prog="python -m stack.replay",
                                description=__doc__.split("\n\n")[0],
                                epilog="also: python -m stack.replay convert-obd IN.csv OUT.jsonl")
    p.add_argument("log", type=Path, help="JSONL file, one event per line")
    p.add_argument("--rate", type=float, default=None, help="max lines per second")
    p.add_argument("--speedup", type=float, default=None,
                   help="follow event times, X times faster than recorded")
    p.add_argument("--check", action="store_true",
                   help="also validate every line locally and list failures (still produced)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.rate is not None and a.rate <= 0 or a.speedup is not None and a.speedup <= 0:
        p.error("--rate and --speedup must be positive")
    summary = replay(a.log, get_settings(), rate=a.rate, speedup=a.speedup, check=a.check,
                     progress=not a.no_progress, out=None if a.json else sys.stdout)
    if a.json:
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return 1 if summary["delivery_failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
