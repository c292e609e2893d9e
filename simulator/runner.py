"""One simulation loop for the life-management world, with interchangeable backends.

:func:`run_life` plays ``weeks`` x 28 slots for every person. In each slot (a *round*) it asks
the backend for a decision per person, lets the person Accept or Ignore it
(:class:`simulator.life.LifeWorld`), sends the feedback back, and records what happened:
the draw, and the expected acceptance of the chosen action, of the oracle and of the
random policy in that state (expectations are much less noisy than draws).

Backends
--------
:class:`HttpBackend`
    The running stack over HTTP through :class:`gateway.client.RewardflowClient`. After the
    feedback of a round it waits (bounded) until the agent's policy version rises, so the
    learner has seen the feedback before the next decision; people run on threads, so a
    round of N people costs about one wait.
:class:`InProcessBackend`
    No HTTP: a pluggable ``policy_fn(agent_id, bucket, actions, rng) -> (action,
    propensity, explored)`` and ``update_fn(agent_id, bucket, action, reward, ts)``.
    :func:`learner_backend` wires the real :class:`dataflows.learner.EpsilonGreedyLearner`
    (decisions with :meth:`schemas.policy.PolicyDocument.choose`, as the gateway makes them),
    :func:`random_backend` the uniform-random baseline and :class:`OracleBackend` the oracle.

>>> from simulator.life import make_people
>>> people = make_people(1, seed=3)
>>> result = run_life(people, random_backend(seed=3), weeks=1, seed=3, progress=False)
>>> len(result.records) == 3 * 28
True
>>> 0.2 < result.acceptance(weeks=[0]) < 0.6
True
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from simulator.backends import (  # noqa: F401 - re-exported: the loop's public API
    Backend,
    Decision,
    HttpBackend,
    InProcessBackend,
    OracleBackend,
    WaitStats,
    as_policy,
    learner_backend,
    oracle_backend,
    random_backend,
    random_policy,
)
from simulator.life import (
    ACTIONS,
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    LifeWorld,
    Person,
    feedback_for,
)

#: Event time of slot 0 in simulated time; a slot lasts 24h / 4.
SIM_EPOCH = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # a Monday morning
SLOT_SECONDS = 24 * 3600 / SLOTS_PER_DAY



def life_agent_spec(
    epsilon: float = 0.2, context_keys: Sequence[str] = ("day_part",)
) -> dict[str, Any]:
    """The agent a simulated person gets: the 10 action types, keyed by day part.

    >>> from schemas.agent import AgentSpec
    >>> spec = AgentSpec.model_validate(life_agent_spec())
    >>> spec.context_keys, spec.epsilon, len(spec.actions), spec.template
    (['day_part'], 0.2, 10, 'life-coach')
    """
    return {
        "persona": {
            "name": "Life coach",
            "description": "Suggests what to do next: work, learning, exercise, rest, people.",
        },
        "actions": list(ACTIONS),
        "context_keys": list(context_keys),
        "template": "life-coach",
        "epsilon": epsilon,
        "explore": True,
    }


def agent_id_for(run_id: str, person: Person) -> str:
    """Agent id of one simulated person in one run (valid as an agent ``Name``).

    >>> from simulator.life import make_person
    >>> agent_id_for("r1", make_person("night_owl", 2, 0))
    'sim-r1-night_owl-2'
    """
    return f"sim-{run_id}-{person.person_id}"[:64]


def slot_time(slot: int) -> datetime:
    """Simulated event time of ``slot``."""
    return SIM_EPOCH + timedelta(seconds=slot * SLOT_SECONDS)



# -- the loop ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    """Every (person, slot) of one run, with helpers to summarize acceptance.

    Each record has: ``policy``, ``person_id``, ``archetype``, ``agent_id``, ``slot``,
    ``week``, ``day_part``, ``action``, ``accepted`` (the draw), ``expected`` (P(accept) of the
    chosen action), ``oracle_expected`` and ``random_expected`` (in the same state),
    ``propensity``, ``explored``, ``policy_version``, ``bucket``.
    """

    policy: str
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def acceptance(
        self,
        weeks: Iterable[int] | None = None,
        archetype: str | None = None,
        key: str = "expected",
    ) -> float:
        """Mean of ``key`` (``expected`` or ``accepted``) over the selected records."""
        wk = set(weeks) if weeks is not None else None
        vals = [
            float(r[key])
            for r in self.records
            if (wk is None or r["week"] in wk)
            and (archetype is None or r["archetype"] == archetype)
        ]
        return float(np.mean(vals)) if vals else float("nan")

    def weekly(self, key: str = "expected") -> dict[str, list[float]]:
        """Per archetype: mean ``key`` per week, in week order."""
        acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in self.records:
            acc[r["archetype"]][r["week"]].append(float(r[key]))
        return {
            a: [float(np.mean(by_week[w])) for w in sorted(by_week)] for a, by_week in acc.items()
        }

    @property
    def archetypes(self) -> list[str]:
        return list(dict.fromkeys(r["archetype"] for r in self.records))


def run_life(
    people: Sequence[Person],
    backend: Backend,
    weeks: int = 8,
    seed: int = 0,
    run_id: str | None = None,
    spec: Mapping[str, Any] | None = None,
    progress: bool = True,
    on_round: Callable[[int, list[dict[str, Any]]], None] | None = None,
) -> RunResult:
    """Play ``weeks`` of the life world for ``people`` against ``backend``.

    The people's Accept/Ignore draws come from per-person RNGs seeded by ``seed``, so the
    same seed and the same decisions give the same outcomes, whatever the thread schedule.

    Parameters
    ----------
    people
        Who to simulate (see :func:`simulator.life.make_people`).
    backend
        Where decisions come from (:class:`HttpBackend`, :class:`InProcessBackend`, ...).
    weeks
        Number of simulated weeks (28 slots each).
    seed
        Seed of the people's draws.
    run_id
        Part of every agent id; default ``f"s{seed}"`` in-process and a random one over HTTP,
        so a rerun against the same stack starts with fresh agents.
    spec
        Agent spec to register (default :func:`life_agent_spec`).
    progress
        Show a tqdm bar over rounds.
    on_round
        Called with the slot number and that round's records after every round.
    """
    if run_id is None:
        run_id = uuid.uuid4().hex[:8] if backend.concurrent else f"s{seed}"
    spec = dict(spec) if spec is not None else life_agent_spec()
    worlds = [LifeWorld(p, seed) for p in people]
    agents = [agent_id_for(run_id, p) for p in people]
    for agent_id in agents:
        backend.register(agent_id, spec)
    result = RunResult(policy=backend.name)
    start = time.monotonic()

    def play(i: int) -> dict[str, Any]:
        world, agent_id, person = worlds[i], agents[i], people[i]
        ts = slot_time(world.state.slot)
        ctx = world.context()
        decision = backend.decide(agent_id, person.person_id, ctx, ts, world)
        out = world.respond(decision.action)
        kind, value = feedback_for(bool(out["accepted"]))
        backend.feedback(
            agent_id, person.person_id, decision, kind, value, ts + timedelta(minutes=5)
        )
        backend.settle(agent_id, decision)
        slot = int(out["slot"])  # type: ignore[call-overload]
        return {
            "policy": backend.name,
            "person_id": person.person_id,
            "archetype": person.archetype,
            "agent_id": agent_id,
            "slot": slot,
            "week": slot // SLOTS_PER_WEEK,
            "day_part": ctx["day_part"],
            "action": decision.action,
            "accepted": bool(out["accepted"]),
            "expected": out["expected"],
            "oracle_expected": out["oracle_expected"],
            "random_expected": out["random_expected"],
            "propensity": decision.propensity,
            "explored": decision.explored,
            "policy_version": decision.policy_version,
            "bucket": decision.bucket,
        }

    rounds = range(weeks * SLOTS_PER_WEEK)
    bar: Any = rounds
    if progress:
        from tqdm import tqdm

        from stack.progress import redraw_every

        bar = tqdm(rounds, desc=f"{backend.name} rounds", unit="round",
                   mininterval=redraw_every(0.1))
    pool = ThreadPoolExecutor(max_workers=max(1, len(people))) if backend.concurrent else None
    try:
        for t in bar:
            if pool is not None:
                recs = list(pool.map(play, range(len(people))))
            else:
                recs = [play(i) for i in range(len(people))]
            result.records.extend(recs)
            if on_round is not None:
                on_round(t, recs)
            if progress and recs:
                bar.set_postfix(acc=f"{np.mean([r['expected'] for r in recs]):.2f}", refresh=False)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    result.seconds = time.monotonic() - start
    return result
