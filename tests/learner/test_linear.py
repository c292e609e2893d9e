"""Linear contextual scoring: the slope estimator, learning, exact propensities, state."""

# ruff: noqa: S301 - unpickling our own learners

from __future__ import annotations

import copy
import pickle
import random
import statistics
import uuid
from datetime import timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from dataflows.agent_state import AgentState
from dataflows.join_types import JoinConfig
from dataflows.learner import EpsilonGreedyLearner, make_learner
from dataflows.learner.linear import LinearStats
from dataflows.reward_model import load_reward_model
from gateway import core
from gateway.plan import DecisionPlan
from gateway.rules import default_rules
from schemas.agent import AgentSpec
from schemas.events import AgentUpserted, DecisionMade, FeedbackGiven
from schemas.policy import PolicyDocument

ACTIONS = ["rest", "work", "chat"]


def spec(features: list[str] | None = None, **extra: object) -> AgentSpec:
    return AgentSpec.model_validate({"persona": {"name": "x"}, "actions": ACTIONS,
                                     "context_keys": ["slot"], "features": features or [],
                                     **extra})


def accept_prob(action: str, energy: float) -> float:
    """A world whose best action flips with one feature inside every bucket."""
    return {"rest": 0.9 - 0.8 * energy, "work": 0.1 + 0.8 * energy, "chat": 0.45}[action]


def play(features: list[str], seed: int, n: int = 400) -> tuple[float, EpsilonGreedyLearner]:
    """Mean expected acceptance of the published documents' choices over ``n`` decisions."""
    lrn = EpsilonGreedyLearner("a", spec=spec(features))
    rng = random.Random(seed)
    doc = lrn.policy()
    total = 0.0
    for t in range(n):
        slot, energy = rng.choice(["am", "pm"]), rng.random()
        ctx = {"slot": slot, "energy": energy}
        action, _, _ = doc.choose(f"slot={slot}", ACTIONS, rng, context=ctx)
        p = accept_prob(action, energy)
        total += p
        reward = 1.0 if rng.random() < p else -1.0
        lrn.update(f"slot={slot}", action, reward, float(t), features=lrn.feature_vector(ctx))
        raw = lrn.maybe_publish()
        if raw is not None:
            doc = PolicyDocument.model_validate(raw)
    return total / n, lrn


def test_within_bucket_slope_is_least_squares_with_a_dummy_per_cell():
    rng = np.random.default_rng(3)
    lin = LinearStats(["x1", "x2"], ridge=1e-9)
    rows: dict[str, list[tuple[str, np.ndarray, float]]] = {"a": [], "b": []}
    for _ in range(300):
        bucket, action = f"k={rng.integers(3)}", str(rng.choice(["a", "b"]))
        x = rng.random(2)
        r = float(rng.normal()) + (0.7 * x[0] - 0.4 * x[1] if action == "a" else x[1])
        r += {"k=0": -1.0, "k=1": 0.0, "k=2": 2.0}[bucket]
        lin.observe(bucket, action, tuple(x), r)
        rows[action].append((bucket, x, r))
    w = lin.weights()
    for action, data in rows.items():
        cells = sorted({b for b, _, _ in data})
        design = np.array([[1.0 * (b == c) for c in cells] + list(x) for b, x, _ in data])
        coef, *_ = np.linalg.lstsq(design, np.array([r for _, _, r in data]), rcond=None)
        assert w[action] == pytest.approx(coef[-2:].tolist(), abs=1e-5)


def test_missing_or_text_features_move_nothing():
    lin = LinearStats(["e"])
    lin.observe("*", "a", (0.2,), 1.0)
    lin.observe("*", "a", lin.vector({"e": "high"}), -1.0)
    lin.observe("*", "a", lin.vector({}), 1.0)
    assert lin.center("*") == [0.2] and lin.weights() == {"a": [0.0]}


def test_linear_scoring_learns_what_a_value_table_cannot():
    table = [play([], seed)[0] for seed in range(5)]
    linear = [play(["energy"], seed)[0] for seed in range(5)]
    assert all(lin > tab for lin, tab in zip(linear, table, strict=True)), (linear, table)
    assert statistics.mean(linear) > statistics.mean(table) + 0.08
    _, lrn = play(["energy"], 0)
    w = lrn.linear.weights()
    assert w["work"][0] > 0.3 and w["rest"][0] < -0.3  # the slopes have the world's signs
    assert "energy moves" in lrn.policy_dict()["explanation"]


def test_document_propensities_are_exact_for_every_context():
    _, lrn = play(["energy"], 1, n=200)
    doc = PolicyDocument.model_validate(lrn.policy_dict())
    assert doc.linear is not None and doc.linear.features == ["energy"]
    for bucket in ("slot=am", "slot=pm", "slot=never-seen"):
        bp = doc.bucket_policy(bucket)
        assert bp.probs is None and bp.base is not None and bp.center is not None
        assert bp.centers and set(bp.centers) <= set(ACTIONS)
        greedy = set()
        for energy in (0.0, 0.3, 0.7, 1.0):
            ctx = {"energy": energy}
            probs = doc.action_probabilities(bucket, ACTIONS, context=ctx)
            assert sum(probs.values()) == pytest.approx(1.0)
            assert min(probs.values()) >= bp.epsilon / len(ACTIONS) - 1e-12
            greedy.add(max(probs, key=probs.get))
            rng = random.Random(energy)
            picks = dict.fromkeys(ACTIONS, 0)
            for _ in range(3000):
                a, prop, _ = doc.choose(bucket, ACTIONS, rng, context=ctx)
                assert prop == probs[a]
                picks[a] += 1
            for a in ACTIONS:
                assert abs(picks[a] / 3000 - probs[a]) < 0.035
            nox = doc.action_probabilities(bucket, ACTIONS, explore=False, context=ctx)
            assert sorted(nox.values()) == [0.0, 0.0, 1.0]
        assert greedy == {"rest", "work"}  # low energy: rest; high energy: work


def test_the_gateway_plan_and_core_decide_agree_on_linear_policies():
    _, lrn = play(["energy"], 2, n=150)
    sp = spec(["energy"])
    doc = PolicyDocument.model_validate(lrn.policy_dict())
    plan = DecisionPlan("default", "a", sp, doc, default_rules(), 0, None)
    for i in range(200):
        ctx = {"slot": random.Random(i).choice(["am", "pm"])}
        if i % 3:
            ctx["energy"] = i / 200
        did = uuid.UUID(int=i + 1)
        ev, body = core.decide(tenant="default", agent_id="a", spec=sp, policy=doc,
                               rules=default_rules(), rules_version=0, user_id="u",
                               context=ctx, ts=None, rng=random.Random(i), decision_id=did)
        out, *_ = plan.decide(user_id="u", context=ctx, ts=None, rng=random.Random(i),
                              decision_id=str(did))
        assert (out["action"], out["propensity"]) == (body["action"], body["propensity"])
        assert body["propensity"] == pytest.approx(doc.action_probabilities(
            f"slot={ctx['slot']}", ACTIONS, context=ctx)[body["action"]])


def test_state_clones_pickles_and_replays_deterministically():
    _, a = play(["energy"], 4, n=120)
    _, b = play(["energy"], 4, n=120)
    assert a.policy_dict() == b.policy_dict()
    blob = pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) < 12_000, len(blob)
    for clone in (pickle.loads(blob), copy.deepcopy(a)):
        assert clone.policy_dict() == a.policy_dict()
        clone.update("slot=am", "work", 1.0, 1e3, features=(0.9,))
        a2 = pickle.loads(blob)
        a2.update("slot=am", "work", 1.0, 1e3, features=(0.9,))
        assert clone.maybe_publish() == a2.maybe_publish()


def test_rollback_brings_back_the_document():
    _, lrn = play(["energy"], 5, n=100)
    old = lrn.policy_dict()
    for t in range(50):
        lrn.update("slot=am", "chat", 1.0, 1e4 + t, features=(0.1,))
        lrn.maybe_publish()
    assert lrn.policy_dict()["linear"]["weights"] != old["linear"]["weights"]
    lrn.rollback(old, ts=2e4)
    doc = lrn.maybe_publish()
    assert doc["explanation"] == f"rolled back to v{old['version']}."
    for a, w in old["linear"]["weights"].items():
        assert doc["linear"]["weights"][a] == pytest.approx(w, abs=1e-6)
    for b, bp in old["buckets"].items():
        new = doc["buckets"][b]
        assert new["center"] == pytest.approx(bp["center"])
        assert new["centers"].keys() == bp["centers"].keys()
        for a, c in bp["centers"].items():
            assert new["centers"][a] == pytest.approx(c)
        assert new["base"] == pytest.approx(bp["base"], abs=2e-6)  # values were rounded


def test_a_spec_without_features_drops_them_and_a_new_list_starts_over():
    _, lrn = play(["energy"], 6, n=60)
    lrn.set_spec(spec(["energy", "mood"]))
    assert lrn.linear is not None and lrn.linear.features == ("energy", "mood")
    assert lrn.linear.cells == {}
    lrn.set_spec(spec())
    assert lrn.linear is None and lrn.policy_dict()["linear"] is None


@pytest.mark.parametrize(("extra", "message"), [
    ({"features": ["slot"]}, "also context_keys"),
    ({"features": ["e"], "algorithm": "ucb"}, "does not take them"),
    ({"features": ["e", "e"]}, "features must be unique"),
])
def test_spec_rejects_features_it_cannot_score(extra, message):
    with pytest.raises(ValidationError, match=message):
        spec(**extra)


def test_the_join_carries_a_decisions_features_to_the_learner():
    cfg = JoinConfig(load_reward_model(), idle=None)
    st = AgentState("default", "a1", cfg)
    meta = (None, None, None)
    st.ingest(AgentUpserted(agent_id="a1", spec=spec(["energy"])), meta, now=0.0)
    decisions = []
    for i in range(6):
        d = DecisionMade(decision_id=uuid.uuid4(), agent_id="a1", user_id="u", action="work",
                         propensity=0.5, explored=False, policy_version=0, bucket="slot=am",
                         context={"slot": "am", "energy": i / 5})
        decisions.append(d)
        st.ingest(d, meta, now=0.0)
        st.ingest(FeedbackGiven(decision_id=d.decision_id, agent_id="a1", user_id="u",
                                kind="thumbs", value=1.0 if i >= 3 else -1.0, ts=d.ts),
                  meta, now=0.0)
    st.drain()
    lin = st.learner.linear
    assert lin is not None and lin.cells["slot=am"]["work"][0] == 6
    assert lin.center("slot=am") == pytest.approx([0.5])
    assert lin.weights()["work"][0] > 0
    # a decision record from a snapshot taken before linear scoring (8 fields) still closes
    old = DecisionMade(decision_id=uuid.uuid4(), agent_id="a1", user_id="u", action="rest",
                       propensity=0.5, explored=False, policy_version=0, bucket="slot=am")
    st.ingest(old, meta, now=0.0)
    st.drain()
    st.open.replace(str(old.decision_id), st.open[str(old.decision_id)][:8])
    st.ingest(FeedbackGiven(decision_id=old.decision_id, agent_id="a1", user_id="u",
                            kind="thumbs", value=1.0, ts=old.ts + timedelta(seconds=1)),
              meta, now=0.0)
    out = st.drain()
    assert [r["action"] for r in out.rewards] == ["rest"]
    assert lin.cells["slot=am"].get("rest") is None  # no features: the table only


def test_make_learner_gives_linear_scoring_to_the_default_algorithm():
    lrn = make_learner("a", "t", spec(["energy"]))
    assert type(lrn) is EpsilonGreedyLearner and lrn.linear is not None
