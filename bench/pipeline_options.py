"""The pipeline benchmark's options (:mod:`bench.pipeline`; :mod:`bench.capacity` runs it
with them too)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.pipeline_load import LIVE_LINGER_MS

OUT = Path(__file__).parent / "out" / "pipeline.json"


def label(args: argparse.Namespace, env: dict[str, str] | None = None) -> str:
    """The run's label: the options that change what it measures, and the ``RF_*`` settings
    the environment gives the flow (``env``: ``os.environ``).

    >>> ns = argparse.Namespace(gc_threshold=None, cluster=False, flow_procs=2,
    ...                         batch_size=5000, policy_every=1, policy_interval=1.0,
    ...                         snapshot=30, linger_ms=20)
    >>> label(ns, {"RF_PROJECTION_WRITE_SECONDS": "1", "HOME": "/root"})[-50:]
    '30s load_linger=20ms RF_PROJECTION_WRITE_SECONDS=1'
    """
    gc = "" if args.gc_threshold is None else f" gc={args.gc_threshold}"
    mode = " cluster" if args.cluster and args.flow_procs > 1 else ""
    rf = "".join(f" {k}={v}" for k, v in sorted((os.environ if env is None else env).items())
                 if k.startswith("RF_"))
    return (f"procs={args.flow_procs}{mode} batch={args.batch_size} "
            f"policy_every={args.policy_every} policy_interval={args.policy_interval:g}s "
            f"snapshot={args.snapshot}s load_linger={args.linger_ms}ms{gc}{rf}")


def add_policy_options(p: argparse.ArgumentParser) -> None:
    """``--policy-every`` and ``--policy-interval``: the learner's publishing settings, as
    the pipeline benchmark and the flow profile both take them."""
    from schemas.settings import Settings

    p.add_argument("--policy-every", type=int, default=1, help="RF_POLICY_EVERY_N_REWARDS")
    p.add_argument("--policy-interval", type=float,
                   default=Settings.model_fields["policy_min_interval_seconds"].default,
                   help="RF_POLICY_MIN_INTERVAL_SECONDS (default: the product's)")


def parser(description: str | None = None) -> argparse.ArgumentParser:
    """The benchmark's options."""
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--rate", type=float, default=20_000.0, help="live load events/s (c)")
    p.add_argument("--live-seconds", type=float, default=45.0,
                   help="0 skips (c); at least the snapshot interval, so that the window "
                        "holds an epoch end")
    p.add_argument("--probe-ms", type=float, default=50.0)
    p.add_argument("--linger-ms", type=int, default=LIVE_LINGER_MS,
                   help="linger.ms of the live load's producer (default: the gateway's)")
    from schemas.settings import Settings

    p.add_argument("--batch-size", type=int,
                   default=Settings.model_fields["dataflow_batch_size"].default,
                   help="RF_DATAFLOW_BATCH_SIZE (default: the product's)")
    add_policy_options(p)
    p.add_argument("--snapshot", type=int,
                   default=Settings.model_fields["snapshot_seconds"].default,
                   help="RF_SNAPSHOT_SECONDS (default: the product's)")
    p.add_argument("--idle", type=float, default=0.25, help="RF_IDLE_WATERMARK_SECONDS")
    p.add_argument("--lateness", type=float, default=0.25, help="RF_ALLOWED_LATENESS_SECONDS")
    p.add_argument("--flow-procs", type=int, default=1, choices=[1, 2, 3, 4],
                   help="co-partitioned flow processes (RF_DATAFLOW_PROCESSES)")
    p.add_argument("--cluster", action="store_true",
                   help="with --flow-procs > 1: one Bytewax cluster (-i/-a, items exchanged "
                        "between processes) instead of co-partitioned processes")
    p.add_argument("--gc-threshold", type=int, default=None,
                   help="RF_DATAFLOW_GC_THRESHOLD of the flow (0 = Python's default GC)")
    p.add_argument("--timeout", type=float, default=300.0, help="max seconds for (b)")
    p.add_argument("--label", default="")
    p.add_argument("--pyspy", default="", help="record py-spy raw stacks of (b) to PATH.txt")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_args(argv: list[str] | None = None,
               description: str | None = None) -> argparse.Namespace:
    """Parsed and checked options of :func:`bench.pipeline.run`."""
    p = parser(description)
    args = p.parse_args(argv)
    if args.events < 1000 or args.events > 5_000_000 or args.live_seconds > 120:
        p.error("--events must be in [1000, 5e6] and --live-seconds <= 120")
    return args
