"""``RF_POLICY_MIN_INTERVAL_SECONDS``: at most one policy version per agent per interval of
event time, the rewards in between folded into the version that ends it; deterministic, so a
replay publishes the same versions however its input is batched."""

from __future__ import annotations

import pickle
import random
import uuid
from datetime import UTC, datetime, timedelta

from dataflows.agent_state import AgentState
from dataflows.join_types import JoinConfig
from dataflows.reward_model import load_reward_model
from schemas.events import DecisionMade, FeedbackGiven

T0 = datetime(2026, 12, 1, tzinfo=UTC)
META = ("t.signals", 0, 0)


def _pairs(n: int, gap: float, seed: int = 1) -> list:
    """``n`` decisions ``gap`` seconds apart, each with a thumbs feedback 0.05 s later."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = T0 + timedelta(seconds=i * gap)
        d = DecisionMade(decision_id=uuid.UUID(int=rng.getrandbits(128)), agent_id="a",
                         user_id="u", action=rng.choice(["x", "y"]), propensity=0.5,
                         explored=False, policy_version=0, bucket="*", ts=ts,
                         event_id=uuid.UUID(int=rng.getrandbits(128)))
        f = FeedbackGiven(decision_id=d.decision_id, agent_id="a", user_id="u", kind="thumbs",
                          value=rng.choice([-1.0, 1.0]), ts=ts + timedelta(seconds=0.05),
                          event_id=uuid.UUID(int=rng.getrandbits(128)))
        out += [d, f]
    return out


def _state(interval: float) -> AgentState:
    cfg = JoinConfig(load_reward_model(), idle=None, lateness=0.0, policy_interval=interval)
    return AgentState("default", "a", cfg)


def _feed(events, interval: float, chunk: int) -> list[dict]:
    st = _state(interval)
    docs = []
    for i in range(0, len(events), chunk):
        for ev in events[i:i + chunk]:
            docs += st.ingest(ev, META, now=0.0).policies
    docs += st.drain().policies
    return docs


def test_rewards_inside_the_interval_are_folded_into_the_version_that_ends_it():
    events = _pairs(10, gap=0.2)  # ten rewards within 2 s of event time
    every = _feed(events, 0.0, chunk=1)
    folded = _feed(events, 1.0, chunk=1)
    assert len(every) >= 9  # a version may follow every reward
    assert len(folded) < len(every)
    # rewards close at 0.05, 0.25, ... 1.85 s: the first publishes at once, the next five
    # (up to 1.05 s, the end of the interval, inclusive) fold into v2, the rest into v3 at
    # the end of the input; each version's evidence is up to its newest reward
    assert [(d["version"], d["evidence"]["rewards"], d["updated_at"][17:23]) for d in folded] \
        == [(1, 1, "00.050"), (2, 6, "01.050"), (3, 10, "01.850")]
    # nothing is lost: the last version counts every reward, as without the interval
    assert folded[-1]["evidence"]["rewards"] == every[-1]["evidence"]["rewards"] == 10
    assert folded[-1]["buckets"] == every[-1]["buckets"]


def test_a_deferred_version_is_published_when_the_watermark_passes_its_time():
    st = _state(1.0)
    events = _pairs(3, gap=0.2)
    out = []
    for ev in events:
        out += st.ingest(ev, META, now=0.0).policies
    assert [d["version"] for d in out] == [1]  # the first reward published at once
    assert st.publish_at == (T0 + timedelta(seconds=1.05)).timestamp()
    st.advance(now=0.0, floor=(T0 + timedelta(seconds=1.0)).timestamp())  # the last feedback
    assert st.next_due() == st.publish_at  # so the shard wakes the agent for it
    later = _pairs(1, gap=0.0, seed=9)[0].model_copy(update={
        "ts": T0 + timedelta(seconds=5), "decision_id": uuid.uuid4(), "event_id": uuid.uuid4()})
    out = st.ingest(later, ("t.decisions", 0, 1), now=0.0).policies
    out += st.advance(now=0.0, floor=(T0 + timedelta(seconds=5)).timestamp()).policies
    assert [d["version"] for d in out] == [2]
    assert out[0]["evidence"]["rewards"] == 3
    assert st.publish_at is None


def test_versions_do_not_depend_on_how_the_input_is_batched():
    events = _pairs(40, gap=0.13, seed=4)
    runs = [_feed(events, 0.5, chunk) for chunk in (1, 3, 7, len(events))]
    assert all(r == runs[0] for r in runs[1:])


def test_a_pending_publish_survives_a_snapshot():
    st = _state(1.0)
    for ev in _pairs(3, gap=0.2):
        st.ingest(ev, META, now=0.0)
    restored = pickle.loads(pickle.dumps(st))
    restored.cfg = st.cfg
    assert restored.publish_at == st.publish_at is not None
    assert restored.drain().policies == st.drain().policies
