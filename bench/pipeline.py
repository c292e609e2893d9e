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
   flow -> Redis, and its ratio to (a). The time including process start is printed too,
   and where the CPU went: per event in the flow, the broker, Redis and the whole machine
   (``/proc/stat``: on a shared machine the difference is other work), and how many agent
   document sets the flow wrote to Redis per event (here and under the live load: a cost per
   agent, at most one per ``RF_PROJECTION_WRITE_SECONDS``);
c. **freshness under live load**: with the flow running, a separate process produces fresh
   events (event time = send time) at a fixed rate (default 20k/s for 45 s; producer
   ``linger.ms`` 20 as the gateway's own producer batches, ``--linger-ms``) and, every
   50 ms, a probe pair (``DecisionMade`` + explicit
   ``FeedbackGiven``) for one of 10 probe agents. Freshness = Redis showing the probe
   agent's new interaction (polled every 10 ms) minus the wall time the feedback was handed
   to the producer. By design it includes the watermark wait: explicit feedback is applied
   once the agent's watermark passes it (allowed lateness, or the idle fallback
   ``RF_IDLE_WATERMARK_SECONDS``, both 0.25 s by default); under load the input's watermark
   ticks pass it once every data partition has read events 0.25 s newer (plus up to one
   100 ms tick, ``dataflows/ticks.py``). Beside it, the input wait: how long the oldest
   message of each of the flow's polls had waited since it was produced (its Kafka
   timestamp; the flow's ``rewardflow_input_wait_seconds`` over the load), which tells a
   late broker from a flow short of CPU. The cores each process used
   from the start of the load until the flow drained it are printed. The load runs 45 s,
   longer than the flow's snapshot interval (30 s), so that the window holds an epoch end:
   each pickles what the epoch changed in every agent it touched and Bytewax writes the
   agents' small state (their bulk is in the cold store, ``dataflows/cold_store.py``), the
   flow's largest stall, whose mean per process the table gives from the flow's own
   metrics (until 2026-12-05 the load ran 15 s and usually missed it; the table says how
   many epoch ends the window held).

Prints a table, writes ``bench/out/pipeline.json``. Everything is bounded in count and time,
loopback only; every child process is stopped on exit (also on Ctrl-C / SIGTERM).
Variants (labelled in the output): ``--batch-size``, ``--policy-every``, ``--snapshot``,
``--flow-procs N`` (N co-partitioned flow processes, ``RF_DATAFLOW_PROCESSES``; with
``--cluster`` one Bytewax cluster of N processes instead, ``-i I -a host:p1;...``, recovery
store with N partitions), ``--policy-interval`` (``RF_POLICY_MIN_INTERVAL_SECONDS``),
``--gc-threshold`` (the flow's ``RF_DATAFLOW_GC_THRESHOLD``; 0 = Python's default).
``python -m bench.flow_profile`` profiles the flow's CPU without Kafka or Redis;
``python -m bench.capacity`` runs this benchmark at several live rates (freshness against load).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pipeline_load import (
    _live_load,
    mixed_events,
    produce_all,
    raw_consume,
    stamped,
)
from bench.pipeline_options import label, parse_args
from bench.pipeline_parts import (
    Flow,
    ProbeWatcher,
    Summaries,
    _cpu_seconds,
    _pct,
    _pid,
    _start_pyspy,
    _stop_pyspy,
    hist_quantile,
    machine_busy,
    table,
    wait_consumed,
)
from stack.progress import redraw_every


def run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915
    from schemas.settings import Settings
    from stack.broker import EmbeddedBroker, create_topics
    from stack.ports import free_port
    from stack.redis_server import RedisServer

    progress = not args.no_progress
    work = Path(tempfile.mkdtemp(prefix="rf-bench-pipeline-"))
    broker = redis_srv = flow = loader = watcher = None
    result: dict[str, Any] = {
        "label": args.label or label(args), "events": args.events, "agents": args.agents,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": os.getloadavg()},
        "variant": {"batch_size": args.batch_size, "policy_every_n_rewards": args.policy_every,
                    "policy_min_interval_seconds": args.policy_interval,
                    "snapshot_seconds": args.snapshot, "idle_watermark_seconds": args.idle,
                    "allowed_lateness_seconds": args.lateness, "flow_procs": args.flow_procs,
                    "cluster": args.cluster,
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
                     policy_min_interval_seconds=args.policy_interval,
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
        flow = Flow(s, args.flow_procs, work, cluster=args.cluster)
        t_start = time.time()
        flow.start()
        flow.wait_ready()
        t_ready = time.time()
        pids = flow.pids()
        svc = {"broker": [_pid(broker)], "redis": [_pid(redis_srv)]}
        cpu0 = _cpu_seconds(pids)
        svc0 = {k: _cpu_seconds(v) for k, v in svc.items()}
        busy0 = machine_busy()
        spy = _start_pyspy(args.pyspy, pids) if args.pyspy else None
        first, done, n_in = wait_consumed(summ, len(msgs), args.timeout, progress,
                                          "end to end")
        if spy is not None:
            _stop_pyspy(spy)
        cpu1 = _cpu_seconds(pids)
        svc1 = {k: _cpu_seconds(v) for k, v in svc.items()}
        busy1 = machine_busy()
        if done is None:
            msg = (f"flow consumed {n_in} of {len(msgs)} within {args.timeout}s "
                   f"(alive={flow.alive()}); see {work}")
            raise RuntimeError(msg)
        e2e = len(msgs) / (done - t_ready)
        sums = flow.metric_sums()  # one scrape of the flow processes for every figure below
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
            "sink_seconds": {"redis": sums["redis"], "kafka": sums["kafka"]},
            # agent document sets written per event (each agent at most one per
            # RF_PROJECTION_WRITE_SECONDS: a per-agent cost, far higher live than from a backlog)
            "redis_documents_per_event": round(sums["documents"] / len(msgs), 3),
            "cpu_us_per_event": {
                "flow": round((cpu1 - cpu0) / len(msgs) * 1e6, 1),
                **{k: round((svc1[k] - svc0[k]) / len(msgs) * 1e6, 1) for k in svc},
                "whole machine": round((busy1 - busy0) / len(msgs) * 1e6, 1)},
            "machine_busy_cores": round((busy1 - busy0) / (done - t_ready), 2),
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
                args.probe_ms / 1000, 11, ready, go, child, args.linger_ms))
            loader.start()
            if not ready.wait(120):
                msg = "load generator did not get ready"
                raise RuntimeError(msg)
            watcher.start()
            load0 = os.getloadavg()[0]
            cpu0 = _cpu_seconds(pids)
            svc0 = {k: _cpu_seconds(v) for k, v in svc.items()}
            own0 = time.process_time()
            busy0 = machine_busy()
            wait0 = flow.histogram("rewardflow_input_wait_seconds")
            docs0 = flow.metric_sums()["documents"]
            go.set()
            from tqdm import tqdm
            for _ in tqdm(range(int(args.live_seconds * 10)), desc="live load",
                          disable=not progress, unit="x100ms",
                          mininterval=redraw_every()):
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
            svc1 = {k: _cpu_seconds(v) for k, v in svc.items()}
            busy1 = machine_busy()
            own1 = time.process_time()
            # the last probes: give them up to 5 s
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(
                    n not in watcher.seen[a] for a, n, _ in live["probes"]):
                time.sleep(0.05)
            watcher.stop_event.set()
            probe_docs = [d for d in watcher.summ.docs() if d]
            fresh, missing = [], 0
            series: list[tuple[float, float]] = []  # (sent after the load began, freshness)
            for a, n, t_send in live["probes"]:
                t_seen = watcher.seen[a].get(n)
                if t_seen is None:
                    missing += 1
                else:
                    fresh.append(t_seen - t_send)
                    series.append((round(t_send - live["t0"], 3), round(t_seen - t_send, 4)))
            dur = live["t1"] - live["t0"]
            span_s = (drained or time.time()) - live["t0"]
            snaps = flow.metric_sums()  # epoch-end snapshots and documents, one scrape
            wait1 = flow.histogram("rewardflow_input_wait_seconds")
            # the flow's epochs end every snapshot_seconds from when it started running (each
            # re-pickles and writes the state of every agent it touched: the largest stall)
            first_epoch = math.ceil((live["t0"] - t_ready) / s.snapshot_seconds)
            last_epoch = math.floor((live["t1"] - t_ready) / s.snapshot_seconds)
            epochs = max(0, last_epoch - first_epoch + 1)
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
                # how long the oldest message of each poll waited for the flow
                "input_wait_p50_s": _r(hist_quantile(wait0, wait1, 0.5)),
                "input_wait_p99_s": _r(hist_quantile(wait0, wait1, 0.99)),
                "redis_documents_per_event":
                    round((snaps["documents"] - docs0) / live["produced"], 3)
                    if live["produced"] else None,
                "epoch_ends_in_window": epochs, "snapshot_seconds": s.snapshot_seconds,
                # every epoch end of the run (each process snapshots its agent_shards shards)
                "epoch_end_snapshot_s_per_process": round(
                    snaps["snapshot_s"] / (snaps["snapshot_calls"] / s.agent_shards), 3)
                if snaps["snapshot_calls"] else None,
                "epoch_end_mb_to_bytewax_per_process": round(
                    snaps["snapshot_bytes"] / (snaps["snapshot_calls"] / s.agent_shards) / 1e6,
                    1) if snaps["snapshot_calls"] else None,
                "cold_store_mb": round(snaps["cold_bytes"] / 1e6, 1),
                "consumed_all": drained is not None,
                "flow_cpu_share": round((cpu1 - cpu0) / ((drained or time.time()) - live["t0"]),
                                        2),
                "load1_at_start": load0,
                "cpu_cores": {"flow": round((cpu1 - cpu0) / span_s, 2),
                              **{k: round((svc1[k] - svc0[k]) / span_s, 2) for k in svc},
                              "load generator": round(live["cpu_seconds"] / span_s, 2),
                              "bench (polling Redis)": round((own1 - own0) / span_s, 2),
                              "whole machine": round((busy1 - busy0) / span_s, 2)},
                "series": series,
                "note": "includes the watermark wait by design: explicit feedback applies once "
                        "the agent's watermark passes it (allowed lateness / idle fallback "
                        f"{s.allowed_lateness_seconds}/{s.idle_watermark_seconds} s)",
            }
        result["machine"]["load_after"] = os.getloadavg()
    finally:
        # every child is stopped even when stopping another fails (a run that left its
        # broker or flow running skewed the next run's figures)
        with contextlib.ExitStack() as stops:
            if broker is not None:
                stops.callback(broker.stop)
            if redis_srv is not None:
                stops.callback(redis_srv.stop)
            if flow is not None:
                stops.callback(flow.stop)
            if watcher is not None:
                watcher.stop_event.set()
            if loader is not None and loader.is_alive():
                loader.terminate()
                loader.join(5)
        if args.keep_logs:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__)

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
