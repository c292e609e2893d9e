"""What an agent's recovery state costs after a long uptime.

``python -m bench.state_growth [--hours 24] [--rate 1.0]`` feeds one agent ``hours`` of the
pipeline benchmark's mixed events at ``rate`` events/s of event time (decisions, feedback,
implicit and terminal signals) through :class:`dataflows.agent_state.AgentState` with the
product's settings (a one-day dedup horizon), then measures what each epoch and each event
pay for the dedup memory that uptime built:

- the snapshot: pickling the agent as the flow does for each agent an epoch touched,
  after one more event (the steady state), and restoring it;
- the prune that runs every 512 events of the agent;

each beside the same ids held as one plain dict (the layout before :mod:`dataflows.dedup`),
measured in the same run, with the ratio. No services; about 10 s for a day at 1 event/s.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from bench.pipeline_load import _iso, mixed_events
from dataflows import cold_store
from dataflows.agent_state import AgentState
from dataflows.flow import join_config
from dataflows.recovery_store import open_cold_store
from schemas.events import EVENT_ADAPTER
from schemas.settings import Settings
from stack.progress import redraw_every


def _best(fn: Any, repeat: int = 5) -> float:
    """Best wall time of ``fn()`` over ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _t(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def build(hours: float, rate: float, progress: bool = True) -> tuple[AgentState, Any]:
    """One agent after ``hours`` of events at ``rate``/s, and its next event (not applied)."""
    cfg = join_config(Settings())
    n = int(hours * 3600 * rate) + 1
    evs = mixed_events(n, agents=1, seed=11, rate=rate)
    t0 = time.time() - hours * 3600 - 60
    st = AgentState("default", "ag0", cfg)
    parsed = []
    for off, ti, _key, doc in evs:
        doc["ts"] = _iso(t0 + off)
        parsed.append((EVENT_ADAPTER.validate_json(orjson.dumps(doc)), ("bench", ti, 0)))
    for ev, meta in tqdm(parsed[:-1], desc="events", unit="ev", disable=not progress,
                         mininterval=redraw_every()):
        st.ingest(ev, meta, now=0.0)
    return st, parsed[-1]


def _next_event(st: AgentState) -> tuple[Any, Any]:
    """A fresh decision one second after the agent's newest event, with its meta."""
    top = st.max_ts_any or 0.0
    doc = {"event_id": str(uuid.uuid4()), "tenant": "default", "ts": _iso(top + 1.0),
           "schema_version": 1, "type": "DecisionMade", "decision_id": str(uuid.uuid4()),
           "agent_id": st.agent_id, "user_id": "u0", "action": "a", "propensity": 0.5,
           "explored": False, "policy_version": 0, "bucket": "*"}
    return EVENT_ADAPTER.validate_json(orjson.dumps(doc)), ("bench", 0, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.state_growth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--rate", type=float, default=1.0, help="events/s of event time")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not 0 < args.hours * args.rate * 3600 <= 2_000_000:
        p.error("--hours x --rate x 3600 must be in (0, 2e6] events")
    st, (last, meta) = build(args.hours, args.rate, not args.no_progress)
    horizon = st.wm - st.cfg.dedup_horizon
    dumps = pickle.dumps
    hp = pickle.HIGHEST_PROTOCOL
    dumps(st, protocol=hp)  # the first snapshot seals what the watermark passed
    st.ingest(last, meta, now=0.0)  # then the agent changes: the next epoch re-pickles it
    blob = dumps(st, protocol=hp)
    snap = _best(lambda: dumps(st, protocol=hp))
    restore = _best(lambda: pickle.loads(blob))  # noqa: S301 - our own blob

    def prune() -> None:
        st.seen.expire(horizon)
        st.closed.expire(horizon)

    prune_s = _best(prune)
    # the layout before: the same ids and times as plain dicts
    seen = {k: t for b, ids in st.seen._buckets.items() for k in ids  # noqa: SLF001
            for t in (b * st.seen.span,)}
    closed = {k: t for b, ids in st.closed._buckets.items() for k in ids  # noqa: SLF001
              for t in (b * st.closed.span,)}
    old = {**st.__getstate__(), "seen": seen, "closed": closed}
    old_blob = dumps(old, protocol=hp)
    old_snap = _best(lambda: dumps(old, protocol=hp))
    old_restore = _best(lambda: pickle.loads(old_blob))  # noqa: S301 - our own blob
    old_prune = _best(lambda: ({k: t for k, t in seen.items() if t >= horizon},
                               {k: t for k, t in closed.items() if t >= horizon}))
    print(f"one agent after {args.hours:g} h at {args.rate:g} events/s: {len(st.seen):,} event "
          f"ids and {len(st.closed):,} closed decisions kept (dedup horizon "
          f"{st.cfg.dedup_horizon:g} s), snapshot {len(blob) / 1e6:.1f} MB")
    print(f"{'measure':<40}{'buckets':>12}{'one dict':>12}{'ratio':>9}")
    for name, new, before in (("snapshot (agent touched this epoch)", snap, old_snap),
                              ("restore", restore, old_restore),
                              ("prune (every 512 events)", prune_s, old_prune)):
        print(f"{name:<40}{_t(new):>12}{_t(before):>12}{before / new:>8,.1f}x")
    per_event = old_prune / 512 * 1e6
    print(f"the one-dict prune cost {per_event:.1f} us per event of the agent; "
          f"a flow epoch pays the snapshot once per agent it touched")
    # with recovery on, the pieces live in the process's cold store: the snapshot Bytewax
    # writes carries their references
    with tempfile.TemporaryDirectory() as tmp:
        store = open_cold_store(Path(tmp), 0, grace=0.0)
        try:
            cold = pickle.loads(blob)  # noqa: S301 - restored with a store: pieces move there
            cold.cfg = st.cfg
            store.flush(1)  # type: ignore[union-attr]
            cold.ingest(*_next_event(cold), now=0.0)
            ref_blob = dumps(cold, protocol=hp)
            ref_snap = _best(lambda: dumps(cold, protocol=hp))
        finally:
            cold_store.activate(None)
            store.close()  # type: ignore[union-attr]
    print(f"with the cold store (recovery on): snapshot {_t(ref_snap)}, "
          f"{len(ref_blob) / 1e3:.1f} KB to Bytewax instead of {len(blob) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
