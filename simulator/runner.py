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

import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from schemas.agent import AgentSpec
from schemas.buckets import context_bucket
from schemas.policy import PolicyDocument
from simulator.life import (
    ACTIONS,
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    LifeWorld,
    Person,
    feedback_for,
    oracle_action,
)

#: Event time of slot 0 in simulated time; a slot lasts 24h / 4.
SIM_EPOCH = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # a Monday morning
SLOT_SECONDS = 24 * 3600 / SLOTS_PER_DAY

PolicyFn = Callable[[str, str, Sequence[str], random.Random], tuple[str, float, bool]]
UpdateFn = Callable[[str, str, str, float, float], None]


def life_agent_spec(
    epsilon: float = 0.2, context_keys: Sequence[str] = ("day_part",)
) -> dict[str, Any]:
    """The agent a simulated person gets: the 10 action types, keyed by day part.

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


@dataclass(frozen=True)
class Decision:
    """What a backend decided for one person in one slot."""

    decision_id: str
    action: str
    propensity: float
    explored: bool
    bucket: str
    policy_version: int = 0
    traits: Mapping[str, float] = field(default_factory=dict)


class Backend(Protocol):
    """Where decisions come from and feedback goes."""

    name: str
    concurrent: bool

    def register(self, agent_id: str, spec: Mapping[str, Any]) -> None: ...

    def decide(
        self,
        agent_id: str,
        user_id: str,
        context: Mapping[str, str],
        ts: datetime,
        world: LifeWorld,
    ) -> Decision: ...

    def feedback(
        self,
        agent_id: str,
        user_id: str,
        decision: Decision,
        kind: str,
        value: float,
        ts: datetime,
    ) -> None: ...

    def settle(self, agent_id: str, decision: Decision) -> None:
        """Return once the learner has seen the feedback on ``decision`` (or gave up)."""
        ...


# -- in-process -------------------------------------------------------------------------------


class InProcessBackend:
    """Decisions from ``policy_fn``, rewards to ``update_fn``; no network, deterministic.

    Each agent gets its own ``random.Random`` seeded from ``seed`` and its id;
    ``on_register(agent_id, spec)`` is called for every registered agent (e.g. to make its
    learner).
    """

    concurrent = False

    def __init__(
        self,
        policy_fn: PolicyFn,
        update_fn: UpdateFn | None = None,
        seed: int = 0,
        name: str = "in-process",
        on_register: Callable[[str, AgentSpec], None] | None = None,
    ) -> None:
        self.policy_fn = policy_fn
        self.on_register = on_register
        self.update_fn = update_fn
        self.seed = seed
        self.name = name
        self.specs: dict[str, AgentSpec] = {}
        self.rngs: dict[str, random.Random] = {}
        self._n = 0

    def register(self, agent_id: str, spec: Mapping[str, Any]) -> None:
        self.specs[agent_id] = AgentSpec.model_validate(dict(spec))
        self.rngs[agent_id] = random.Random(f"{self.seed}:{agent_id}")
        if self.on_register is not None:
            self.on_register(agent_id, self.specs[agent_id])

    def decide(
        self,
        agent_id: str,
        user_id: str,
        context: Mapping[str, str],
        ts: datetime,
        world: LifeWorld,
    ) -> Decision:
        spec = self.specs[agent_id]
        bucket = context_bucket(context, spec.context_keys)
        action, propensity, explored = self.policy_fn(
            agent_id, bucket, spec.actions, self.rngs[agent_id]
        )
        self._n += 1
        return Decision(f"{agent_id}:{self._n}", action, propensity, explored, bucket)

    def feedback(
        self,
        agent_id: str,
        user_id: str,
        decision: Decision,
        kind: str,
        value: float,
        ts: datetime,
    ) -> None:
        if self.update_fn is not None:
            self.update_fn(agent_id, decision.bucket, decision.action, value, ts.timestamp())

    def settle(self, agent_id: str, decision: Decision) -> None:
        return None


class OracleBackend(InProcessBackend):
    """Always the action with the highest true acceptance (it reads the hidden state)."""

    def __init__(self) -> None:
        super().__init__(lambda *_: ("", 1.0, False), name="oracle")

    def decide(
        self,
        agent_id: str,
        user_id: str,
        context: Mapping[str, str],
        ts: datetime,
        world: LifeWorld,
    ) -> Decision:
        self._n += 1
        action = oracle_action(world.person, world.state)
        return Decision(f"{agent_id}:{self._n}", action, 1.0, False, "*")


def as_policy(doc: PolicyDocument | Mapping[str, Any]) -> PolicyDocument:
    """A :class:`PolicyDocument` from a document or its JSON-like dict."""
    return doc if isinstance(doc, PolicyDocument) else PolicyDocument.model_validate(doc)


def random_policy(
    agent_id: str, bucket: str, actions: Sequence[str], rng: random.Random
) -> tuple[str, float, bool]:
    """The uniform-random baseline policy."""
    return rng.choice(list(actions)), 1.0 / len(actions), True


def random_backend(seed: int = 0) -> InProcessBackend:
    """The uniform-random baseline as a backend."""
    return InProcessBackend(random_policy, seed=seed, name="random")


def oracle_backend() -> OracleBackend:
    """The oracle baseline as a backend."""
    return OracleBackend()


def learner_backend(
    seed: int = 0,
    learner_factory: Callable[[str, AgentSpec], Any] | None = None,
    epsilon_floor: float = 0.02,
    epsilon_decay_count: float = 20.0,
) -> InProcessBackend:
    """The real learner in-process: one learner per agent, decisions by ``PolicyDocument``.

    Like the running stack, a decision uses the last *published* policy document
    (``maybe_publish`` after every reward), and the learner sees the reward before the
    next decision.
    """
    learners: dict[str, Any] = {}
    docs: dict[str, PolicyDocument] = {}

    def make(agent_id: str, spec: AgentSpec) -> Any:
        if learner_factory is not None:
            return learner_factory(agent_id, spec)
        from dataflows.learner import EpsilonGreedyLearner

        return EpsilonGreedyLearner(
            agent_id,
            "default",
            spec,
            epsilon_floor=epsilon_floor,
            epsilon_decay_count=epsilon_decay_count,
        )

    def policy_fn(
        agent_id: str, bucket: str, actions: Sequence[str], rng: random.Random
    ) -> tuple[str, float, bool]:
        doc = docs.get(agent_id)
        if doc is None:
            doc = docs[agent_id] = learners[agent_id].policy()
        return doc.choose(bucket, actions, rng)

    def update_fn(agent_id: str, bucket: str, action: str, reward: float, ts: float) -> None:
        lrn = learners[agent_id]
        lrn.update(bucket, action, reward, ts)
        published = lrn.maybe_publish() if hasattr(lrn, "maybe_publish") else lrn.policy()
        if published is not None:
            docs[agent_id] = as_policy(published)

    def on_register(agent_id: str, spec: AgentSpec) -> None:
        learners[agent_id] = make(agent_id, spec)
        docs.pop(agent_id, None)

    return InProcessBackend(
        policy_fn, update_fn, seed=seed, name="learner", on_register=on_register
    )


# -- HTTP -------------------------------------------------------------------------------------


@dataclass
class WaitStats:
    """How the HTTP driver's waits for a new policy version went."""

    waits: int = 0
    timeouts: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, seconds: float, timed_out: bool) -> None:
        with self.lock:
            self.waits += 1
            self.timeouts += int(timed_out)
            self.seconds += seconds

    @property
    def mean_seconds(self) -> float:
        return self.seconds / self.waits if self.waits else 0.0


class HttpBackend:
    """The running stack: decide and feedback over HTTP, then wait for a newer policy.

    Parameters
    ----------
    client
        A :class:`gateway.client.RewardflowClient` (or anything with its methods).
    wait_seconds
        Upper bound of the wait for the policy version to rise after feedback.
    poll_seconds
        Interval between ``GET /policy`` polls.
    send_ts
        Send simulated event times with decisions and feedback (slot times, 6 h apart)
        instead of letting the gateway stamp wall-clock time.
    """

    concurrent = True
    name = "http"

    def __init__(
        self,
        client: Any,
        wait_seconds: float = 3.0,
        poll_seconds: float = 0.05,
        send_ts: bool = False,
    ) -> None:
        self.client = client
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self.send_ts = send_ts
        self.stats = WaitStats()

    def register(self, agent_id: str, spec: Mapping[str, Any]) -> None:
        self.client.upsert_agent(agent_id, dict(spec))

    def decide(
        self,
        agent_id: str,
        user_id: str,
        context: Mapping[str, str],
        ts: datetime,
        world: LifeWorld,
    ) -> Decision:
        d = self.client.decide(agent_id, user_id, dict(context), ts=ts if self.send_ts else None)
        return Decision(
            decision_id=str(d["decision_id"]),
            action=str(d["action"]),
            propensity=float(d.get("propensity", 1.0)),
            explored=bool(d.get("explored", False)),
            bucket=str(d.get("bucket", "")),
            policy_version=int(d.get("policy_version", 0)),
            traits=dict(d.get("traits") or {}),
        )

    def feedback(
        self,
        agent_id: str,
        user_id: str,
        decision: Decision,
        kind: str,
        value: float,
        ts: datetime,
    ) -> None:
        self.client.feedback(
            decision.decision_id, agent_id, user_id, kind, value, ts=ts if self.send_ts else None
        )

    def policy_version(self, agent_id: str) -> int:
        try:
            return int(self.client.policy(agent_id).get("version", -1))
        except Exception:  # noqa: BLE001 - no policy yet reads as "older than any"
            return -1

    def settle(self, agent_id: str, decision: Decision) -> None:
        start = time.monotonic()
        deadline = start + self.wait_seconds
        while True:
            if self.policy_version(agent_id) > decision.policy_version:
                self.stats.add(time.monotonic() - start, False)
                return
            if time.monotonic() >= deadline:
                self.stats.add(time.monotonic() - start, True)
                return
            time.sleep(self.poll_seconds)


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

        bar = tqdm(rounds, desc=f"{backend.name} rounds", unit="round")
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
                bar.set_postfix(acc=f"{np.mean([r['expected'] for r in recs]):.2f}")
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    result.seconds = time.monotonic() - start
    return result
