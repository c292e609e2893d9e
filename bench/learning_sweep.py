"""Seed sweeps of the issue-4 figures, per archetype and per seed (in-process, no VW).

``python -m bench.learning_sweep life [--seeds 0 1 2 --algorithms epsilon_greedy ucb]``
    The population demo's protocol in-process: a prior is fitted on a training population
    (``--train-per-archetype`` people of each archetype, seed ``1000 + seed``, ``--train-weeks``
    weeks, the same algorithm), then ``--people-per-archetype`` new people per archetype
    (seed ``seed``) play ``--weeks`` weeks with the prior and without it. Prints, per
    algorithm, arm, seed and archetype: week-4 acceptance / oracle and the median
    interactions to 80% of the oracle (:mod:`simulator.metrics`).

``python -m bench.learning_sweep companion [--seeds 0 1 2 3 4 5 --people 10 --interactions 1500
--lag N]``
    rewardflow's trait tuning only: per seed, how many people end closer to their hidden
    taste over the rooms they are met in (:func:`simulator.companion.room_trait_distance`)
    than they started, the same against the DM taste, the mean distances start -> end, bound
    violations, and every person not closer by either measure.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any, TypedDict

from bench.learning import rewardflow_backend, train_prior
from bench.learning_cohort import run_cohort
from bench.learning_companion import LaggedCompanion, RewardflowCompanion, run_companion
from simulator import companion as comp
from simulator.life import NUMERIC_FEATURES, SLOTS_PER_WEEK, make_people
from simulator.metrics import interactions_to_target
from simulator.runner import RunResult, run_life


def life_arm(seed: int, algorithm: str, prior: Any, per_archetype: int, weeks: int,
             features: Sequence[str] = ()) -> dict[str, ArchetypeSummary]:
    """Per archetype: week-4 (or last week) share of the oracle and median to 80%."""
    people = make_people(per_archetype, seed=seed)
    be = rewardflow_backend(seed, algorithm, prior=prior, features=features)
    res: RunResult = run_life(people, be,
                              weeks=weeks, seed=seed, run_id=f"s{seed}", progress=False)
    return summary(res, weeks)


def cohort_arm(seed: int, algorithm: str, per_archetype: int, weeks: int
               ) -> dict[str, ArchetypeSummary]:
    """:func:`life_arm` for the same people starting together without a prior, with live
    hand-offs at the product's defaults (:func:`bench.learning_cohort.run_cohort`)."""
    res, _ = run_cohort(make_people(per_archetype, seed=seed), seed, algorithm, weeks)
    return summary(res, weeks)


class ArchetypeSummary(TypedDict):
    """One archetype's figures in one run."""

    week4: float  #: week-4 (or last week) acceptance / oracle
    median: float  #: median interactions until a person reaches 80% of the oracle
    hits: list[int]  #: those interactions per person (never: the run's length + 1)


def summary(res: RunResult, weeks: int) -> dict[str, ArchetypeSummary]:
    """Per archetype of a run: week-4 (or last week) share of the oracle, median to 80%."""
    acc, orc = res.weekly("expected"), res.weekly("oracle_expected")
    hits = interactions_to_target(res.records)
    arch_of = {r["person_id"]: r["archetype"] for r in res.records}
    wk = min(4, weeks) - 1
    out: dict[str, ArchetypeSummary] = {}
    for arch in sorted(acc):
        vals = [h if h is not None else weeks * SLOTS_PER_WEEK + 1
                for p, h in hits.items() if arch_of[p] == arch]
        out[arch] = {"week4": acc[arch][wk] / orc[arch][wk],
                     "median": float(statistics.median(vals)), "hits": vals}
    return out


def sweep_life(seeds: Sequence[int], algorithms: Sequence[str], per_archetype: int,
               weeks: int, train_per_archetype: int, train_weeks: int,
               linear: bool = False, cohort: bool = False) -> dict[str, Any]:
    """The prior and no-prior arms per algorithm and seed (``linear``: also epsilon-greedy
    with linear scoring over :data:`simulator.life.NUMERIC_FEATURES`, both arms;
    ``cohort``: also the same people starting together with live hand-offs)."""
    rows: dict[str, Any] = {}
    for algo in algorithms:
        for seed in seeds:
            prior = train_prior(seed, train_per_archetype, train_weeks, algo)
            for arm, pr in (("prior", prior), ("no prior", None)):
                rows[f"{algo}|{arm}|{seed}"] = life_arm(seed, algo, pr, per_archetype, weeks)
            if cohort:
                rows[f"{algo}|cohort|{seed}"] = cohort_arm(seed, algo, per_archetype, weeks)
            if linear and algo == "epsilon_greedy":
                for arm, pr in (("lin+prior", prior), ("linear", None)):
                    rows[f"{algo}|{arm}|{seed}"] = life_arm(seed, algo, pr, per_archetype,
                                                            weeks, NUMERIC_FEATURES)
    print(f"{'algorithm':15s} {'arm':9s} {'seed':>4s}  "
          + "  ".join(f"{a[:9]:>9s} wk4 t80" for a in ("night_owl", "introvert", "workhorse")))
    pooled: dict[str, dict[str, list[float]]] = {}
    for key, per in rows.items():
        algo, arm, seed_no = key.split("|")
        cells = "  ".join(f"{per[a]['week4']:13.3f} {per[a]['median']:>4g}" for a in sorted(per,
                          key=("night_owl", "introvert", "workhorse").index))
        print(f"{algo:15s} {arm:9s} {seed_no:>4s}  {cells}")
        for a, v in per.items():
            p = pooled.setdefault(f"{algo}|{arm}|{a}", {"week4": [], "hits": [], "medians": []})
            p["week4"].append(v["week4"])
            p["hits"] += v["hits"]
            p["medians"].append(v["median"])
    print("\npooled over seeds: mean week-4/oracle (min over seeds), median of all people's "
          "interactions to 80% (max of per-seed medians)")
    for key, p in pooled.items():
        algo, arm, a = key.split("|")
        print(f"{algo:15s} {arm:9s} {a:10s} wk4 {statistics.mean(p['week4']):.3f} "
              f"(min {min(p['week4']):.3f})  t80 {statistics.median(p['hits']):g} "
              f"(max seed median {max(p['medians']):g})")
    return rows


def sweep_companion(seeds: Sequence[int], people: int, interactions: int,
                    algorithm: str, lag: int = 0) -> dict[int, Any]:
    """Per seed: people ending closer to their taste over the rooms they are met in
    (``lag``: every reward arrives that many decisions late, :class:`LaggedCompanion`).

    "Closer" is :func:`simulator.companion.room_trait_distance` (the expected distance to
    the person's room-shifted taste over the world's room distribution) at the end below its
    value at the start; the count against the DM taste alone is printed beside it.
    """
    out: dict[int, Any] = {}
    closer_total = dm_total = n_total = 0
    misses: list[str] = []
    for seed in seeds:
        ppl = comp.make_companion_people(people, seed=seed)
        pol = LaggedCompanion(algorithm, lag) if lag else RewardflowCompanion(algorithm)
        res = run_companion(ppl, pol, interactions, seed, block=interactions // 10)
        closer = round(res["people_closer_at_end"] * people)
        dm_closer = round(res["dm_people_closer_at_end"] * people)
        closer_total += closer
        dm_total += dm_closer
        n_total += people
        out[seed] = res
        print(f"seed {seed}: {closer}/{people} closer (DM taste: {dm_closer}/{people}), "
              f"distance {res['trait_distance_start']:.3f} -> {res['trait_distance_end']:.3f} "
              f"(DM {res['dm_trait_distance_start']:.3f} -> {res['dm_trait_distance_end']:.3f}),"
              f" violations {res['bound_violations']:.0f}, "
              f"cumulative reward {res['cumulative_reward']:.0f}")
        for agent_id, d0, d1, dm0, dm1 in res["per_person"]:
            if not (d1 < d0 and dm1 < dm0):
                misses.append(f"  {agent_id}: distance {d0:.3f} -> {d1:.3f}, "
                              f"DM {dm0:.3f} -> {dm1:.3f}")
    rows = [row for res in out.values() for row in res["per_person"]]
    print(f"all: {closer_total}/{n_total} closer over their rooms "
          f"(DM taste: {dm_total}/{n_total}), mean distance "
          f"{statistics.mean(r[1] for r in rows):.3f} -> {statistics.mean(r[2] for r in rows):.3f}"
          f" (DM {statistics.mean(r[3] for r in rows):.3f} -> "
          f"{statistics.mean(r[4] for r in rows):.3f})")
    if misses:
        print("not closer by at least one measure:")
        print("\n".join(misses))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world", choices=["life", "companion"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--algorithms", nargs="+", default=["epsilon_greedy", "ucb"])
    ap.add_argument("--people-per-archetype", type=int, default=5)
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--train-per-archetype", type=int, default=4)
    ap.add_argument("--train-weeks", type=int, default=4)
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--interactions", type=int, default=1500)
    ap.add_argument("--lag", type=int, default=0,
                    help="companion: rewards arrive this many decisions late")
    ap.add_argument("--linear", action="store_true",
                    help="life: also epsilon-greedy with linear scoring over the meters")
    ap.add_argument("--cohort", action="store_true",
                    help="life: also the people starting together without a prior, handed "
                         "the population's prior while live (bench.learning_cohort)")
    args = ap.parse_args(argv)
    if args.world == "life":
        sweep_life(args.seeds, args.algorithms, args.people_per_archetype, args.weeks,
                   args.train_per_archetype, args.train_weeks, args.linear, args.cohort)
    else:
        sweep_companion(args.seeds, args.people, args.interactions, args.algorithms[0],
                        args.lag)


if __name__ == "__main__":
    main()
