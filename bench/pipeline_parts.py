"""Observers of the pipeline benchmark (:mod:`bench.pipeline`): Redis summary reads, the
freshness probe watcher, the flow processes and their CPU time."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline_load import PROBE_AGENTS
from stack.progress import redraw_every


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
    """Poll until sum(counts.in) == expected: (first seen time, done time, last count).

    A poll reads every agent's summary (1,000 documents: ~10-20 ms of this process's CPU,
    on the same 2 cores as the flow), so it polls every ``interval`` only from 90% on and
    every 5 intervals before: the end time keeps its ``interval`` precision."""
    from tqdm import tqdm

    first = None
    n = 0
    deadline = time.monotonic() + timeout
    with tqdm(total=expected, desc=desc, unit="ev", disable=not progress,
              mininterval=redraw_every()) as bar:
        while time.monotonic() < deadline:
            now = time.time()
            m = summ.counted_in()
            if m and first is None:
                first = now
            bar.update(m - n)
            n = m
            if n >= expected:
                return first, time.time(), n
            time.sleep(interval if n >= 0.9 * expected else 5 * interval)
    return first, None, n


class ProbeWatcher(threading.Thread):
    """Polls the probe agents' summaries; records when each interaction count appears.

    Every ``interval`` (10 ms: the freshness figures are that precise; polling every 2 ms
    cost a tenth of a core on the machine the flow runs on)."""

    interval = 0.01

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
            time.sleep(self.interval)


# -- the flow --------------------------------------------------------------------------------
class Flow:
    """``python -m dataflows.run -p PROCS`` (co-partitioned processes, the product's way to
    scale out) or, with ``cluster``, one Bytewax cluster of ``bytewax.run -i/-a`` processes
    (every item exchanged to the process owning its key)."""

    def __init__(self, settings: Any, procs: int, log_dir: Path, cluster: bool = False
                 ) -> None:
        self.settings, self.procs, self.log_dir = settings, procs, log_dir
        self.cluster = cluster
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        from stack.ports import free_port
        from stack.processes import die_with_parent, settings_env, start_dataflow

        s = self.settings
        if self.procs == 1 or not self.cluster:
            self.children.append(start_dataflow(s, processes=self.procs,
                                                log_path=self.log_dir / "flow.log"))
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
                                                  start_new_session=True,
                                                  preexec_fn=die_with_parent()))

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

    def scrapes(self) -> list[str]:
        """The /metrics text of every flow process that answers."""
        import urllib.request

        texts = []
        for i in range(self.procs):
            url = f"http://127.0.0.1:{self.settings.dataflow_metrics_port + i}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback
                    texts.append(r.read().decode())
            except OSError:
                continue
        return texts

    def metric_sums(self) -> dict[str, float]:
        """A few of the flow processes' Prometheus series so far, summed over the processes:
        seconds in sink calls, epoch-end shard snapshots (seconds, calls, bytes handed to
        Bytewax), bytes in the cold stores, agent document sets written to Redis."""
        from prometheus_client.parser import text_string_to_metric_families

        series = {"redis": "rewardflow_redis_write_seconds_sum",
                  "kafka": "rewardflow_kafka_write_seconds_sum",
                  "snapshot_s": "rewardflow_state_snapshot_seconds_sum",
                  "snapshot_calls": "rewardflow_state_snapshot_seconds_count",
                  "snapshot_bytes": "rewardflow_state_snapshot_bytes_total",
                  "cold_bytes": "rewardflow_cold_store_bytes",
                  "documents": "rewardflow_redis_documents_total"}
        wanted = {sample: key for key, sample in series.items()}
        out = dict.fromkeys(series, 0.0)
        for text in self.scrapes():
            for fam in text_string_to_metric_families(text):
                for smp in fam.samples:
                    key = wanted.get(smp.name)
                    if key is not None and not smp.labels:
                        out[key] += smp.value
        return {k: round(v, 3) for k, v in out.items()}

    def histogram(self, name: str) -> dict[float, float]:
        """Cumulative bucket counts (upper bound -> count) of an unlabelled histogram of
        the flow processes, summed over the processes."""
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[float, float] = {}
        for text in self.scrapes():
            for fam in text_string_to_metric_families(text):
                if fam.name != name:
                    continue
                for smp in fam.samples:
                    if smp.name == name + "_bucket":
                        le = float(smp.labels["le"])
                        out[le] = out.get(le, 0.0) + smp.value
        return out

    def alive(self) -> bool:
        return all(c.poll() is None for c in self.children)

    def stop(self) -> None:
        """Stop every flow process (all of them, even when stopping one fails)."""
        from stack.processes import stop

        with contextlib.ExitStack() as stops:
            for c in self.children:
                stops.callback(stop, c)


def hist_quantile(before: dict[float, float], after: dict[float, float],
                  q: float) -> float | None:
    """The ``q`` quantile of what a histogram observed between two readings of its
    cumulative buckets, interpolated within the bucket as Prometheus'
    ``histogram_quantile`` does (``None`` without observations; the highest finite bound
    when it falls in the +Inf bucket).

    >>> hist_quantile({}, {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, float("inf"): 100.0}, 0.5)
    0.1
    >>> hist_quantile({0.1: 10.0, 0.5: 10.0, 1.0: 10.0, float("inf"): 10.0},
    ...               {0.1: 10.0, 0.5: 20.0, 1.0: 30.0, float("inf"): 30.0}, 0.75)
    0.75
    """
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lo_bound, lo_count = 0.0, 0.0
    for b, c in zip(bounds, counts, strict=True):
        if c >= rank:
            if b == float("inf"):
                return lo_bound
            return lo_bound + (b - lo_bound) * (rank - lo_count) / (c - lo_count)
        lo_bound, lo_count = b, c
    return lo_bound


def _pct(vals: list[float], q: float) -> float | None:
    if not vals:
        return None
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, from /proc/stat)."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(x) for x in f]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


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


def _pid(service: Any) -> int:
    """The process id of a started ``EmbeddedBroker`` / ``RedisServer``."""
    proc = service._proc  # noqa: SLF001 - stack/ exposes no pid; read-only use
    return int(proc.pid) if proc is not None else 0


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
            f"  {'  flow CPU per event':<44}{e['flow_cpu_us_per_event']:>11} us",
            f"  {'  CPU/event flow, broker, Redis, machine':<44}"
            f"{' / '.join(str(v) for v in e['cpu_us_per_event'].values())} us",
            f"  {'  machine busy (of ' + str(res['machine']['cpus']) + ' cores)':<44}"
            f"{e['machine_busy_cores']:>14}",
            f"  {'  flow time in Redis / Kafka sink calls':<44}"
            f"{e['sink_seconds']['redis']:>6.2f} / {e['sink_seconds']['kafka']:.2f} s",
            f"  {'  Redis documents per event':<44}"
            f"{e.get('redis_documents_per_event', 'n/a'):>14}"]
    f = res.get("freshness")
    if f:
        rows += [
            f"  {'live load: target / achieved rate':<44}{f['target_rate']:>7.0f} / "
            f"{f['achieved_rate']:<6}/s",
            f"  {'  freshness p50 (feedback -> Redis)':<44}{_fmt(f['p50_s'])}",
            f"  {'  freshness p99':<44}{_fmt(f['p99_s'])}",
            f"  {'  freshness max':<44}{_fmt(f['max_s'])}",
            f"  {'  probes (missing)':<44}{f['probes']:>10} ({f['probes_missing']})",
            f"  {'  input wait p50 / p99 (produced -> read)':<44}"
            f"{_fmt(f.get('input_wait_p50_s')).strip():>9} / "
            f"{_fmt(f.get('input_wait_p99_s')).strip()}",
            f"  {'  drain after the load stopped':<44}{_fmt(f['drain_after_stop_s'])}",
            f"  {'  Redis documents per event (live)':<44}"
            f"{f.get('redis_documents_per_event', 'n/a'):>14}",
            f"  {'  epoch snapshots inside the load (about)':<44}"
            f"{f.get('epoch_ends_in_window', 'n/a'):>10}"
            + ("" if f.get("epoch_ends_in_window") else
               "  (none: the p99 leaves out the snapshot stall; use --live-seconds >= "
               f"{f['snapshot_seconds']:g})"),
            f"  {'  epoch end: shard snapshots, per process':<44}"
            f"{_fmt(f.get('epoch_end_snapshot_s_per_process'))}",
            f"  {'  epoch end: MB to Bytewax / in cold store':<44}"
            f"{f.get('epoch_end_mb_to_bytewax_per_process')} / {f.get('cold_store_mb')}",
            "  cores busy (load start to drained): " + ", ".join(
                f"{k} {v}" for k, v in f["cpu_cores"].items()),
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
