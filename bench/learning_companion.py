"""Learning benchmark, companion world: rewardflow's trait probing vs VW vs random vs oracle.

The simulator has no loop for this world yet, so :func:`run_companion` plays it: the reward
of a message is the dataflow's reward model applied to all of the person's signals and
feedback on it. rewardflow chooses the action with ``PolicyDocument.choose`` and the traits
with the gateway's probe rule (:func:`gateway.core.apply_probe`); it learns the traits by
probe comparison. VW chooses among a 3^5 grid of trait profiles (features: each trait and
its square, ``-q UA`` with the room), random picks a random grid profile, the oracle uses the
person's room-shifted taste.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.learning_common import VW_ARGS, Timer, vw_learn
from bench.learning_common import sample as _sample
from bench.learning_common import vw_workspace as _vw
from dataflows.learner import PolicyLearner, make_learner
from dataflows.reward_model import RewardModel, load_reward_model
from gateway.core import apply_probe
from schemas.agent import AgentSpec
from schemas.buckets import context_bucket
from schemas.policy import PolicyDocument
from simulator import companion as comp


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
               ) -> tuple[str, dict[str, float], Any]:
        raise NotImplementedError

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

    def traits_now(self, agent_id: str) -> dict[str, float]:
        return {**self.specs[agent_id].traits, **self.docs[agent_id].traits}


class LaggedCompanion(RewardflowCompanion):
    """:class:`RewardflowCompanion` whose rewards arrive ``lag`` decisions late, as they do
    in production (reward windows, many users of one agent at once): decisions keep being
    made from the policy of ``lag`` rewards ago, probes included."""

    def __init__(self, algorithm: str = "epsilon_greedy", lag: int = 0) -> None:
        super().__init__(algorithm)
        self.lag = lag
        self.name = f"{self.name}-lag{lag}"
        self.queues: dict[str, deque[tuple[Any, float, float]]] = {}

    def learn(self, agent_id: str, token: Any, reward: float, ts: float) -> None:
        q = self.queues.setdefault(agent_id, deque())
        q.append((token, reward, ts))
        while len(q) > self.lag:
            super().learn(agent_id, *q.popleft())


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
        vw_learn(self.vws[agent_id], self.timer, ex, i, p, reward)


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
    """Play ``interactions`` messages per person; rewards from the dataflow's reward model.

    Trait distances (policies with traits) are the room-aware measure
    :func:`simulator.companion.room_trait_distance` over the rooms the world draws from:
    ``trait_distance_start``/``_end``/``_curve`` (means over people), ``people_closer_at_end``
    (share of people whose end distance is below their start). The ``dm_`` keys hold the same
    against the DM taste (``trait_distance(person, traits, 1)``), and ``per_person`` lists
    ``(agent_id, start, end, dm_start, dm_end)`` (the agent id names the seed and the person).
    """
    model = load_reward_model()
    spec = AgentSpec.model_validate(companion_spec())
    rewards = np.zeros((len(people), interactions))
    sat = np.zeros((len(people), interactions))
    dist: list[list[float]] = []
    dm_dist: list[list[float]] = []
    per_person: list[tuple[str, float, float, float, float]] = []
    violations = 0
    for i, person in enumerate(people):
        agent_id = f"c{seed}-{person.person_id}"
        policy.register(agent_id, spec)
        world = comp.CompanionWorld(person, seed)
        rng = random.Random(f"{seed}:{agent_id}:policy")
        start = policy.traits_now(agent_id)
        d_row: list[float] = []
        dm_row: list[float] = []
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
                    d_row.append(world.trait_distance(now))
                    dm_row.append(comp.trait_distance(person, now, 1))
        if start is not None:
            dist.append([world.trait_distance(start)] + d_row)
            dm_dist.append([comp.trait_distance(person, start, 1)] + dm_row)
            per_person.append((agent_id, dist[-1][0], dist[-1][-1],
                               dm_dist[-1][0], dm_dist[-1][-1]))
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
        dm = np.array(dm_dist)
        res["dm_trait_distance_start"] = float(dm[:, 0].mean())
        res["dm_trait_distance_end"] = float(dm[:, -1].mean())
        res["dm_people_closer_at_end"] = float(np.mean(dm[:, -1] < dm[:, 0]))
        res["per_person"] = per_person
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
            if k == "per_person":
                merged[k] = [row for v in vals for row in v]
            elif not vals:
                merged[k] = None
            elif k in ("cumulative_reward", "bound_violations"):
                merged[k] = float(sum(vals))
            elif isinstance(vals[0], list):
                merged[k] = [float(np.mean(col)) for col in zip(*vals, strict=False)]
            else:
                merged[k] = float(np.mean(vals))
        out[name] = merged
    return out
