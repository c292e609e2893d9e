"""Freshness against load: ``python -m bench.capacity [--rates 10000,12500,15000,17500,20000]``.

One :mod:`bench.pipeline` run per rate, lowest first, each with its own broker, Redis and
flow processes (``--flow-procs 2`` by default): a short backlog (``--events``, so that the
flow has its agents), then the live load with its freshness probes (45 s, so the window
holds an epoch end). Per rate it prints the freshness p50 / p99 (feedback handed to the
producer -> Redis shows it), the input wait p99 (how long the oldest message of a poll
waited for the flow) and the cores the flow and the whole machine used; then the highest
rate at which the p99 stayed under the target (1 s) *and* every lower rate did too. When
even the lowest rate misses it (a smaller or busier machine), the sweep steps down, halving
the rate, until one meets it (at most ``--step-down`` more rates, 3 by default, never below
500 events/s), so that it still ends with a figure to size by.

That rate is the figure to size a deployment by: the freshness a process keeps depends on
the CPU it has to spare, and on a shared machine the broker, Redis and the load generator
take their part of the same cores (the table shows how much). Writes
``bench/out/capacity.json`` and ``bench/out/capacity.png`` (p50 / p99 against rate with the
target drawn in, and the cores busy). Bounded: at most 8 rates of at most 120 s each,
loopback only, every child stopped on exit (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import pipeline
from bench.pipeline_options import parse_args

OUT = Path(__file__).parent / "out" / "capacity.json"


def point(res: dict[str, Any]) -> dict[str, Any]:
    """The figures of one :func:`bench.pipeline.run` result that the sweep reports."""
    f = res.get("freshness") or {}
    cores = f.get("cpu_cores", {})
    return {"rate": f.get("target_rate"), "achieved_rate": f.get("achieved_rate"),
            "p50_s": f.get("p50_s"), "p99_s": f.get("p99_s"), "max_s": f.get("max_s"),
            "probes": f.get("probes"), "probes_missing": f.get("probes_missing"),
            "input_wait_p99_s": f.get("input_wait_p99_s"),
            "epoch_ends_in_window": f.get("epoch_ends_in_window"),
            "consumed_all": f.get("consumed_all", False),
            "flow_cores": cores.get("flow"), "machine_cores": cores.get("whole machine"),
            "end_to_end_per_s": res.get("end_to_end", {}).get("events_per_s")}


def met(p: dict[str, Any], target: float) -> bool:
    """A rate met the target: every event consumed, no probe missing, p99 under it.

    >>> met({"p99_s": 0.8, "consumed_all": True, "probes_missing": 0}, 1.0)
    True
    >>> met({"p99_s": 0.8, "consumed_all": True, "probes_missing": 3}, 1.0)
    False
    """
    return (p.get("p99_s") is not None and p["p99_s"] < target and bool(p.get("consumed_all"))
            and p.get("probes_missing") == 0)


def capacity(points: list[dict[str, Any]], target: float) -> float | None:
    """The highest rate that met the target with every lower measured rate meeting it too
    (a rate measured twice must meet it both times); None if the lowest did not.

    >>> pts = [{"rate": r, "p99_s": s, "consumed_all": True, "probes_missing": 0}
    ...        for r, s in [(10e3, 0.7), (15e3, 0.9), (17.5e3, 1.3), (20e3, 0.95)]]
    >>> capacity(pts, 1.0)   # 20k/s under 1 s once, but 17.5k/s was not: 15k/s
    15000.0
    >>> capacity(pts[2:3], 1.0) is None
    True
    """
    best = None
    for rate in sorted({p["rate"] for p in points}):
        if not all(met(p, target) for p in points if p["rate"] == rate):
            break
        best = rate
    return best


def step_down(points: list[dict[str, Any]], target: float, left: int,
              floor: float = 500.0) -> float | None:
    """The next lower rate to try when no measured rate met the target: half the lowest
    measured, if runs are ``left`` and it is not below ``floor``; else None.

    >>> pts = [{"rate": 10e3, "p99_s": 4.0, "consumed_all": True, "probes_missing": 0}]
    >>> step_down(pts, 1.0, left=3)
    5000.0
    >>> step_down(pts, 1.0, left=0) is None, step_down(pts, 5.0, left=3) is None
    (True, True)
    >>> step_down([dict(pts[0], rate=800.0)], 1.0, left=3) is None   # 400/s: below the floor
    True
    """
    if left <= 0 or not points or capacity(points, target) is not None:
        return None
    lower = min(p["rate"] for p in points) / 2
    return lower if lower >= floor else None


def table(points: list[dict[str, Any]], target: float, label: str) -> str:
    def ms(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 1000:.0f}"

    rows = [f"rewardflow capacity sweep [{label}]",
            f"  {'rate /s':>8} {'achieved':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
            f"{'wait p99':>9} {'epochs':>6} {'flow cores':>10} {'machine':>8}  p99 < "
            f"{target:g} s"]
    for p in sorted(points, key=lambda p: p["rate"]):  # (stepped-down rates ran last)
        rows.append(
            f"  {p['rate']:>8.0f} {p['achieved_rate'] or 0:>9} {ms(p['p50_s']):>7} "
            f"{ms(p['p99_s']):>7} {ms(p['max_s']):>7} {ms(p['input_wait_p99_s']):>9} "
            f"{p['epoch_ends_in_window'] if p['epoch_ends_in_window'] is not None else '-':>6} "
            f"{p['flow_cores'] if p['flow_cores'] is not None else '-':>10} "
            f"{p['machine_cores'] if p['machine_cores'] is not None else '-':>8}  "
            f"{'yes' if met(p, target) else 'NO'}")
    cap = capacity(points, target)
    rows.append(f"  highest rate with p99 freshness < {target:g} s (and every lower rate): "
                + (f"{cap:,.0f} events/s" if cap is not None else "none of the rates"))
    return "\n".join(rows)


def plot(points: list[dict[str, Any]], target: float, label: str, path: Path) -> Path:
    """Freshness p50 / p99 against rate (target line), cores busy on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((p for p in points if p["p99_s"] is not None), key=lambda p: p["rate"])
    x = [p["rate"] / 1000 for p in pts]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(x, [p["p50_s"] for p in pts], "o-", label="freshness p50")
    ax.plot(x, [p["p99_s"] for p in pts], "s-", label="freshness p99")
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g} s")
    ax.set_xlabel("live load (thousand events/s)")
    ax.set_ylabel("feedback -> visible in Redis (s)")
    ax.set_ylim(0, max([1.5 * target] + [1.1 * p["p99_s"] for p in pts]))
    cores = ax.twinx()
    cores.plot(x, [p["machine_cores"] for p in pts], "^:", color="tab:red",
               label="machine cores busy")
    cores.plot(x, [p["flow_cores"] for p in pts], "v:", color="tab:purple",
               label="flow cores")
    cores.set_ylabel("cores busy")
    cores.set_ylim(0, max([2.0] + [p["machine_cores"] or 0 for p in pts]) * 1.05)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = cores.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    ax.set_title(f"rewardflow freshness against load [{label}]", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rates(text: str) -> list[float]:
    try:
        rates = sorted(float(r) for r in text.split(",") if r.strip())
    except ValueError:
        msg = f"--rates must be numbers separated by commas, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not rates or len(rates) > 8 or rates[0] < 100 or rates[-1] > 100_000:
        msg = f"--rates: 1 to 8 rates in [100, 100000] events/s, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=_rates, default=_rates("10000,12500,15000,17500,20000"),
                   help="live load rates, events/s, comma-separated")
    p.add_argument("--repeats", type=int, default=1, choices=[1, 2, 3],
                   help="runs per rate (a rate counts as met only if every run met it)")
    p.add_argument("--flow-procs", type=int, default=2, choices=[1, 2, 3, 4])
    p.add_argument("--events", type=int, default=20_000, help="backlog before the live load")
    p.add_argument("--live-seconds", type=float, default=45.0)
    p.add_argument("--target", type=float, default=1.0, help="p99 freshness target, seconds")
    p.add_argument("--step-down", type=int, default=3, choices=range(4), metavar="{0..3}",
                   help="when no rate meets the target, halve the lowest up to this many "
                        "times (--repeats runs each)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    label = f"procs={args.flow_procs} live={args.live_seconds:g}s"

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    points: list[dict[str, Any]] = []
    runs = [r for r in args.rates for _ in range(args.repeats)]
    t0 = time.monotonic()
    i, left = 0, args.step_down
    while i < len(runs) or (lower := step_down(points, args.target, left)) is not None:
        if i >= len(runs):  # nothing met the target: try half the lowest rate
            left -= 1
            runs += [lower] * args.repeats
            print(f"no rate met p99 < {args.target:g} s: stepping down to {lower:,.0f} "
                  "events/s", file=sys.stderr, flush=True)
        rate = runs[i]
        i += 1
        run_args = parse_args([
            "--rate", str(rate), "--flow-procs", str(args.flow_procs),
            "--events", str(args.events), "--live-seconds", str(args.live_seconds),
            "--label", f"capacity {rate:.0f}/s", *(["--no-progress"] if args.no_progress
                                                   else [])])
        print(f"[{i}/{len(runs)}] {rate:,.0f} events/s "
              f"({time.monotonic() - t0:.0f} s elapsed)", file=sys.stderr, flush=True)
        try:
            res = pipeline.run(run_args)
        except KeyboardInterrupt:
            print("interrupted; children stopped", file=sys.stderr)
            return 130
        except RuntimeError as exc:  # a run that could not finish counts as not met
            print(f"  run failed: {exc}", file=sys.stderr)
            res = {"freshness": {"target_rate": rate}}
        pt = point(res)
        points.append(pt)
        print(f"  p50 / p99 {pt['p50_s']} / {pt['p99_s']} s, flow {pt['flow_cores']} cores, "
              f"machine {pt['machine_cores']}", file=sys.stderr, flush=True)
    print(table(points, args.target, label))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"label": label, "target_s": args.target, "points": points,
              "capacity_per_s": capacity(points, args.target),
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    png = plot(points, args.target, label, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
