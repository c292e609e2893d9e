"""Learning quality: rewardflow's learner vs Vowpal Wabbit vs uniform random vs the oracle.

``python -m bench.learning [--quick]`` runs, in one process, on the same simulated people and
seeds:

Life world (:mod:`simulator.life`, driven by :func:`simulator.runner.run_life`)
    * ``rewardflow-<algo>``: the real learner in-process; every decision is
      :meth:`schemas.policy.PolicyDocument.choose` over the learner's last *published*
      document (exactly the gateway's rule), every reward goes through ``update`` +
      ``maybe_publish`` as in the dataflow.
    * ``rewardflow-<algo>+prior``: the same, with the template's population prior learned
      (by :class:`dataflows.population.Population`) from a *separate* training population
      (other seeds) of the same archetypes.
    * ``vw``: one ``vowpalwabbit.Workspace("--cb_explore_adf --epsilon 0.1 -q UA")`` per
      person, shared features ``day_part`` (``|U``) and the action (``|A``); the choice is
      sampled from VW's PMF and that probability is logged and used in the cost label.
    * ``random`` and ``oracle`` (the oracle reads the hidden state).

Companion world (:mod:`simulator.companion`; the simulator has no loop for it yet, so
:func:`run_companion` here plays it): the reward of a message is the dataflow's reward model
applied to all of the person's signals and feedback on it. rewardflow chooses the action
with ``PolicyDocument.choose`` and the traits with the gateway's probe rule
(:func:`gateway.core.apply_probe`); it learns the traits by probe comparison. VW chooses
among a 3^5 grid of trait profiles (features: each trait and its square, ``-q UA`` with the
room), random picks a random grid profile, the oracle uses the person's room-shifted taste.

Measures: cumulative reward, acceptance per week (life) / reward per block (companion),
interactions until a new person reaches 80% of the oracle, updates per second of each
learner (time inside ``update + maybe_publish`` vs VW's ``learn``), trait distance to the
hidden taste and bound violations (companion). Writes ``bench/out/learning.json`` and
``bench/out/learning_*.png`` and prints a table of ratios.

**Interactions until 80% of the oracle** (life world): for one person, the smallest ``t``
such that over that person's decisions ``t-k+1 .. t`` (``k = 4``, one simulated day) the
summed expected acceptance of the chosen actions is at least 0.8 times the oracle's summed
expected acceptance in the same states; ``None`` (reported as "not reached") if it never
happens in the run. Expected acceptances (the hidden probabilities), not draws, so the
measure has no Accept/Ignore noise.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from dataflows.learner import PolicyLearner, make_learner
from dataflows.population import Population
from dataflows.reward_model import RewardModel, load_reward_model
from gateway.core import apply_probe
from schemas.agent import AgentSpec
from schemas.buckets import context_bucket
from schemas.policy import PolicyDocument
from schemas.priors import PriorDocument
from simulator import companion as comp
from simulator.life import LifeWorld, make_people
from simulator.runner import (
    Decision,
    InProcessBackend,
    RunResult,
    life_agent_spec,
    oracle_backend,
    random_backend,
    run_life,
)

OUT = Path(__file__).parent / "out"
WINDOW = 4
TARGET = 0.8


# -- rewardflow in-process ----------------------------------------------------------------------
class Timer:
    """Accumulated seconds and calls of the learner's update path."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else float("nan")


def rewardflow_backend(
    seed: int, algorithm: str, prior: PriorDocument | None = None,
    learners: dict[str, PolicyLearner] | None = None, timer: Timer | None = None,
) -> InProcessBackend:
    """The learner in-process, deciding with the published document as the gateway does."""
    learners = {} if learners is None else learners
    docs: dict[str, PolicyDocument] = {}
    timer = timer or Timer()

    def on_register(agent_id: str, spec: AgentSpec) -> None:
        spec = spec.model_copy(update={"algorithm": algorithm})
        learners[agent_id] = make_learner(agent_id, "default", spec, prior=prior)
        docs[agent_id] = learners[agent_id].policy()

    def policy_fn(agent_id: str, bucket: str, actions: Sequence[str],
                  rng: random.Random) -> tuple[str, float, bool]:
        return docs[agent_id].choose(bucket, actions, rng)

    def update_fn(agent_id: str, bucket: str, action: str, reward: float, ts: float) -> None:
        lrn = learners[agent_id]
        t0 = time.perf_counter()
        lrn.update(bucket, action, reward, ts)
        raw = lrn.maybe_publish()
        timer.seconds += time.perf_counter() - t0
        timer.calls += 1
        if raw is not None:  # what the gateway does with the JSON it reads from Redis
            docs[agent_id] = PolicyDocument.model_validate(raw)

    name = f"rewardflow-{algorithm}" + ("+prior" if prior is not None else "")
    be = InProcessBackend(policy_fn, update_fn, seed=seed, name=name, on_register=on_register)
    be.timer = timer  # type: ignore[attr-defined]
    return be


# -- Vowpal Wabbit ------------------------------------------------------------------------------
VW_ARGS = "--cb_explore_adf --epsilon 0.1 -q UA --quiet"


def _vw(args: str) -> Any:
    import vowpalwabbit

    return vowpalwabbit.Workspace(args)


def _sample(pmf: Sequence[float], rng: random.Random) -> int:
    total = float(sum(pmf))
    r = rng.random() * total
    acc = 0.0
    for i, p in enumerate(pmf):
        acc += p
        if r < acc:
            return i
    return len(pmf) - 1


class VWLifeBackend:
    """One VW cb_explore_adf workspace per person; day_part as the shared feature."""

    concurrent = False
    name = "vw"

    def __init__(self, seed: int, args: str = VW_ARGS, context_keys: Sequence[str] = ("day_part",)
                 ) -> None:
        self.seed = seed
        self.args = args
        self.context_keys = list(context_keys)
        self.vws: dict[str, Any] = {}
        self.rngs: dict[str, random.Random] = {}
        self.actions: list[str] = []
        self.pending: dict[str, tuple[list[str], int, float]] = {}
        self.timer = Timer()
        self._n = 0

    def register(self, agent_id: str, spec: Mapping[str, Any]) -> None:
        self.actions = list(spec["actions"])
        self.vws[agent_id] = _vw(self.args)
        self.rngs[agent_id] = random.Random(f"{self.seed}:{agent_id}")

    def _examples(self, context: Mapping[str, Any]) -> list[str]:
        shared = " ".join(f"{k}={context[k]}" for k in self.context_keys if k in context)
        return [f"shared |U {shared}"] + [f"|A a={a}" for a in self.actions]

    def decide(self, agent_id: str, user_id: str, context: Mapping[str, str], ts: datetime,
               world: LifeWorld) -> Decision:
        ex = self._examples(context)
        pmf = self.vws[agent_id].predict(ex)
        i = _sample(pmf, self.rngs[agent_id])
        self._n += 1
        did = f"{agent_id}:{self._n}"
        self.pending[did] = (ex, i, float(pmf[i]))
        return Decision(did, self.actions[i], float(pmf[i]), float(pmf[i]) < max(pmf), "*")

    def feedback(self, agent_id: str, user_id: str, decision: Decision, kind: str, value: float,
                 ts: datetime) -> None:
        ex, i, p = self.pending.pop(decision.decision_id)
        labelled = list(ex)
        labelled[i + 1] = f"0:{-value}:{p} {ex[i + 1]}"
        t0 = time.perf_counter()
        self.vws[agent_id].learn(labelled)
        self.timer.seconds += time.perf_counter() - t0
        self.timer.calls += 1

    def settle(self, agent_id: str, decision: Decision) -> None:
        return None


# -- life world ---------------------------------------------------------------------------------
def interactions_to_target(records: list[dict[str, Any]], window: int = WINDOW,
                           target: float = TARGET) -> dict[str, int | None]:
    """Per person: first ``t`` (1-based) whose last ``window`` decisions reach ``target``."""
    by_person: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_person.setdefault(r["person_id"], []).append(r)
    out: dict[str, int | None] = {}
    for pid, recs in by_person.items():
        recs.sort(key=lambda r: r["slot"])
        exp = np.array([r["expected"] for r in recs])
        orc = np.array([r["oracle_expected"] for r in recs])
        hit = None
        for t in range(window, len(recs) + 1):
            if exp[t - window:t].sum() >= target * orc[t - window:t].sum():
                hit = t
                break
        out[pid] = hit
    return out


def summarize_hits(hits: Mapping[str, int | None], horizon: int) -> dict[str, Any]:
    vals = [h if h is not None else horizon + 1 for h in hits.values()]
    return {
        "median": float(statistics.median(vals)) if vals else None,
        "mean": float(np.mean(vals)) if vals else None,
        "max": max(vals) if vals else None,
        "within_8": float(np.mean([v <= 8 for v in vals])) if vals else None,
        "not_reached": int(sum(h is None for h in hits.values())),
        "people": len(vals),
    }


def train_prior(seed: int, per_archetype: int, weeks: int, algorithm: str) -> PriorDocument:
    """Fit the template prior on a separate population (seed ``1000 + seed``)."""
    people = make_people(per_archetype, seed=1000 + seed)
    learners: dict[str, PolicyLearner] = {}
    be = rewardflow_backend(1000 + seed, algorithm, learners=learners)
    run_life(people, be, weeks=weeks, seed=1000 + seed, run_id=f"train{seed}", progress=False)
    pop = Population("default", "life-coach", actions=list(life_agent_spec()["actions"]))
    for agent_id, lrn in learners.items():
        pop.observe(agent_id, lrn.policy_dict()["buckets"])
    return pop.fit(seed=seed)


def run_life_world(seeds: Sequence[int], per_archetype: int, weeks: int, algorithms: Sequence[str],
                   prior_algorithm: str, train_per_archetype: int) -> dict[str, Any]:
    results: dict[str, list[RunResult]] = {}
    timers: dict[str, Timer] = {}
    priors: list[dict[str, Any]] = []
    for seed in seeds:
        people = make_people(per_archetype, seed=seed)
        backends: list[Any] = []
        for algo in algorithms:
            timer = timers.setdefault(f"rewardflow-{algo}", Timer())
            backends.append(rewardflow_backend(seed, algo, timer=timer))
        prior = train_prior(seed, train_per_archetype, weeks, prior_algorithm)
        priors.append({"seed": seed, "archetypes": [(a.name, a.size) for a in prior.archetypes],
                       "explanation": prior.explanation})
        timer = timers.setdefault(f"rewardflow-{prior_algorithm}+prior", Timer())
        backends.append(rewardflow_backend(seed, prior_algorithm, prior=prior, timer=timer))
        vw = VWLifeBackend(seed)
        backends += [vw, random_backend(seed), oracle_backend()]
        for be in backends:
            res = run_life(people, be, weeks=weeks, seed=seed, run_id=f"s{seed}", progress=False)
            results.setdefault(be.name, []).append(res)
        vw_t = timers.setdefault("vw", Timer())
        vw_t.seconds += vw.timer.seconds
        vw_t.calls += vw.timer.calls
    out: dict[str, Any] = {"policies": {}, "priors": priors}
    horizon = weeks * 28
    for name, runs in results.items():
        recs = [r for run in runs for r in run.records]
        merged = RunResult(policy=name, records=recs)
        weekly = merged.weekly()
        oracle_weekly = merged.weekly("oracle_expected")
        hits = interactions_to_target(recs)
        out["policies"][name] = {
            "cumulative_reward": float(sum(1.0 if r["accepted"] else -1.0 for r in recs)),
            "cumulative_expected_acceptance": float(sum(r["expected"] for r in recs)),
            "acceptance": merged.acceptance(),
            "acceptance_per_week": weekly,
            "oracle_per_week": oracle_weekly,
            "ratio_to_oracle_per_week": {a: [w / o for w, o in zip(weekly[a], oracle_weekly[a],
                                                                   strict=True)]
                                         for a in weekly},
            "interactions_to_80pct_oracle": summarize_hits(hits, horizon),
            "first_56_expected": _mean_curve(recs, "expected", 56),
            "first_56_oracle": _mean_curve(recs, "oracle_expected", 56),
            "updates_per_second": timers[name].per_second if name in timers else None,
            "decisions": len(recs),
        }
    return out


def _mean_curve(recs: list[dict[str, Any]], key: str, n: int) -> list[float]:
    by_person: dict[str, list[tuple[int, float]]] = {}
    for r in recs:
        by_person.setdefault(r["person_id"] + r["agent_id"], []).append((r["slot"], r[key]))
    rows = [[v for _, v in sorted(x)][:n] for x in by_person.values()]
    return [float(np.mean([row[i] for row in rows if len(row) > i])) for i in range(n)]


# -- companion world ----------------------------------------------------------------------------
def companion_spec() -> dict[str, Any]:
    """The simulator's companion agent with trait bounds (the safety rules under test)."""
    spec = comp.companion_agent_spec()
    spec["trait_bounds"] = {t: [0.05, 0.95] for t in comp.TRAITS}
    spec["probe_share"] = 0.5
    return spec


GRID_LEVELS = (0.2, 0.5, 0.8)


def trait_grid() -> list[dict[str, float]]:
    grid: list[dict[str, float]] = [{}]
    for t in comp.TRAITS:
        grid = [g | {t: lv} for g in grid for lv in GRID_LEVELS]
    return grid


def companion_reward(model: RewardModel, out: Mapping[str, Any]) -> float:
    """The reward model over every signal and feedback of one message (window closed)."""
    sums: dict[str, tuple[float, int]] = {}
    for ev in list(out["signals"]) + list(out["feedback"]):
        s, n = sums.get(ev["kind"], (0.0, 0))
        sums[ev["kind"]] = (s + model.component(ev["kind"], ev["value"]), n + 1)
    return model.reward(sums)[0]


class CompanionPolicy:
    """Interface of a companion-world policy in :func:`run_companion`."""

    name = "?"
    timer: Timer

    def register(self, agent_id: str, spec: AgentSpec) -> None: ...

    def decide(self, agent_id: str, context: Mapping[str, Any], rng: random.Random
               ) -> tuple[str, dict[str, float], Any]: ...

    def learn(self, agent_id: str, token: Any, reward: float, ts: float) -> None: ...

    def traits_now(self, agent_id: str) -> dict[str, float] | None:
        return None


class RewardflowCompanion(CompanionPolicy):
    def __init__(self, algorithm: str = "epsilon_greedy") -> None:
        self.name = f"rewardflow-{algorithm}"
        self.algorithm = algorithm
        self.learners: dict[str, PolicyLearner] = {}
        self.docs: dict[str, PolicyDocument] = {}
        self.specs: dict[str, AgentSpec] = {}
        self.timer = Timer()

    def register(self, agent_id: str, spec: AgentSpec) -> None:
        spec = spec.model_copy(update={"algorithm": self.algorithm})
        self.specs[agent_id] = spec
        self.learners[agent_id] = make_learner(agent_id, "default", spec)
        self.docs[agent_id] = self.learners[agent_id].policy()

    def decide(self, agent_id: str, context: Mapping[str, Any], rng: random.Random
               ) -> tuple[str, dict[str, float], Any]:
        spec, doc = self.specs[agent_id], self.docs[agent_id]
        bucket = context_bucket(context, spec.context_keys)
        action, _, _ = doc.choose(bucket, spec.actions, rng)
        traits, probe = apply_probe(spec, doc, {**spec.traits, **doc.traits}, rng)
        token = (bucket, action, (probe.trait, probe.delta) if probe else None)
        return action, traits, token

    def learn(self, agent_id: str, token: Any, reward: float, ts: float) -> None:
        bucket, action, probe = token
        lrn = self.learners[agent_id]
        t0 = time.perf_counter()
        lrn.update(bucket, action, reward, ts, probe=probe)
        raw = lrn.maybe_publish()
        self.timer.seconds += time.perf_counter() - t0
        self.timer.calls += 1
        if raw is not None:
            self.docs[agent_id] = PolicyDocument.model_validate(raw)

    def traits_now(self, agent_id: str) -> dict[str, float] | None:
        return {**self.specs[agent_id].traits, **self.docs[agent_id].traits}


class VWCompanion(CompanionPolicy):
    name = "vw"

    def __init__(self, args: str = VW_ARGS) -> None:
        self.args = args
        self.grid = trait_grid()
        self.arms = [" ".join(f"{t}:{g[t]} {t}_sq:{g[t] * g[t]:.4f}" for t in comp.TRAITS)
                     for g in self.grid]
        self.vws: dict[str, Any] = {}
        self.timer = Timer()

    def register(self, agent_id: str, spec: AgentSpec) -> None:
        self.vws[agent_id] = _vw(self.args)

    def decide(self, agent_id: str, context: Mapping[str, Any], rng: random.Random
               ) -> tuple[str, dict[str, float], Any]:
        ex = [f"shared |U room={context['room']}"] + [f"|A {a}" for a in self.arms]
        pmf = self.vws[agent_id].predict(ex)
        i = _sample(pmf, rng)
        return "reply", dict(self.grid[i]), (ex, i, float(pmf[i]))

    def learn(self, agent_id: str, token: Any, reward: float, ts: float) -> None:
        ex, i, p = token
        labelled = list(ex)
        labelled[i + 1] = f"0:{-reward}:{p} {ex[i + 1]}"
        t0 = time.perf_counter()
        self.vws[agent_id].learn(labelled)
        self.timer.seconds += time.perf_counter() - t0
        self.timer.calls += 1


class RandomCompanion(CompanionPolicy):
    name = "random"

    def __init__(self) -> None:
        self.grid = trait_grid()
        self.timer = Timer()

    def decide(self, agent_id: str, context: Mapping[str, Any], rng: random.Random
               ) -> tuple[str, dict[str, float], Any]:
        return "reply", dict(rng.choice(self.grid)), None

    def learn(self, agent_id: str, token: Any, reward: float, ts: float) -> None:
        return None


class OracleCompanion(CompanionPolicy):
    name = "oracle"

    def __init__(self, people: Mapping[str, comp.CompanionPerson]) -> None:
        self.people = people
        self.timer = Timer()

    def decide(self, agent_id: str, context: Mapping[str, Any], rng: random.Random
               ) -> tuple[str, dict[str, float], Any]:
        p = self.people[agent_id]
        return "reply", comp.effective_taste(p, int(context["room_size"])), None

    def learn(self, agent_id: str, token: Any, reward: float, ts: float) -> None:
        return None


def run_companion(people: Sequence[comp.CompanionPerson], policy: CompanionPolicy,
                  interactions: int, seed: int, block: int) -> dict[str, Any]:
    """Play ``interactions`` messages per person; rewards from the dataflow's reward model."""
    model = load_reward_model()
    spec = AgentSpec.model_validate(companion_spec())
    rewards = np.zeros((len(people), interactions))
    sat = np.zeros((len(people), interactions))
    dist: list[list[float]] = []
    violations = 0
    for i, person in enumerate(people):
        agent_id = f"c{seed}-{person.person_id}"
        policy.register(agent_id, spec)
        world = comp.CompanionWorld(person, seed)
        rng = random.Random(f"{seed}:{agent_id}:policy")
        start = policy.traits_now(agent_id)
        d_row = []
        for t in range(interactions):
            ctx = world.context()
            _action, traits, token = policy.decide(agent_id, ctx, rng)
            out = world.respond(traits, ctx, decision_id=f"{agent_id}:{t}", agent_id=agent_id)
            r = companion_reward(model, out)
            rewards[i, t] = r
            sat[i, t] = out["satisfaction"]
            policy.learn(agent_id, token, r, float(t))
            now = policy.traits_now(agent_id)
            if now is not None:
                for tr, v in now.items():
                    lo, hi = spec.bounds_for(tr)
                    if not lo - 1e-9 <= v <= hi + 1e-9:
                        violations += 1
                if t % block == block - 1 or t == 0:
                    d_row.append(comp.trait_distance(person, now, 1))
        if start is not None:
            dist.append([comp.trait_distance(person, start, 1)] + d_row)
    blocks = interactions // block
    res: dict[str, Any] = {
        "cumulative_reward": float(rewards.sum()),
        "mean_reward": float(rewards.mean()),
        "mean_satisfaction": float(sat.mean()),
        "reward_per_block": [float(rewards[:, b * block:(b + 1) * block].mean())
                             for b in range(blocks)],
        "satisfaction_per_block": [float(sat[:, b * block:(b + 1) * block].mean())
                                   for b in range(blocks)],
        "updates_per_second": policy.timer.per_second if policy.timer.calls else None,
        "bound_violations": violations,
    }
    if dist:
        d = np.array(dist)
        res["trait_distance_start"] = float(d[:, 0].mean())
        res["trait_distance_end"] = float(d[:, -1].mean())
        res["trait_distance_curve"] = [float(x) for x in d.mean(axis=0)]
        res["people_closer_at_end"] = float(np.mean(d[:, -1] < d[:, 0]))
    return res


def run_companion_world(seeds: Sequence[int], n_people: int, interactions: int, block: int,
                        algorithms: Sequence[str]) -> dict[str, Any]:
    acc: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        people = comp.make_companion_people(n_people, seed=seed)
        by_agent = {f"c{seed}-{p.person_id}": p for p in people}
        pols: list[CompanionPolicy] = [RewardflowCompanion(a) for a in algorithms]
        pols += [VWCompanion(), RandomCompanion(), OracleCompanion(by_agent)]
        for pol in pols:
            acc.setdefault(pol.name, []).append(
                run_companion(people, pol, interactions, seed, block))
    out: dict[str, Any] = {}
    for name, runs in acc.items():
        merged: dict[str, Any] = {}
        for k in runs[0]:
            vals = [r[k] for r in runs if r.get(k) is not None]
            if not vals:
                merged[k] = None
            elif k in ("cumulative_reward", "bound_violations"):
                merged[k] = float(sum(vals))
            elif isinstance(vals[0], list):
                merged[k] = [float(np.mean(col)) for col in zip(*vals, strict=False)]
            else:
                merged[k] = float(np.mean(vals))
        out[name] = merged
    return out


# -- report -------------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def plot(report: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    paths = []
    life = report["life"]["policies"]
    archetypes = list(next(iter(life.values()))["acceptance_per_week"])
    fig, axes = plt.subplots(1, len(archetypes), figsize=(5 * len(archetypes), 4), sharey=True)
    for ax, arch in zip(np.atleast_1d(axes), archetypes, strict=True):
        for name, d in life.items():
            ys = d["acceptance_per_week"][arch]
            ax.plot(range(1, len(ys) + 1), ys, marker="o", label=name)
        oracle = life["oracle"]["acceptance_per_week"][arch]
        ax.plot(range(1, len(oracle) + 1), [0.9 * o for o in oracle], ":", color="grey",
                label="90% of oracle")
        ax.set_title(f"life world: {arch}")
        ax.set_xlabel("week")
        ax.set_ylabel("expected acceptance")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    p = OUT / "learning_life.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, d in life.items():
        ratio = [e / o for e, o in zip(d["first_56_expected"], d["first_56_oracle"], strict=True)]
        k = WINDOW
        roll = [float(np.mean(ratio[max(0, i - k + 1):i + 1])) for i in range(len(ratio))]
        ax.plot(range(1, len(roll) + 1), roll, label=name)
    ax.axhline(TARGET, color="grey", ls=":")
    ax.axvline(8, color="grey", ls="--")
    ax.set_xlabel("interaction of a new person")
    ax.set_ylabel(f"rolling ({WINDOW}) expected acceptance / oracle")
    ax.set_title("a new person: how fast each policy reads them")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = OUT / "learning_new_person.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    compw = report["companion"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, d in compw.items():
        a1.plot(d["reward_per_block"], marker=".", label=name)
        if d.get("trait_distance_curve"):
            a2.plot(d["trait_distance_curve"], marker=".", label=name)
    a1.set_title("companion world: mean reward per block")
    a1.set_xlabel(f"block of {report['config']['companion_block']} messages")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.set_title("distance of learned traits to the hidden taste")
    a2.set_xlabel("block")
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    p = OUT / "learning_companion.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths


def table(report: dict[str, Any], main: str, prior_name: str) -> str:
    lines = []
    life = report["life"]["policies"]
    vw, orc, rnd = life["vw"], life["oracle"], life["random"]
    lines.append("LIFE WORLD (cumulative reward = accepts - ignores; expected acceptance)")
    lines.append(f"{'policy':28s} {'cum.reward':>10s} {'accept':>7s} {'/vw':>6s} {'/oracle':>7s} "
                 f"{'/random':>7s} {'wk4/orc(min arch)':>17s} {'t80 med':>7s} {'<=8':>5s} "
                 f"{'updates/s':>10s}")
    for name, d in life.items():
        wk4 = min(r[3] for r in d["ratio_to_oracle_per_week"].values() if len(r) > 3) \
            if all(len(r) > 3 for r in d["ratio_to_oracle_per_week"].values()) else float("nan")
        hits = d["interactions_to_80pct_oracle"]
        ups = d["updates_per_second"]
        lines.append(
            f"{name:28s} {d['cumulative_reward']:10.0f} {d['acceptance']:7.3f} "
            f"{_fmt(_ratio(d['acceptance'], vw['acceptance']))} "
            f"{_fmt(_ratio(d['acceptance'], orc['acceptance']), 7)} "
            f"{_fmt(_ratio(d['acceptance'], rnd['acceptance']), 7)} {wk4:17.3f} "
            f"{hits['median']:7.1f} {hits['within_8']:5.2f} "
            f"{(f'{ups:10.0f}' if ups else '         -')}")
    lines.append("")
    lines.append("COMPANION WORLD (reward model over implicit signals + sparse thumbs)")
    cw = report["companion"]
    lines.append(f"{'policy':28s} {'cum.reward':>10s} {'mean r':>7s} {'/vw':>6s} {'/oracle':>7s} "
                 f"{'/random':>7s} {'satisf.':>7s} {'dist 0->end':>13s} {'viol':>4s} "
                 f"{'updates/s':>10s}")
    for name, d in cw.items():
        dist = (f"{d['trait_distance_start']:.3f}->{d['trait_distance_end']:.3f}"
                if d.get("trait_distance_start") is not None else "-")
        ups = d["updates_per_second"]
        lines.append(
            f"{name:28s} {d['cumulative_reward']:10.0f} {d['mean_reward']:7.3f} "
            f"{_fmt(_ratio(d['cumulative_reward'], cw['vw']['cumulative_reward']))} "
            f"{_fmt(_ratio(d['cumulative_reward'], cw['oracle']['cumulative_reward']), 7)} "
            f"{_fmt(_ratio(d['cumulative_reward'], cw['random']['cumulative_reward']), 7)} "
            f"{d['mean_satisfaction']:7.3f} {dist:>13s} {int(d['bound_violations']):4d} "
            f"{(f'{ups:10.0f}' if ups else '         -')}")
    lines.append("")
    lines.append(f"main learner: {main}; with population prior: {prior_name}")
    return "\n".join(lines)


def _fmt(x: float | None, w: int = 6) -> str:
    return f"{x:{w}.3f}" if x is not None else " " * (w - 1) + "-"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds, people and weeks")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--algorithm", default="ucb", help="main rewardflow algorithm")
    args = ap.parse_args(argv)
    quick = args.quick
    seeds = list(range(args.seeds if args.seeds else (1 if quick else 3)))
    algorithms = ["epsilon_greedy", "ucb", "thompson"]
    cfg = {
        "seeds": seeds, "life_per_archetype": 2 if quick else 5, "life_weeks": 6 if quick else 8,
        "train_per_archetype": 6 if quick else 10,
        "companion_people": 4 if quick else 10, "companion_interactions": 600 if quick else 1500,
        "companion_block": 50 if quick else 100, "vw_args": VW_ARGS,
        "main_algorithm": args.algorithm, "window": WINDOW, "target": TARGET,
    }
    t0 = time.time()
    life = run_life_world(seeds, cfg["life_per_archetype"], cfg["life_weeks"], algorithms,
                          args.algorithm, cfg["train_per_archetype"])
    companion = run_companion_world(seeds, cfg["companion_people"],
                                    cfg["companion_interactions"], cfg["companion_block"],
                                    ["epsilon_greedy"])
    report = {"config": cfg, "life": life, "companion": companion,
              "seconds": round(time.time() - t0, 1)}
    main_name = f"rewardflow-{args.algorithm}"
    prior_name = f"{main_name}+prior"
    checks = figures(report, main_name, prior_name)
    report["figures"] = checks
    OUT.mkdir(parents=True, exist_ok=True)
    report["plots"] = plot(report)
    (OUT / "learning.json").write_text(json.dumps(report, indent=1, default=float))
    print(table(report, main_name, prior_name))
    print()
    for k, v in checks.items():
        print(f"{k}: {v}")
    print(f"\nwrote {OUT / 'learning.json'} and {', '.join(report['plots'])} "
          f"in {report['seconds']} s")
    return report


def figures(report: dict[str, Any], main_name: str, prior_name: str) -> dict[str, Any]:
    """The issue's figures, each with the measured value."""
    life = report["life"]["policies"]
    out: dict[str, Any] = {}
    for name in (main_name, prior_name):
        r = life[name]["ratio_to_oracle_per_week"]
        wk4 = {a: round(v[3], 3) for a, v in r.items() if len(v) > 3}
        out[f"life week-4 acceptance / oracle, {name}"] = wk4
        out[f"  >= 0.9 for every archetype ({name})"] = bool(wk4) and min(wk4.values()) >= 0.9
    for name in (prior_name, main_name, "vw"):
        h = life[name]["interactions_to_80pct_oracle"]
        out[f"interactions to 80% of oracle, {name}"] = h
    cw = report["companion"]
    for world, pols, key in (("life", life, "cumulative_reward"),
                             ("companion", cw, "cumulative_reward")):
        ours = [n for n in pols if n.startswith("rewardflow")]
        out[f"{world}: cumulative reward >= VW"] = {
            n: pols[n][key] >= pols["vw"][key] for n in ours}
    out["updates/s (rewardflow vs vw), life"] = {
        n: round(d["updates_per_second"]) for n, d in life.items() if d["updates_per_second"]}
    out["companion: traits closer to taste at the end (share of people), bound violations"] = {
        n: (d.get("people_closer_at_end"), d["bound_violations"]) for n, d in cw.items()
        if n.startswith("rewardflow")}
    return out


if __name__ == "__main__":
    main()
