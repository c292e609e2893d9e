"""CPU profile of the dataflow without Kafka or Redis I/O.

``python -m bench.flow_profile [--events 100000] [--agents 1000] [--cprofile]`` runs
:func:`dataflows.flow.build_flow` under Bytewax's ``run_main`` on a ``TestingSource`` of the
pipeline benchmark's mixed events (as the lean Kafka source emits them) with the real Redis
sink's packing (nothing is sent) and prints the flow's CPU per event; ``--cprofile`` prints
the top functions by own time.

``--live-rate R [--seconds S]`` feeds the events live instead: stamped with the wall time
they are released at, ``R`` per second, from four partitions named like Kafka's (so the
watermark ticks run) polled as the lean Kafka source polls them. Live, each agent takes
its events one or two at a time, and the same code costs more per event than from a
backlog (2026-11-22: 75-78 us at 10k/s against 43 us with the whole input at once).

``--without PART`` (repeatable) takes a part out of the agent step, to see what it costs:
``agent`` the whole step (its events are taken and none applied: what parsing, Bytewax and
the shard routing cost alone, the floor under any faster agent core; 2026-12-06: 10-17 us
of 66-86 us an event from a backlog), ``output`` its Kafka messages and Redis documents (and
their way to the sinks), ``learner`` the learner's updates and policy versions, and
``projections`` the projections' updates. What is left runs as before; the figures are for
profiling only (without the learner, for one, no policy version is ever published).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import zlib
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from bench.pipeline_load import _iso, live_schedule, mixed_events, stamped
from bench.pipeline_options import add_policy_options
from dataflows import agent_step
from dataflows.flow import build_flow
from dataflows.kafka_source import _Msg
from dataflows.learner.base import PolicyLearner
from dataflows.projections import Projections
from dataflows.run import tune_gc
from dataflows.sinks import RedisProjectionSink, _RedisPartition
from schemas.settings import Settings


class _PackOnly(_RedisPartition):
    """The Redis sink's packing, with nothing sent."""

    def _pipeline(self, payload: bytes, n: int) -> None:
        self.sent = getattr(self, "sent", 0) + n

    def snapshot(self) -> None:
        pass

    def close(self) -> None:
        pass


class PackOnlyRedisSink(RedisProjectionSink):
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _RedisPartition:
        p = _PackOnly.__new__(_PackOnly)
        p._script = type("S", (), {"sha": "0" * 40})()  # noqa: SLF001
        p._keys, p._ttl, p._keep = self._keys, self._ttl, self._keep  # noqa: SLF001
        p._agent_keys = {}  # noqa: SLF001
        return p


class _AppliesNothing(agent_step.AgentLogic):
    """An agent step that takes its events and applies none of them (``--without agent``)."""

    def on_batch(self, values: list[Any], now: float, floor: float,
                 input_last: float) -> list[Any]:
        return []

    def on_notify(self, now: float, floor: float, input_last: float) -> list[Any]:
        return []

    def on_eof(self, now: float) -> list[Any]:
        return []


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


#: ``--without`` part -> the (owner, attribute, stand-in) it replaces for the run
WITHOUT: dict[str, list[tuple[Any, str, Any]]] = {
    "agent": [(agent_step, "AgentLogic", _AppliesNothing)],
    "output": [(agent_step.AgentLogic, "_kafka", _nothing),
               (agent_step.AgentLogic, "_document", _nothing)],
    "learner": [(PolicyLearner, "update", _nothing), (PolicyLearner, "maybe_publish", _nothing)],
    "projections": [(Projections, "apply", _nothing)],
}


def without(parts: list[str]) -> ExitStack:
    """A context in which the agent step runs without ``parts`` (keys of :data:`WITHOUT`).

    >>> with without(["projections"]):
    ...     Projections.apply is _nothing
    True
    >>> Projections.apply is _nothing
    False
    """
    stack = ExitStack()
    for part in parts:
        for owner, attr, stand_in in WITHOUT[part]:
            stack.enter_context(mock.patch.object(owner, attr, stand_in))
    return stack


class _Null(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


class NullSink(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Null:
        return _Null()


def messages(n: int, agents: int) -> list[_Msg]:
    span = n / 20_000
    msgs = stamped(mixed_events(n, agents, seed=7), time.time() - span - 1.0)
    offs = [0, 0]
    out = []
    for ti, key, payload in msgs:
        part = hash(key) % 2
        out.append(_Msg(key, payload, ("bench.decisions", "bench.signals")[ti], part,
                        offs[part]))
        offs[part] += 1
    return out


class _Paced(StatefulSourcePartition[Any, None]):
    """One Kafka-like partition releasing its events at their offsets from the first poll."""

    def __init__(self, events: list[tuple[float, bytes, bytes, bytes]], topic: str,
                 part: int, start: list[float], poll: float, batch: int) -> None:
        self.events, self.topic, self.part, self.start = events, topic, part, start
        self.poll, self.batch, self.i = poll, batch, 0
        self.awake: datetime | None = None

    def next_batch(self) -> list[_Msg]:
        if not self.start:
            self.start.append(time.time())
        if self.i >= len(self.events):
            raise StopIteration
        t0 = self.start[0]
        due = time.time() - t0
        out: list[_Msg] = []
        while self.i < len(self.events) and self.events[self.i][0] <= due \
                and len(out) < self.batch:
            off, key, pre, post = self.events[self.i]
            out.append(_Msg(key, pre + _iso(t0 + off).encode() + post, self.topic,
                            self.part, self.i))
            self.i += 1
        self.awake = None if len(out) >= self.batch else \
            datetime.now(UTC) + timedelta(seconds=self.poll)
        return out

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> None:
        return None


class PacedSource(FixedPartitionedSource[Any, None]):
    """``rate`` mixed events/s for ``seconds`` over decisions and signals, 2 partitions each
    (named ``"{partition}-{topic}"`` like the Kafka source's, so the input ticks them)."""

    def __init__(self, rate: float, seconds: float, agents: int, poll: float,
                 batch: int) -> None:
        self.poll, self.batch = poll, batch
        self.start: list[float] = []  # wall time of the first poll, shared by the parts
        self.parts: dict[str, list[tuple[float, bytes, bytes, bytes]]] = {
            f"{p}-bench.{t}": [] for t in ("decisions", "signals") for p in (0, 1)}
        for off, ti, key, pre, post in live_schedule(rate, seconds, agents, seed=7):
            topic = ("decisions", "signals")[ti]
            self.parts[f"{zlib.crc32(key) % 2}-bench.{topic}"].append((off, key, pre, post))
        self.n = sum(len(v) for v in self.parts.values())

    def list_parts(self) -> list[str]:
        return list(self.parts)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _Paced:
        _, topic = for_part.split("-", 1)
        return _Paced(self.parts[for_part], topic, int(for_part.split("-")[0]), self.start,
                      self.poll, self.batch)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.flow_profile", description=__doc__)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--batch", type=int,
                   default=Settings.model_fields["dataflow_batch_size"].default,
                   help="messages per input batch (default: RF_DATAFLOW_BATCH_SIZE's)")
    add_policy_options(p)
    p.add_argument("--live-rate", type=float, default=0.0,
                   help="feed events live at this rate/s instead of all at once")
    p.add_argument("--seconds", type=float, default=10.0, help="how long (--live-rate)")
    p.add_argument("--without", action="append", default=[], choices=sorted(WITHOUT),
                   help="take this part out of the agent step (repeatable; agent: all of it)")
    p.add_argument("--cprofile", action="store_true")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    if args.live_rate < 0 or not 0 < args.seconds <= 120:
        p.error("--live-rate must be >= 0 and --seconds in (0, 120]")
    s = Settings(topic_prefix="bench", key_prefix="bench",
                 policy_every_n_rewards=args.policy_every,
                 policy_min_interval_seconds=args.policy_interval)
    from schemas.keys import Keys

    source: Any
    if args.live_rate:
        source = PacedSource(args.live_rate, args.seconds, args.agents,
                             s.source_poll_ms / 1000, args.batch)
        n = source.n
    else:
        msgs = messages(args.events, args.agents)
        source, n = TestingSource(msgs, batch_size=args.batch), len(msgs)
    flow = build_flow(source, NullSink(), PackOnlyRedisSink("redis://", Keys("bench"), 3600),
                      s)
    tune_gc(s.dataflow_gc_threshold)
    prof = cProfile.Profile() if args.cprofile else None
    with without(args.without):
        t0, c0 = time.perf_counter(), time.process_time()
        if prof is not None:
            prof.enable()
        run_main(flow)
        if prof is not None:
            prof.disable()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{n} events in {dt:.2f} s wall, {cpu:.2f} s CPU ({cpu / dt:.2f} cores): "
          f"{cpu / n * 1e6:.1f} us/event, {n / dt:,.0f} events/s"
          + (f" (without: {', '.join(args.without)})" if args.without else ""))
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
