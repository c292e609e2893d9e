"""The agent join's boundary (:class:`dataflows.join_types.AgentCore`), the differential
harness a second implementation of it is checked with (:mod:`tests.dataflows.differential`),
and that second implementation, the compiled :class:`dataflows.agent_native.NativeAgentState`,
against the Python join.

The harness is worth trusting because a join differing in one small way is caught, which
the mutation cases show; the Python join against itself must come out equal, and so must
the native join against the Python one, over several seeds and configurations.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from dataflows import agent_step
from dataflows.agent_native import NativeAgentState
from dataflows.agent_state import AgentState
from dataflows.join_types import AgentCore, Emitted, JoinConfig
from dataflows.reward_model import load_reward_model
from schemas.events import DecisionMade, FeedbackGiven
from schemas.topics import Topics
from tests.dataflows.differential import (
    Driver,
    control_events,
    first_difference,
    parsed,
    with_control,
)
from tests.dataflows.mixed_stream import T0, mixed_stream
from tests.dataflows.test_join_reference import AGENTS, WINDOW, _flow_documents

N_DECISIONS = 1_500


def _cfg(**changes: Any) -> JoinConfig:
    settings: dict[str, Any] = {"window": WINDOW, "lateness": 2.0, "idle": 0.5,
                                "policy_interval": 1.0}
    return JoinConfig(load_reward_model(), **(settings | changes))


def _items(seed: int) -> list[Any]:
    topics = Topics("dif")
    stream = mixed_stream(topics, n_decisions=N_DECISIONS, agents=AGENTS, users=6,
                          seed=seed, window=WINDOW)
    span = N_DECISIONS * 0.055  # the stream's mean decision spacing
    return parsed(with_control(stream, control_events(topics, AGENTS, T0, span, seed)))


def _transcript(factory: Any, seed: int, cfg: JoinConfig | None = None
                ) -> tuple[list[bytes], dict[str, int]]:
    driver = Driver(factory, cfg or _cfg(), seed)
    return driver.run(_items(seed)), driver.tally


def _python(tenant: str, agent_id: str, cfg: JoinConfig) -> AgentCore:
    return AgentState(tenant, agent_id, cfg)


def _native(tenant: str, agent_id: str, cfg: JoinConfig) -> AgentCore:
    return NativeAgentState(tenant, agent_id, cfg)


@pytest.mark.parametrize(("seed", "changes"), [
    (31, {}), (32, {}), (33, {}),
    # ids expire (a 60 s horizon: 1.9 s buckets, pruned every 512 steps), no idle fallback,
    # a version per reward
    (34, {"dedup_horizon": 60.0, "idle": None, "policy_interval": 0.0}),
    (35, {"lateness": 0.0, "window": 30.0}),  # timeouts inside the stream
])
def test_the_native_join_equals_the_python_join(seed: int, changes: dict[str, Any]) -> None:
    cfg = _cfg(**changes)
    python, tally = _transcript(_python, seed, cfg)
    native, _ = _transcript(_native, seed, cfg)
    assert first_difference(python, native) is None
    assert tally["rewards"] > 800 and tally["restores"] > 3


@pytest.mark.parametrize("seed", [31, 32])
def test_the_python_join_against_itself_is_equal_and_the_run_reaches_every_path(
        seed: int) -> None:
    a, tally = _transcript(_python, seed)
    b, _ = _transcript(_python, seed)
    assert first_difference(a, b) is None
    # the transcript is only worth comparing if the run went everywhere a core goes
    assert tally["rewards"] > 800 and tally["policies"] > 50 and tally["dead"] > 2
    assert tally["documents"] > 100 and tally["restores"] > 3 and tally["wakeups"] > 500
    joined = b"\n".join(a)
    for call in (b"learner.set_spec", b"learner.set_prior", b"learner.assign_prior",
                 b"learner.rollback", b"learner.update", b"learner.maybe_publish",
                 b"-> (nan)"):  # the last: a feature vector (declared, not in the context)
        assert call in joined, call
    assert b'"closed_by":"timeout"' in joined and b'"closed_by":"terminal"' in joined


class _RewardOffBy1e15(AgentState):
    def _close(self, did: str, close_ts: float, closed_by: str, out: Emitted) -> None:
        n = len(out.rewards)
        super()._close(did, close_ts, closed_by, out)
        out.rewards[n]["reward"] += 1e-15


class _LearnerToldLater(AgentState):
    """Learns at the close's ts plus a microsecond (the rewards stay the same)."""

    def _close(self, did: str, close_ts: float, closed_by: str, out: Emitted) -> None:
        inner = self.learner

        class _Later:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def update(self, *args: Any, **kwargs: Any) -> None:
                args = (*args[:3], args[3] + 1e-6, *args[4:])
                inner.update(*args, **kwargs)

        self.learner = _Later()  # type: ignore[assignment]
        try:
            super()._close(did, close_ts, closed_by, out)
        finally:
            self.learner = inner


class _DocumentMissingAUser(AgentState):
    """Leaves one touched user's relationship out of a document that has several."""

    def document(self, policies: list[tuple[dict[str, Any], bytes]],
                 full: bool = True) -> dict[str, Any]:
        doc = super().document(policies, full)
        if len(doc["relationships"]) > 1:
            doc["relationships"].popitem()
        return doc


class _WakesLate(AgentState):
    def notify_at(self, input_last: float = 0.0, due: float | None = None) -> float | None:
        at = super().notify_at(input_last, due)
        return None if at is None else at + 0.001


@pytest.fixture(scope="module")
def reference_33() -> list[bytes]:
    return _transcript(_python, 33)[0]


@pytest.mark.parametrize("other", [_RewardOffBy1e15, _LearnerToldLater,
                                   _DocumentMissingAUser, _WakesLate])
def test_the_harness_catches_a_join_that_differs_in_one_small_way(
        other: type, reference_33: list[bytes]) -> None:
    b, _ = _transcript(other, 33)
    assert first_difference(reference_33, b) is not None


def _decision(agent: str, user: str, n: int) -> DecisionMade:
    return DecisionMade(decision_id=uuid.uuid4(), agent_id=agent, user_id=user, action="a",
                        propensity=0.5,
                        explored=False, policy_version=0, bucket="*",
                        ts=datetime.fromtimestamp(T0 + n, UTC))


@pytest.mark.parametrize("factory", [_python, _native])
def test_an_event_the_join_fails_on_is_dead_lettered_and_the_rest_applies(
        factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    st: Any = factory("default", "a1",
                      JoinConfig(load_reward_model(), idle=None, lateness=0.0))
    d1, d2 = _decision("a1", "u1", 0), _decision("a1", "u2", 1)
    f1, f2 = (FeedbackGiven(decision_id=d.decision_id, agent_id="a1", user_id=d.user_id,
                            kind="thumbs", value=v, ts=d.ts) for d, v in ((d1, 1.0), (d2, -1.0)))
    items = [("default:a1", e, ("t.x", 0, n), None) for n, e in enumerate([d1, f1, d2, f2])]
    real_update = st.learner.update

    def update(bucket: str, action: str, reward: float, ts: float, **kw: Any) -> None:
        if reward < 0:  # the learner fails on d2's reward, which f2 closes
            raise RuntimeError("learner bug")
        real_update(bucket, action, reward, ts, **kw)

    st.learner.update = update
    with caplog.at_level(logging.ERROR, logger="rewardflow.dataflow"):
        out = st.on_events(items, now=0.0)
    # f1 closed d1 and stays; what f2 had added (its join, d2's reward) is dropped
    assert [r["decision_id"] for r in out.rewards] == [str(d1.decision_id)]
    assert out.joined == 1
    [dead] = out.dead
    assert dead.step == "agent" and "RuntimeError: learner bug" in dead.reason
    assert (dead.topic, dead.partition, dead.offset) == ("t.x", 0, 3)
    assert str(f2.event_id) in dead.payload
    assert "step 'agent' failed on event" in caplog.text


_BOUNDARY = {n for n in vars(AgentCore) if not n.startswith("_")} \
    | set(AgentCore.__annotations__)


class OnlyTheBoundary:
    """An agent's join behind a wrapper that refuses what :class:`AgentCore` does not
    declare (pickled, it is the join alone)."""

    def __init__(self, inner: AgentCore) -> None:
        self.__dict__["inner"] = inner

    def __getattr__(self, name: str) -> Any:
        if name not in _BOUNDARY:
            raise AssertionError(f"the glue asked the join for {name!r}")
        return getattr(self.__dict__["inner"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _BOUNDARY:
            raise AssertionError(f"the glue set {name!r} on the join")
        setattr(self.__dict__["inner"], name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_alone, (self.__dict__["inner"],))


def _alone(inner: AgentCore) -> AgentCore:
    return inner


@pytest.mark.parametrize("factory", [_python, _native])
def test_the_glue_reaches_the_join_only_through_its_boundary(
        factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole flow with each agent's join behind a wrapper that refuses everything
    :class:`AgentCore` does not declare gives the same documents and rewards."""
    stream = mixed_stream(Topics("ref"), n_decisions=800, agents=AGENTS, users=6, seed=22,
                          window=WINDOW)
    plain = _flow_documents(stream, 1)
    monkeypatch.setattr(agent_step, "new_core",
                        lambda t, a, cfg: OnlyTheBoundary(factory(t, a, cfg)))
    wrapped = _flow_documents(stream, 1)
    assert wrapped == plain and len(plain[0]) > 100
