"""CPU profile of the dataflow without Kafka or Redis I/O.

``python -m bench.flow_profile [--events 100000] [--agents 1000] [--cprofile]`` runs
:func:`dataflows.flow.build_flow` under Bytewax's ``run_main`` on a ``TestingSource`` of the
pipeline benchmark's mixed events (as the lean Kafka source emits them) with the real Redis
sink's packing (nothing is sent) and prints the flow's CPU per event; ``--cprofile`` prints
the top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from bench.pipeline_load import mixed_events, stamped
from dataflows.flow import build_flow
from dataflows.run import _Msg, tune_gc
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.flow_profile", description=__doc__)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--batch", type=int,
                   default=Settings.model_fields["dataflow_batch_size"].default,
                   help="messages per input batch (default: RF_DATAFLOW_BATCH_SIZE's)")
    p.add_argument("--policy-every", type=int, default=1, help="RF_POLICY_EVERY_N_REWARDS")
    p.add_argument("--cprofile", action="store_true")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    msgs = messages(args.events, args.agents)
    s = Settings(topic_prefix="bench", key_prefix="bench",
                 policy_every_n_rewards=args.policy_every)
    from schemas.keys import Keys

    flow = build_flow(TestingSource(msgs, batch_size=args.batch), NullSink(),
                      PackOnlyRedisSink("redis://", Keys("bench"), 3600), s)
    tune_gc(s.dataflow_gc_threshold)
    prof = cProfile.Profile() if args.cprofile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    run_main(flow)
    if prof is not None:
        prof.disable()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{len(msgs)} events in {dt:.2f} s wall, {cpu:.2f} s CPU: "
          f"{cpu / len(msgs) * 1e6:.1f} us/event, {len(msgs) / dt:,.0f} events/s")
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
