"""Learner properties over random reward streams."""

from __future__ import annotations

import pickle
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.learner import EpsilonGreedyLearner
from schemas.agent import AgentSpec
from schemas.policy import PolicyDocument

SPEC = AgentSpec(persona={"name": "x"}, actions=["a", "b", "c"], context_keys=["k"],
                 epsilon=0.3)
rewards = st.lists(st.tuples(st.sampled_from(["k=1", "k=2"]), st.sampled_from(["a", "b", "c"]),
                             st.floats(-1, 1)), max_size=60)


@given(rewards)
@settings(max_examples=150, deadline=None)
def test_versions_values_and_epsilon_stay_sane(stream):
    lrn = EpsilonGreedyLearner("ag", spec=SPEC, epsilon_floor=0.05)
    last = 0
    for i, (bucket, action, r) in enumerate(stream):
        lrn.update(bucket, action, r, ts=float(i))
        raw = lrn.maybe_publish()
        if raw is not None:
            doc = PolicyDocument.model_validate(raw)  # the hot-path dict is a valid document
            assert doc.version == last + 1 and doc.parent_version == last
            last = doc.version
            assert doc.explanation
            for bp in doc.buckets.values():
                assert 0.05 <= bp.epsilon <= 0.3
                assert all(-1 <= v <= 1 for v in bp.values.values())
                probs = doc.action_probabilities("k=1", SPEC.actions)
                assert abs(sum(probs.values()) - 1) < 1e-9
    assert lrn.version == last


def test_learner_clones_pickles_and_is_deterministic():
    def run(lrn):
        rng = random.Random(7)
        for i in range(200):
            lrn.update(f"k={i % 2}", rng.choice("abc"), rng.uniform(-1, 1), float(i))
            lrn.maybe_publish()
        return lrn.policy().model_dump()

    a = run(EpsilonGreedyLearner("ag", spec=SPEC))
    b = run(EpsilonGreedyLearner("ag", spec=SPEC))
    assert a == b
    lrn = EpsilonGreedyLearner("ag", spec=SPEC)
    run(lrn)
    clone = pickle.loads(pickle.dumps(lrn))
    assert clone.policy().model_dump() == lrn.policy().model_dump()
    clone.update("k=1", "a", 1.0, 999.0)
    assert clone.means["k=1"]["a"].n == lrn.means["k=1"]["a"].n + 1
