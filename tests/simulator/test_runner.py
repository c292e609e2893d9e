"""The simulation loop: in-process learning with the real learner, and the HTTP driver."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import pytest

from schemas.agent import AgentSpec
from schemas.buckets import context_bucket
from schemas.policy import PolicyDocument
from simulator.life import ARCHETYPES, make_people
from simulator.runner import (
    HttpBackend,
    as_policy,
    learner_backend,
    life_agent_spec,
    oracle_backend,
    random_backend,
    run_life,
)

EVAL_WEEKS = [6, 7]  # weeks 7-8


def _baselines(people: list, seed: int) -> tuple[Any, Any]:
    oracle = run_life(people, oracle_backend(), weeks=8, seed=seed, progress=False)
    rnd = run_life(people, random_backend(seed), weeks=8, seed=seed, progress=False)
    return oracle, rnd


@pytest.mark.parametrize("seed", [7, 21])
def test_real_learner_reaches_targets_in_weeks_7_8(seed: int) -> None:
    pytest.importorskip("dataflows.learner")
    people = make_people(3, seed)
    learned = run_life(people, learner_backend(seed), weeks=8, seed=seed, progress=False)
    oracle, rnd = _baselines(people, seed)
    for arch in ARCHETYPES:
        acc = learned.acceptance(EVAL_WEEKS, arch)
        r = rnd.acceptance(EVAL_WEEKS, arch, key="random_expected")
        o = oracle.acceptance(EVAL_WEEKS, arch)
        assert acc >= 1.5 * r, (arch, acc, r)
        assert acc >= 0.7 * o, (arch, acc, o)
        # Draws tell the same story as expectations.
        assert learned.acceptance(EVAL_WEEKS, arch, key="accepted") >= 1.4 * r
        # It learned: late weeks beat week 1.
        assert acc > learned.acceptance([0], arch) + 0.1


def test_in_process_runs_are_deterministic() -> None:
    pytest.importorskip("dataflows.learner")
    people = make_people(1, 5)
    a = run_life(people, learner_backend(5), weeks=2, seed=5, progress=False)
    b = run_life(people, learner_backend(5), weeks=2, seed=5, progress=False)
    assert a.records == b.records
    c = run_life(people, learner_backend(6), weeks=2, seed=5, progress=False)
    assert [r["action"] for r in a.records] != [r["action"] for r in c.records]


def test_baselines_bracket_everything() -> None:
    people = make_people(2, 3)
    oracle, rnd = _baselines(people, 3)
    assert oracle.acceptance() > 2 * rnd.acceptance(key="random_expected")
    # The oracle's expected acceptance is, per record, the best possible.
    assert all(abs(r["expected"] - r["oracle_expected"]) < 1e-12 for r in oracle.records)


# -- HTTP driver against a fake client with the RewardflowClient interface ---------------


class FakeClient:
    """In-memory stand-in for the gateway + dataflow: the learner publishes asynchronously,
    ``lag`` seconds after feedback arrives, like the real pipeline."""

    def __init__(self, lag: float = 0.02) -> None:
        from dataflows.learner import EpsilonGreedyLearner

        self.cls = EpsilonGreedyLearner
        self.lag = lag
        self.lock = threading.Lock()
        self.learners: dict[str, Any] = {}
        self.docs: dict[str, PolicyDocument] = {}
        self.specs: dict[str, AgentSpec] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self.rng = random.Random(0)
        self.feedback_calls = 0

    def upsert_agent(self, agent_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        s = AgentSpec.model_validate(spec)
        with self.lock:
            self.specs[agent_id] = s
            self.learners[agent_id] = self.cls(agent_id, "default", s)
            self.docs[agent_id] = self.learners[agent_id].policy()
        return {**spec, "created": True}

    def decide(
        self, agent_id: str, user_id: str, context: dict[str, Any], ts: Any = None
    ) -> dict[str, Any]:
        with self.lock:
            spec, doc = self.specs[agent_id], self.docs[agent_id]
            bucket = context_bucket(context, spec.context_keys)
            action, prop, explored = doc.choose(bucket, spec.actions, self.rng)
            did = str(uuid.uuid4())
            self.decisions[did] = {"bucket": bucket, "action": action}
        return {
            "decision_id": did,
            "action": action,
            "propensity": prop,
            "explored": explored,
            "policy_version": doc.version,
            "bucket": bucket,
            "traits": {},
            "prompt": "...",
        }

    def _learn(self, agent_id: str, d: dict[str, Any], value: float) -> None:
        time.sleep(self.lag)
        with self.lock:
            lrn = self.learners[agent_id]
            lrn.update(d["bucket"], d["action"], value, time.time())
            doc = lrn.maybe_publish()
            if doc is not None:
                self.docs[agent_id] = as_policy(doc)

    def feedback(
        self, decision_id: str, agent_id: str, user_id: str, kind: str, value: float, ts: Any = None
    ) -> None:
        assert kind in ("accept", "ignore") and value in (1.0, -1.0)
        self.feedback_calls += 1
        d = self.decisions[decision_id]
        threading.Thread(target=self._learn, args=(agent_id, d, value)).start()

    def policy(self, agent_id: str) -> dict[str, Any]:
        with self.lock:
            return self.docs[agent_id].model_dump(mode="json")


def test_http_driver_waits_for_new_policies_and_learns() -> None:
    pytest.importorskip("dataflows.learner")
    client = FakeClient(lag=0.01)
    backend = HttpBackend(client, wait_seconds=0.3, poll_seconds=0.002)
    people = make_people(1, 7)
    res = run_life(people, backend, weeks=6, seed=7, progress=False)
    n = 6 * 28 * len(people)
    assert len(res.records) == n and client.feedback_calls == n
    assert backend.stats.waits == n and backend.stats.timeouts == 0
    # Each decision saw the policy published after the previous feedback of that agent.
    for agent_id in {r["agent_id"] for r in res.records}:
        versions = [r["policy_version"] for r in res.records if r["agent_id"] == agent_id]
        assert versions == sorted(versions) and versions[-1] >= len(versions) - 1
    assert res.acceptance([4, 5]) > res.acceptance([0]) + 0.1


def test_http_driver_gives_up_after_the_bounded_wait() -> None:
    class Stuck(FakeClient):
        def _learn(self, agent_id: str, d: dict[str, Any], value: float) -> None:
            return None

    pytest.importorskip("dataflows.learner")
    backend = HttpBackend(Stuck(), wait_seconds=0.05, poll_seconds=0.01)
    start = time.monotonic()
    res = run_life(make_people(2, 1), backend, weeks=1, seed=1, progress=False)
    # 28 rounds, 6 people on threads: about one wait per round, not one per person.
    assert time.monotonic() - start < 28 * 0.05 * 3
    assert backend.stats.timeouts == backend.stats.waits == len(res.records)


def test_agent_spec_is_valid() -> None:
    spec = AgentSpec.model_validate(life_agent_spec(epsilon=0.3))
    assert spec.context_keys == ["day_part"] and spec.epsilon == 0.3
