"""Rolling back an agent that learns from a population prior restores that version exactly."""

from __future__ import annotations

from dataflows.learner import make_learner
from schemas.agent import AgentSpec
from schemas.priors import Archetype, PriorDocument

PRIOR = PriorDocument(template="t", actions=["a", "b", "c"], archetypes=[
    Archetype(name="A", size=5, values={"*": {"a": 0.9, "b": -0.5, "c": 0.1}}),
    Archetype(name="B", size=5, values={"*": {"a": -0.9, "b": 0.8, "c": 0.0}})])
SPEC = AgentSpec(persona={"name": "x"}, actions=["a", "b", "c"], template="t")


def test_rollback_with_a_prior_restores_the_old_values_not_a_second_blend() -> None:
    lrn = make_learner("ag", "default", SPEC, prior=PRIOR)
    for i, (action, r) in enumerate([("a", -1.0), ("b", 1.0), ("c", 0.5), ("b", 0.5)]):
        lrn.update("*", action, r, float(i))
        lrn.maybe_publish()
    v_old = lrn.policy_dict()
    for i, (action, r) in enumerate([("a", 1.0), ("a", 1.0), ("b", -1.0)]):
        lrn.update("*", action, r, 10.0 + i)
        lrn.maybe_publish()
    assert lrn.policy_dict()["buckets"]["*"]["values"] != v_old["buckets"]["*"]["values"]
    lrn.rollback(v_old, 20.0)
    new = lrn.maybe_publish()
    assert new is not None and new["explanation"] == f"rolled back to v{v_old['version']}."
    old_vals, new_vals = v_old["buckets"]["*"]["values"], new["buckets"]["*"]["values"]
    assert old_vals.keys() == new_vals.keys()
    for a in old_vals:
        assert abs(new_vals[a] - old_vals[a]) < 1e-4, (a, old_vals, new_vals)  # 4-digit weights
    assert new["buckets"]["*"]["counts"] == v_old["buckets"]["*"]["counts"]


def test_rollback_without_a_prior_is_unchanged() -> None:
    lrn = make_learner("ag", "default", SPEC)
    lrn.update("*", "a", 1.0, 0.0)
    lrn.maybe_publish()
    v1 = lrn.policy_dict()
    lrn.update("*", "a", -1.0, 1.0)
    lrn.maybe_publish()
    lrn.rollback(v1, 2.0)
    assert lrn.maybe_publish()["buckets"]["*"]["values"] == v1["buckets"]["*"]["values"]
