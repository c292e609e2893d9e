"""Drive rewardflow with simulated people and report how well it learned.

Run against the stack of ``make run``::

    python -m simulator.demo --base-url http://127.0.0.1:8000 \\
        [--weeks 8 --people-per-archetype 3 --seed 7 --out simulator/out]

or without a server, with the learner in-process::

    python -m simulator.demo --in-process

Every simulated person gets their own agent (10 action types, ``context_keys=["day_part"]``).
The oracle and the uniform-random policy are evaluated in-process on the same people and
seeds. The demo prints acceptance per simulated week and archetype beside both baselines,
writes one learning-curve PNG per archetype (plus ``summary.json``) to ``--out``, and
judges the last two weeks: PASS when acceptance is at least 1.5x random and at least 70% of
the oracle for every archetype, else it exits with status 1.

Acceptance is the *expected* acceptance (the true P(accept) of each chosen action in the
state the person was in), which is far less noisy than the Accept/Ignore draws; the draws
are shown beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.life import make_people
from simulator.runner import (
    HttpBackend,
    RunResult,
    learner_backend,
    life_agent_spec,
    oracle_backend,
    random_backend,
    run_life,
)

MIN_RATIO_RANDOM = 1.5
MIN_SHARE_ORACLE = 0.70
#: The random baseline is the exact mean P(accept) over all actions in each visited state
#: (the expectation of a uniform draw), not the draw itself: same mean, less noise.
RANDOM_KEY = "random_expected"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m simulator.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--api-key", default=None)
    ap.add_argument(
        "--in-process", action="store_true", help="no server: the learner runs in this process"
    )
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--people-per-archetype", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epsilon", type=float, default=0.2)
    ap.add_argument(
        "--eval-weeks",
        type=int,
        default=2,
        help="judge the last N weeks (default 2: weeks 7-8 of 8)",
    )
    ap.add_argument(
        "--wait",
        type=float,
        default=3.0,
        help="max seconds to wait for a newer policy after each round (HTTP)",
    )
    ap.add_argument(
        "--sim-time",
        action="store_true",
        help="send simulated event times (slots 6 h apart) instead of wall clock",
    )
    ap.add_argument("--run-id", default=None, help="part of every agent id (default random)")
    ap.add_argument("--out", default="simulator/out")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def _fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))


def weekly_table(agent: RunResult, oracle: RunResult, random: RunResult) -> str:
    """Acceptance per week (rows) and archetype (agent / draws / oracle / random columns)."""
    arch = agent.archetypes
    aw, ad = agent.weekly("expected"), agent.weekly("accepted")
    ow, rw = oracle.weekly("expected"), random.weekly(RANDOM_KEY)
    head2 = ["week", *["agent", "draws", "oracle", "random"] * len(arch)]
    widths = [4, *[max(9, len(a) // 4 + 1) for a in arch for _ in range(4)]]
    lines = [
        "  ".join(["    "] + [a.center(4 * 9 + 6) for a in arch]),
        _fmt_row(head2, widths),
    ]
    for w in range(len(next(iter(aw.values())))):
        cells = [str(w + 1)]
        for a in arch:
            cells += [f"{aw[a][w]:.1%}", f"{ad[a][w]:.1%}", f"{ow[a][w]:.1%}", f"{rw[a][w]:.1%}"]
        lines.append(_fmt_row(cells, widths))
    return "\n".join(lines)


def verdict(
    agent: RunResult, oracle: RunResult, random: RunResult, weeks: Sequence[int]
) -> list[dict[str, Any]]:
    """Per archetype over ``weeks``: acceptance, ratios and pass/fail."""
    rows = []
    for a in agent.archetypes:
        acc = agent.acceptance(weeks, a)
        rnd = random.acceptance(weeks, a, key=RANDOM_KEY)
        orc = oracle.acceptance(weeks, a)
        ok = acc >= MIN_RATIO_RANDOM * rnd and acc >= MIN_SHARE_ORACLE * orc
        rows.append(
            {
                "archetype": a,
                "acceptance": acc,
                "acceptance_draws": agent.acceptance(weeks, a, key="accepted"),
                "random": rnd,
                "oracle": orc,
                "ratio_to_random": acc / rnd,
                "share_of_oracle": acc / orc,
                "pass": bool(ok),
            }
        )
    return rows


def stale_decisions(result: RunResult) -> int:
    """Decisions made on a policy version no newer than the agent's previous decision's.

    Over HTTP each round waits for the policy version to rise, so this should be 0 unless a
    wait timed out or the gateway served a cached policy.

    >>> r = RunResult("x", [{"agent_id": "a", "slot": s, "policy_version": v}
    ...                     for s, v in enumerate([0, 1, 1, 2])])
    >>> stale_decisions(r)
    1
    """
    last: dict[str, int] = {}
    stale = 0
    for rec in sorted(result.records, key=lambda r: (r["agent_id"], r["slot"])):
        prev = last.get(rec["agent_id"])
        if prev is not None and rec["policy_version"] <= prev:
            stale += 1
        last[rec["agent_id"]] = rec["policy_version"]
    return stale


def plot_curves(agent: RunResult, oracle: RunResult, random: RunResult, out: Path) -> list[Path]:
    """One PNG per archetype: weekly acceptance of the agent, the oracle and random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    aw, ad = agent.weekly("expected"), agent.weekly("accepted")
    ow, rw = oracle.weekly("expected"), random.weekly(RANDOM_KEY)
    for a in agent.archetypes:
        weeks = list(range(1, len(aw[a]) + 1))
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
        ax.plot(weeks, ow[a], "--", color="tab:green", label="oracle")
        ax.plot(weeks, aw[a], "-o", color="tab:blue", label=f"{agent.policy} (expected)")
        ax.plot(weeks, ad[a], ":", color="tab:blue", alpha=0.6, label=f"{agent.policy} (draws)")
        ax.plot(weeks, rw[a], "--", color="tab:red", label="random")
        ax.plot(
            weeks,
            [MIN_RATIO_RANDOM * x for x in rw[a]],
            ":",
            color="tab:red",
            alpha=0.4,
            label="1.5x random",
        )
        ax.plot(
            weeks,
            [MIN_SHARE_ORACLE * x for x in ow[a]],
            ":",
            color="tab:green",
            alpha=0.4,
            label="70% of oracle",
        )
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("simulated week")
        ax.set_ylabel("acceptance")
        ax.set_title(f"life world, archetype {a}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = out / f"learning_curve_{a}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    people = make_people(args.people_per_archetype, args.seed)
    spec = life_agent_spec(epsilon=args.epsilon)
    progress = not args.no_progress
    client = None
    if args.in_process:
        backend: Any = learner_backend(seed=args.seed)
        mode = "in-process learner"
    else:
        from gateway.client import RewardflowClient

        client = RewardflowClient(args.base_url, api_key=args.api_key)
        deadline = time.monotonic() + 30.0
        while not client.ready():
            if time.monotonic() > deadline:
                print(
                    f"gateway at {args.base_url} is not ready (GET /readyz); "
                    "start it with `make run`",
                    file=sys.stderr,
                )
                return 2
            time.sleep(0.5)
        backend = HttpBackend(client, wait_seconds=args.wait, send_ts=args.sim_time)
        mode = f"HTTP {args.base_url}"
    print(
        f"rewardflow life-world demo: {mode}; {len(people)} people, {args.weeks} weeks, "
        f"seed {args.seed}, epsilon {args.epsilon}"
    )
    try:
        agent = run_life(
            people,
            backend,
            weeks=args.weeks,
            seed=args.seed,
            run_id=args.run_id,
            spec=spec,
            progress=progress,
        )
    except Exception as exc:
        if client is None or type(exc).__name__ != "RewardflowError":
            raise
        print(
            f"\nthe gateway failed mid-run: {exc}\n(is the stack still up? see its logs)",
            file=sys.stderr,
        )
        return 2
    finally:
        if client is not None:
            client.close()
    oracle = run_life(
        people, oracle_backend(), weeks=args.weeks, seed=args.seed, spec=spec, progress=False
    )
    random = run_life(
        people,
        random_backend(args.seed),
        weeks=args.weeks,
        seed=args.seed,
        spec=spec,
        progress=False,
    )

    print()
    print("Acceptance per simulated week (agent = expected P(accept) of its choices)")
    print(weekly_table(agent, oracle, random))
    n_eval = max(1, min(args.eval_weeks, args.weeks))
    eval_weeks = list(range(args.weeks - n_eval, args.weeks))
    rows = verdict(agent, oracle, random, eval_weeks)
    label = f"weeks {eval_weeks[0] + 1}-{eval_weeks[-1] + 1}"
    print()
    print(
        f"Verdict over {label} (need >= {MIN_RATIO_RANDOM}x random and "
        f">= {MIN_SHARE_ORACLE:.0%} of oracle)"
    )
    widths = [10, 10, 8, 8, 8, 9, 9, 5]
    print(
        _fmt_row(
            ["archetype", "acceptance", "draws", "random", "oracle", "x random", "% oracle", ""],
            widths,
        )
    )
    for r in rows:
        print(
            _fmt_row(
                [
                    r["archetype"],
                    f"{r['acceptance']:.1%}",
                    f"{r['acceptance_draws']:.1%}",
                    f"{r['random']:.1%}",
                    f"{r['oracle']:.1%}",
                    f"{r['ratio_to_random']:.2f}x",
                    f"{r['share_of_oracle']:.0%}",
                    "PASS" if r["pass"] else "FAIL",
                ],
                widths,
            )
        )
    n_decisions = len(agent.records)
    print()
    print(
        f"{n_decisions} decisions in {agent.seconds:.1f}s "
        f"({n_decisions / max(agent.seconds, 1e-9):.0f}/s)"
    )
    if isinstance(backend, HttpBackend):
        st = backend.stats
        print(
            f"policy waits: {st.waits}, mean {st.mean_seconds * 1000:.0f} ms, "
            f"timeouts {st.timeouts} (limit {args.wait}s); decisions on a policy no newer "
            f"than the agent's previous one: {stale_decisions(agent)}"
        )
    out = Path(args.out)
    paths = plot_curves(agent, oracle, random, out)
    summary = {
        "mode": mode,
        "weeks": args.weeks,
        "people_per_archetype": args.people_per_archetype,
        "seed": args.seed,
        "epsilon": args.epsilon,
        "eval_weeks": [w + 1 for w in eval_weeks],
        "weekly": {
            "agent": agent.weekly("expected"),
            "agent_draws": agent.weekly("accepted"),
            "oracle": oracle.weekly("expected"),
            "random": random.weekly(RANDOM_KEY),
        },
        "verdict": rows,
        "seconds": agent.seconds,
    }
    if isinstance(backend, HttpBackend):
        summary["policy_waits"] = {
            "waits": backend.stats.waits,
            "timeouts": backend.stats.timeouts,
            "mean_seconds": backend.stats.mean_seconds,
            "stale_decisions": stale_decisions(agent),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    with (out / "records.jsonl").open("w") as fh:
        for rec in agent.records:
            fh.write(json.dumps(rec) + "\n")
    written = [*paths, out / "summary.json", out / "records.jsonl"]
    print("wrote " + ", ".join(str(p) for p in written))
    ok = all(r["pass"] for r in rows)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
