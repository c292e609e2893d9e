"""Population priors through the running system: a trained population helps new people.

Against the stack of ``make run`` (dataflow, population process and gateway)::

    python -m simulator.population_demo --base-url http://127.0.0.1:8000 \\
        [--train-per-archetype 4 --train-weeks 4 --people-per-archetype 5 --weeks 4 \\
         --seed 7 --algorithm ucb --out simulator/out]

1. **Train.** ``--train-per-archetype`` people of each archetype (seed ``1000 + seed``) use
   agents of template ``life-coach`` for ``--train-weeks`` weeks over HTTP. The population
   process clusters the agents' published policies and writes the template's prior; the
   demo waits until ``GET /v1/templates/life-coach/prior`` reflects the whole population.
   These first agents start without a prior: a cohort. The population process hands them
   its prior while they learn, at most once per ``RF_POPULATION_HANDOFF_SECONDS`` of event
   time; the demo's event time is the gateway's wall clock and a simulated day passes in a
   few seconds, so start the stack with ``RF_POPULATION_HANDOFF_SECONDS=3 make run`` to see
   daily hand-offs (the default, a day, hands off once). The training cohort's acceptance
   per week is printed too (arm ``cohort``), with how many of its agents got a prior.
2. **New people.** ``--people-per-archetype`` new people of each archetype (seed ``seed``)
   get new agents, twice at the same time: with ``template: life-coach`` (the gateway starts
   them from the prior; their learner picks the archetype their first rewards point to)
   and without a template (no prior), each for ``--weeks`` weeks.

It prints acceptance per week and archetype as a share of the oracle's (in the same states)
for both arms, and the interactions until a new person reaches 80% of the oracle
(:mod:`simulator.metrics`), and judges the issue's figures: week 4 >= 90% of the oracle for
every archetype, and new people of a known archetype at 80% of the oracle within 8
interactions (median). Writes ``population_summary.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.life import SLOTS_PER_WEEK, make_people
from simulator.metrics import TARGET, WINDOW, interactions_to_target, summarize_hits
from simulator.runner import HttpBackend, RunResult, life_agent_spec, run_life

TEMPLATE = "life-coach"
WEEK4_SHARE = 0.9
MAX_INTERACTIONS = 8


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m simulator.population_demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--train-per-archetype", type=int, default=4)
    ap.add_argument("--train-weeks", type=int, default=4)
    ap.add_argument("--people-per-archetype", type=int, default=5)
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epsilon", type=float, default=0.2)
    ap.add_argument("--algorithm", default="ucb",
                    help="learner of every agent: ucb, thompson, epsilon_greedy, or 'default' "
                         "(the spec names none)")
    ap.add_argument("--wait", type=float, default=3.0,
                    help="max seconds to wait for a newer policy after each round")
    ap.add_argument("--prior-timeout", type=float, default=60.0,
                    help="max seconds to wait for the prior after training")
    ap.add_argument("--skip-training", action="store_true",
                    help="use the template's current prior as it is")
    ap.add_argument("--out", default="simulator/out")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def agent_spec(epsilon: float, algorithm: str, template: str | None) -> dict[str, Any]:
    """The life-world agent spec with the algorithm and template of one arm.

    >>> agent_spec(0.2, "ucb", None)["template"], agent_spec(0.2, "default", "t")["algorithm"]
    (None, None)
    """
    spec = life_agent_spec(epsilon=epsilon)
    spec["template"] = template
    spec["algorithm"] = None if algorithm == "default" else algorithm
    return spec


def current_prior(client: Any) -> dict[str, Any] | None:
    try:
        return dict(client.prior(TEMPLATE))
    except Exception as exc:  # noqa: BLE001 - 404: no prior yet
        if getattr(exc, "status", None) == 404:
            return None
        raise


def wait_for_prior(client: Any, min_agents: int, timeout: float,
                   after: str | None = None) -> dict[str, Any] | None:
    """The template's prior once it covers ``min_agents`` agents and was refitted after
    ``after`` (an ``updated_at``); ``None`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = current_prior(client)
        if (doc is not None and doc.get("agents", 0) >= min_agents and doc.get("archetypes")
                and (after is None or str(doc.get("updated_at")) > after)):
            return doc
        time.sleep(0.5)
    return None


def handed_prior(client: Any, agent_id: str) -> int | None:
    """The prior version the agent's current policy is blended with (``None``: none); for
    an agent registered before the template had a prior, it came by a live hand-off."""
    version = client.policy(agent_id).get("evidence", {}).get("prior.version")
    return int(version) if version is not None else None


def share_table(runs: dict[str, RunResult], weeks: int) -> tuple[str, dict[str, Any]]:
    """Acceptance / oracle per archetype and week for each arm, as text and data."""
    data: dict[str, Any] = {}
    lines = [f"{'arm':10s} {'archetype':10s} " + " ".join(f"{'wk' + str(w + 1):>6s}"
                                                        for w in range(weeks))]
    for arm, res in runs.items():
        acc, orc = res.weekly("expected"), res.weekly("oracle_expected")
        data[arm] = {}
        for arch in sorted(acc):
            shares = [a / o for a, o in zip(acc[arch], orc[arch], strict=True)]
            data[arm][arch] = {"acceptance": acc[arch], "oracle": orc[arch], "share": shares}
            lines.append(f"{arm:10s} {arch:10s} " + " ".join(f"{s:6.1%}" for s in shares))
    return "\n".join(lines), data


def speed(res: RunResult, weeks: int) -> dict[str, Any]:
    """Interactions to 80% of the oracle: all people, and per archetype."""
    hits = interactions_to_target(res.records)
    arch_of = {r["person_id"]: r["archetype"] for r in res.records}
    out: dict[str, Any] = {"all": summarize_hits(hits, weeks * SLOTS_PER_WEEK),
                           "per_person": hits}
    for arch in sorted(set(arch_of.values())):
        sub = {p: h for p, h in hits.items() if arch_of[p] == arch}
        out[arch] = summarize_hits(sub, weeks * SLOTS_PER_WEEK)
    return out


def _ready(client: Any) -> bool:
    deadline = time.monotonic() + 30.0
    while not client.ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from gateway.client import RewardflowClient

    client = RewardflowClient(args.base_url, api_key=args.api_key)
    if not _ready(client):
        print(f"gateway at {args.base_url} is not ready; start it with `make run`",
              file=sys.stderr)
        return 2
    progress = not args.no_progress
    t0 = time.monotonic()
    before = current_prior(client)
    if not args.skip_training:
        trainees = make_people(args.train_per_archetype, seed=1000 + args.seed)
        print(f"training: {len(trainees)} people of template {TEMPLATE!r}, "
              f"{args.train_weeks} weeks, algorithm {args.algorithm}")
        train = run_life(trainees, HttpBackend(client, wait_seconds=args.wait),
                         weeks=args.train_weeks, seed=1000 + args.seed,
                         spec=agent_spec(args.epsilon, args.algorithm, TEMPLATE),
                         progress=progress)
        print(f"  {len(train.records)} decisions in {train.seconds:.0f} s")
    min_agents = (before or {}).get("agents", 0) if args.skip_training else len(
        make_people(args.train_per_archetype, seed=1000 + args.seed))
    after = None if args.skip_training else str((before or {}).get("updated_at", ""))
    prior = wait_for_prior(client, min_agents, args.prior_timeout, after)
    if prior is None:
        print("no population prior appeared (is the population process running? see "
              "var/population.log)", file=sys.stderr)
        return 2
    print(f"prior v{prior['version']}: {prior['explanation']} "
          f"sizes {[a['size'] for a in prior['archetypes']]}")

    people = make_people(args.people_per_archetype, seed=args.seed)
    arms = {"prior": agent_spec(args.epsilon, args.algorithm, TEMPLATE),
            "no prior": agent_spec(args.epsilon, args.algorithm, None)}
    runs: dict[str, RunResult] = {}
    # one HTTP client per arm: each arm's people share it from their own threads
    clients = {arm: RewardflowClient(args.base_url, api_key=args.api_key) for arm in arms}
    backends = {arm: HttpBackend(clients[arm], wait_seconds=args.wait) for arm in arms}

    def play(arm: str) -> None:
        runs[arm] = run_life(people, backends[arm], weeks=args.weeks, seed=args.seed,
                             spec=arms[arm], progress=progress and arm == "prior")

    print(f"new people: {len(people)} per arm, {args.weeks} weeks, both arms at once")
    threads = [threading.Thread(target=play, args=(arm,)) for arm in arms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not args.skip_training:
        agents = sorted({r["agent_id"] for r in train.records})
        handed = [v for a in agents if (v := handed_prior(client, a)) is not None]
        print(f"training cohort: {len(handed)} of its {len(agents)} agents learn with a "
              f"prior handed to them while live" + (f" (newest v{max(handed)})" if handed
                                                     else ""))
    for c in (client, *clients.values()):
        c.close()
    if set(runs) != set(arms):
        print("an arm failed (see the traceback above)", file=sys.stderr)
        return 2
    runs = {arm: runs[arm] for arm in arms}

    if not args.skip_training:
        runs = {"cohort": train, **runs}
    text, shares = share_table(runs, args.weeks)
    print("\nAcceptance / oracle per simulated week (expected P(accept), same states)")
    print(text)
    speeds = {arm: speed(res, args.weeks) for arm, res in runs.items()}
    print(f"\nInteractions until a new person reaches {TARGET:.0%} of the oracle "
          f"(window {WINDOW}):")
    for arm, sp in speeds.items():
        per_arch = ", ".join(f"{a} {v['median']:g}" for a, v in sp.items()
                             if a not in ("all", "per_person"))
        print(f"  {arm:9s} median {sp['all']['median']:g} (per archetype: {per_arch}); "
              f"within {MAX_INTERACTIONS}: {sp['all']['within_8']:.0%}; "
              f"not reached: {sp['all']['not_reached']}")
    wk = min(4, args.weeks) - 1
    wk_prior = {a: v["share"][wk] for a, v in shares["prior"].items()}
    ok_week = all(v >= WEEK4_SHARE for v in wk_prior.values())
    ok_speed = all(v["median"] is not None and v["median"] <= MAX_INTERACTIONS
                   for a, v in speeds["prior"].items() if a not in ("all", "per_person"))
    print(f"\nweek {wk + 1} >= {WEEK4_SHARE:.0%} of oracle for every archetype (prior): "
          f"{'PASS' if ok_week else 'FAIL'} "
          f"({', '.join(f'{a} {v:.1%}' for a, v in wk_prior.items())})")
    print(f"median interactions to {TARGET:.0%} of oracle <= {MAX_INTERACTIONS} for every "
          f"archetype (prior): {'PASS' if ok_speed else 'FAIL'}")
    waits = {arm: {"waits": b.stats.waits, "timeouts": b.stats.timeouts,
                   "mean_seconds": b.stats.mean_seconds} for arm, b in backends.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"args": vars(args), "prior": prior, "shares": shares, "speed": speeds,
               "policy_waits": waits, "seconds": round(time.monotonic() - t0, 1),
               "pass": {"week4": ok_week, "speed": ok_speed}}
    (out / "population_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print("policy waits: " + "; ".join(
        f"{a} mean {w['mean_seconds'] * 1000:.0f} ms, timeouts {w['timeouts']}"
        for a, w in waits.items()))
    print(f"wrote {out / 'population_summary.json'} in {summary['seconds']} s")
    return 0 if ok_week and ok_speed else 1


if __name__ == "__main__":
    sys.exit(main())
