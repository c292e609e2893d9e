"""The whole loop on real parts: gateway and dataflow processes, real broker and Redis."""

from __future__ import annotations

import time

import orjson
import pytest

from gateway.client import RewardflowError
from simulator import companion_demo
from simulator.life import make_people
from simulator.runner import HttpBackend, run_life
from stack.ports import free_port
from tests.dataflows.kafka_io import consume_all, produce, wait_until
from tests.running_stack import running_stack

pytestmark = pytest.mark.integration


@pytest.fixture()
def stack(settings, tmp_path):
    s = settings.model_copy(update={"gateway_port": free_port(),
                                    "dataflow_metrics_port": free_port(),
                                    "snapshot_seconds": 2,
                                    "idle_watermark_seconds": 0.2,
                                    "allowed_lateness_seconds": 0.1})
    with running_stack(s, tmp_path) as client:
        yield s, client


SPEC = {"persona": {"name": "Ava", "description": "a helpful companion"},
        "traits": {"humor": 0.5, "empathy": 0.7}, "actions": ["ask", "joke", "suggest"],
        "context_keys": ["room"], "epsilon": 0.1}


def test_register_decide_feedback_raises_policy_version_within_2s(stack):
    s, client = stack
    client.upsert_agent("ava", SPEC)
    assert client.policy("ava")["version"] == 0
    d = client.decide("ava", "u1", {"room": "dm"})
    assert d["action"] in SPEC["actions"] and 0 < d["propensity"] <= 1
    assert d["prompt"]["system"]
    t0 = time.monotonic()
    client.feedback(d["decision_id"], "ava", "u1", "thumbs", 1.0)
    pol = wait_until(lambda: (p := client.policy("ava"))["version"] >= 1 and p, timeout=2.0,
                     interval=0.02)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0
    assert pol["buckets"]["room=dm"]["values"] == {d["action"]: 1.0}
    decisions = consume_all(s.kafka_bootstrap_servers, s.topics.decisions)
    assert [x["decision_id"] for x in decisions] == [d["decision_id"]]
    assert decisions[0]["propensity"] == d["propensity"]


def test_garbage_on_signals_topic_goes_to_dlq_and_learning_carries_on(stack):
    s, client = stack
    client.upsert_agent("bob", SPEC)
    produce(s.kafka_bootstrap_servers, [(s.topics.signals, b'{"type": "FeedbackGiven"}')])
    d = client.decide("bob", "u1", {"room": "dm"})
    client.feedback(d["decision_id"], "bob", "u1", "rating", 5)
    wait_until(lambda: client.policy("bob")["version"] >= 1, timeout=5)
    dlq = consume_all(s.kafka_bootstrap_servers, s.topics.dlq)
    assert len(dlq) == 1 and "agent_id" in dlq[0]["reason"]


def test_simulated_person_moves_policy_toward_hidden_preference(stack):
    _, client = stack
    people = make_people(1, seed=11, archetypes=["night_owl", "introvert"])
    # The gateway samples with an unseeded RNG and policy updates land when they land, so a
    # run is one draw. After one week (7 visits per day part for 10 actions) the introvert's
    # lead over random was 0.25 on average with runs below 0.1 (2 of 24 runs, 2026-12-03: a
    # flaky test); after two weeks it was 0.40, at least 0.23 in 12 of 12 runs.
    result = run_life(people, HttpBackend(client, wait_seconds=2.0), weeks=3, seed=11,
                      progress=False)
    for p in people:
        recs = [r for r in result.records if r["person_id"] == p.person_id and r["week"] == 2]
        learned = sum(r["expected"] for r in recs) / len(recs)
        rand = sum(r["random_expected"] for r in recs) / len(recs)
        oracle = sum(r["oracle_expected"] for r in recs) / len(recs)
        # In week 3 the policy already prefers what this person accepts.
        assert learned > rand + 0.1, (p.archetype, learned, rand, oracle)
        versions = {r["policy_version"] for r in recs}
        assert max(versions) > 20


def test_linear_scoring_over_http_learns_slopes_and_logs_exact_propensities(stack):
    s, client = stack
    client.upsert_agent("lin", {**SPEC, "features": ["energy"]})
    with pytest.raises(RewardflowError) as err:
        client.decide("lin", "u1", {"room": "dm", "energy": "high"})
    assert err.value.status == 422
    assert orjson.loads(err.value.body)["detail"][0]["loc"] == ["body", "context", "energy"]
    made = []
    for i in range(12):
        energy = i / 11
        d = client.decide("lin", "u1", {"room": "dm", "energy": energy})
        made.append(d)
        good = (d["action"] == "joke") == (energy > 0.5)  # joke pays when energy is high
        client.feedback(d["decision_id"], "lin", "u1", "thumbs", 1.0 if good else -1.0)
    pol = wait_until(lambda: companion_demo.policy_rewards(p := client.policy("lin")) >= 12
                     and p, timeout=10.0, interval=0.05)
    assert pol["linear"]["features"] == ["energy"] and pol["linear"]["weights"]
    bp = pol["buckets"]["room=dm"]
    assert bp.get("probs") is None and set(bp["base"]) == set(SPEC["actions"])
    assert 0.0 <= bp["center"][0] <= 1.0
    logged = {x["decision_id"]: x for x in consume_all(s.kafka_bootstrap_servers,
                                                       s.topics.decisions)}
    for d in made:  # every decision logs the context it was scored on and its propensity
        ev = logged[d["decision_id"]]
        assert ev["propensity"] == d["propensity"] and "energy" in ev["context"]


def test_companion_people_over_http_move_traits_inside_their_bounds(stack, tmp_path):
    """simulator.companion_demo against the stack: trait tuning through gateway and flow."""
    _, client = stack
    # 4 people x 800 messages: every one of 5 runs moved 7-16 traits (3 x 300: 2 of 5 none)
    res = companion_demo.run(client, people=4, interactions=800, seed=0, block=100,
                             run_id="t")
    assert res["settled"], "every message's reward reached the policy"
    assert res["violations"] == 0
    rows = res["people"]
    assert [r["rewards"] for r in rows] == [800] * 4
    # RF_POLICY_MIN_INTERVAL_SECONDS (1 s): the rewards of a second fold into one version
    assert all(1 < r["policy_version"] < 800 for r in rows)
    lo, hi = companion_demo.BOUNDS
    moved = [t for r in rows for t, v in r["traits"].items() if v != 0.5]
    assert moved, "800 messages each moved no trait of anyone"
    for r in rows:
        assert all(lo <= v <= hi for v in r["traits"].values())
        assert len(r["curve"]) == 1 + 800 // 100 + 1
    companion_demo.plot(rows, 100, 800, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10_000
