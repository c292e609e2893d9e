"""The dataflow's fast paths give exactly what the straightforward code gives."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dataflows import metrics as m
from dataflows.agent_state import derived_str
from dataflows.flow import _PartitionClock
from dataflows.projections import iso
from dataflows.sinks import _resp
from schemas import projections as sp
from schemas.events import DecisionMade, derived_id


def test_derived_str_is_uuid5() -> None:
    rng = random.Random(3)
    for _ in range(500):
        parts = [rng.choice(["reward", "policy", "dlq"]), str(uuid.UUID(int=rng.getrandbits(128))),
                 rng.randrange(10**6), "tenant-ä", rng.random()]
        k = rng.randrange(1, len(parts) + 1)
        assert derived_str(*parts[:k]) == str(derived_id(*parts[:k]))


def test_window_totals_and_iso_match_schemas() -> None:
    rng = random.Random(4)
    for _ in range(300):
        w = rng.choice(list(sp.WINDOWS))
        width = sp.WINDOWS[w][1]
        as_of = 1.7e9 + rng.uniform(0, 10 * 86400)
        buckets = {int(as_of) // width * width - width * rng.randrange(40):
                   [rng.randrange(5), rng.randrange(3), rng.randrange(3), rng.uniform(-3, 3),
                    rng.randrange(4)] for _ in range(rng.randrange(6))}
        assert sp.window_totals(w, buckets, as_of, iso) == sp.window_totals(w, buckets, as_of)
    from datetime import UTC, datetime
    for ts in (0, 3600, 3600.0, 1.5, 1.7e9 + 0.123456, -5.25):
        assert iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat()


def test_batched_metrics_equal_direct_ones() -> None:
    rng = random.Random(5)
    regs = [CollectorRegistry(), CollectorRegistry()]
    hs = [Histogram("h", "h", buckets=(-1.0, -0.5, 0.0, 0.5, 1.0), registry=r) for r in regs]
    cs = [Counter("c", "c", ["k"], registry=r) for r in regs]
    vals = [rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 7.0]) + rng.random() / 3 for _ in range(3000)]
    for i, v in enumerate(vals):
        hs[0].observe(v)
        cs[0].labels(str(i % 3)).inc(i % 4)
        m.observe(hs[1], v)
        m.count(cs[1].labels(str(i % 3)), i % 4)
        if i % 700 == 0:
            m.flush()
    m.flush()

    def text(r: CollectorRegistry) -> list[str]:
        return [ln for ln in generate_latest(r).decode().splitlines() if "_created" not in ln]

    assert text(regs[0]) == text(regs[1])


def _partition_clock(newest: Any, parsed: Any) -> tuple[Any, Any]:
    """The rule one event at a time (the ``stateful_map`` mapper the flow used to run)."""
    kind, key, (event, meta) = parsed
    ts = event.ts.timestamp()
    stamped = (kind, key, (event, (*meta[:3], newest)))
    return (ts if newest is None else max(newest, ts)), stamped


def test_partition_clock_logic_matches_stateful_map_mapper() -> None:
    rng = random.Random(6)
    evs = [DecisionMade(decision_id=uuid.uuid4(), agent_id="a", user_id="u", action="x",
                        propensity=0.5, explored=False, policy_version=0, bucket="*",
                        ts=__import__("datetime").datetime.fromtimestamp(
                            1.7e9 + rng.uniform(-5, 5), __import__("datetime").UTC))
           for _ in range(50)]
    newest: Any = None
    want = []
    for i, ev in enumerate(evs):
        newest, stamped = _partition_clock(newest, ("ok", "t:a", (ev, ("t", 0, i))))
        want.append((stamped[1], stamped[2]))
    logic = _PartitionClock(None)
    got: list[Any] = []
    for lo in range(0, 50, 7):
        outs, _ = logic.on_batch([("t:a", ev, ("t", 0, i))
                                  for i, ev in enumerate(evs) if lo <= i < lo + 7])
        got += outs
    assert got == want
    assert logic.snapshot() == newest


@pytest.mark.parametrize("args", [
    ["EVALSHA", "ab" * 20, 2, "k1", "rf:{t:a}:rel:ü", 5, 3600, b'{"x":1}', "", b"\x00\r\n"],
    ["EVALSHA", "0" * 40, 0, 10**12, "-", b""],
])
def test_resp_packing_matches_redis_py(args: list[Any]) -> None:
    from redis.connection import Connection

    out: list[bytes] = []
    _resp(out, args)
    assert b"".join(out) == b"".join(Connection().pack_command(*args))


class _FakeErr:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def __str__(self) -> str:
        return f"err{self._code}"


class _FakeMsg:
    def __init__(self, offset: int, value: bytes | None, err: _FakeErr | None = None) -> None:
        self._o, self._v, self._e = offset, value, err

    def error(self) -> _FakeErr | None:
        return self._e

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes:
        return b"k"

    def topic(self) -> str:
        return "t.signals"

    def partition(self) -> int:
        return 1

    def headers(self) -> None:
        return None

    def latency(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


class _FakeConsumer:
    def __init__(self, batches: list[list[_FakeMsg]]) -> None:
        self.batches = batches

    def consume(self, n: int, timeout: float) -> list[_FakeMsg]:
        return self.batches.pop(0) if self.batches else []


def test_lean_kafka_partition_matches_bytewax() -> None:
    from bytewax.connectors.kafka import _KafkaSourcePartition as Orig
    from confluent_kafka import KafkaError as CKError

    from dataflows.parse import parse_message
    from dataflows.run import _LeanKafkaPartition

    eof = CKError._PARTITION_EOF  # noqa: SLF001

    def batches() -> list[list[_FakeMsg]]:
        return [[_FakeMsg(5, b"{bad"), _FakeMsg(6, None), _FakeMsg(7, b"x", _FakeErr(3))],
                [], [_FakeMsg(8, b'{"type": "Nope"}'), _FakeMsg(9, None, _FakeErr(eof)),
                     _FakeMsg(10, b"{")]]

    def run(cls: type) -> tuple[list[Any], list[Any]]:
        p = object.__new__(cls)
        p._consumer, p._topic, p._part_idx = _FakeConsumer(batches()), "t.signals", 1
        p._batch_size, p._eof, p._raise_on_errors, p._offset = 100, False, False, 5
        got, offsets = [], []
        while True:
            try:
                batch = p.next_batch()
            except StopIteration:
                break
            got.append([parse_message(m) for m in batch])
            offsets.append(p.snapshot())
        return got, offsets

    (a, ao), (b, bo) = run(Orig), run(_LeanKafkaPartition)
    assert ao == bo == [8, 8, 9]

    def norm(batch: list[Any]) -> list[Any]:
        return [(k, r, dl.model_dump(exclude={"ts"})) for k, r, dl in batch]

    assert [norm(x) for x in a] == [norm(x) for x in b]
