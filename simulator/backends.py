"""Backends of the life-world simulation loop (:func:`simulator.runner.run_life`).

:class:`HttpBackend` drives the running stack over HTTP; :class:`InProcessBackend` plugs a
policy and an update function in directly (:func:`learner_backend` wires the real learner,
:func:`random_backend` and :func:`oracle_backend` the baselines). Every backend returns a
:class:`Decision` per person and slot.
"""


from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from schemas.agent import AgentSpec
from schemas.buckets import context_bucket
from schemas.policy import PolicyDocument
from simulator.life import LifeWorld, oracle_action

PolicyFn = Callable[[str, str, Sequence[str], random.Random], tuple[str, float, bool]]
UpdateFn = Callable[[str, str, str, float, float], None]


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
