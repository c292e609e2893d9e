"""The dataflow process against the real broker and Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from schemas.agent import AgentSpec
from schemas.events import AgentUpserted, DecisionMade, FeedbackGiven
from stack.ports import free_port, wait_for_port
from stack.processes import start_dataflow, stop
from tests.dataflows.kafka_io import consume_all, produce, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture()
def flow_settings(settings):
    return settings.model_copy(update={"dataflow_metrics_port": free_port(),
                                       "snapshot_seconds": 1})


@pytest.fixture()
def dataflow(flow_settings, tmp_path):
    proc = start_dataflow(flow_settings, log_path=tmp_path / "flow.log")
    try:
        # Ready once get_flow() ran (it opens the metrics port): a cold start in a fresh
        # clone (recovery store, imports) must not eat the tests' processing timeouts.
        wait_for_port("127.0.0.1", flow_settings.dataflow_metrics_port, timeout=90)
        yield proc
    finally:
        stop(proc)


def _decision(agent: str, action: str) -> DecisionMade:
    return DecisionMade(decision_id=uuid.uuid4(), agent_id=agent, user_id="u1", action=action,
                        propensity=0.5, explored=False, policy_version=0, bucket="*")


def _policy(redis_client, s, agent):
    raw = redis_client.get(s.keys.policy("default", agent))
    return orjson.loads(raw) if raw else None


def test_feedback_moves_policy_and_garbage_goes_to_dlq(flow_settings, dataflow, redis_client):
    s = flow_settings
    spec = AgentSpec(persona={"name": "A"}, actions=["x", "y"])
    produce(s.kafka_bootstrap_servers, [(s.topics.agents, AgentUpserted(agent_id="a1",
                                                                      spec=spec))])
    d = _decision("a1", "y")
    produce(s.kafka_bootstrap_servers, [
        (s.topics.decisions, d),
        (s.topics.signals, b"this is not json"),
        (s.topics.signals, FeedbackGiven(decision_id=d.decision_id, agent_id="a1",
                                         user_id="u1", kind="thumbs", value=1.0)),
    ])
    pol = wait_until(lambda: _policy(redis_client, s, "a1"), timeout=30)
    assert pol["version"] == 1
    assert pol["buckets"]["*"]["values"] == {"y": 1.0}
    dlq = wait_until(lambda: consume_all(s.kafka_bootstrap_servers, s.topics.dlq), 10)
    assert dlq[0]["payload"] == "this is not json"
    assert dlq[0]["topic"] == s.topics.signals and dlq[0]["offset"] is not None
    # Learning carries on after the bad message.
    d2 = _decision("a1", "x")
    produce(s.kafka_bootstrap_servers, [
        (s.topics.decisions, d2),
        (s.topics.signals, FeedbackGiven(decision_id=d2.decision_id, agent_id="a1",
                                         user_id="u1", kind="thumbs", value=-1.0,
                                         ts=datetime.now(UTC))),
    ])
    pol = wait_until(lambda: (p := _policy(redis_client, s, "a1")) and p["version"] >= 2 and p,
                     timeout=10)
    assert pol["buckets"]["*"]["values"] == {"x": -1.0, "y": 1.0}
    rewards = consume_all(s.kafka_bootstrap_servers, s.topics.rewards)
    assert sorted(r["reward"] for r in rewards) == [-1.0, 1.0]
    summary = orjson.loads(redis_client.hget(s.keys.summary("default", "a1"), "doc"))
    assert summary["interactions"] == 2
    # Every poll that read something timed its oldest message by the broker's timestamp.
    wait = _scrape(s.dataflow_metrics_port, "rewardflow_input_wait_seconds")
    assert wait["_count"] >= 2  # the two produce rounds were read by different polls
    assert 0 < wait["_sum"] < 60 * wait["_count"]
    # ... and counted each document set it wrote: a1's after each of its two rewards at least
    docs = _scrape(s.dataflow_metrics_port, "rewardflow_redis_documents")
    assert docs["_total"] >= 2


def _scrape(port: int, name: str) -> dict[str, float]:
    """The flow's unlabelled samples of metric ``name``, by suffix."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {sample.name[len(name):]: sample.value
            for fam in text_string_to_metric_families(text) if fam.name == name
            for sample in fam.samples if not sample.labels}


def test_rollback_request_is_published_by_the_learner_as_its_next_version(
        flow_settings, dataflow, redis_client):
    from schemas.events import PolicyRollbackRequested
    from schemas.policy import PolicyDocument

    s = flow_settings
    spec = AgentSpec(persona={"name": "A"}, actions=["x", "y"])
    produce(s.kafka_bootstrap_servers, [(s.topics.agents, AgentUpserted(agent_id="rb",
                                                                      spec=spec))])
    # One feedback per version: the learner publishes at most one version per batch, so
    # each step waits for its version before the next is produced (a slow start must not
    # fold all three into one batch).
    for step, (action, value) in enumerate((("y", 1.0), ("x", 1.0), ("y", -1.0)), start=1):
        d = _decision("rb", action)
        produce(s.kafka_bootstrap_servers, [
            (s.topics.decisions, d),
            (s.topics.signals, FeedbackGiven(decision_id=d.decision_id, agent_id="rb",
                                             user_id="u1", kind="thumbs", value=value))])
        wait_until(lambda n=step: (p := _policy(redis_client, s, "rb")) and p["version"] >= n,
                   30)
    v1 = PolicyDocument.model_validate_json(
        redis_client.hget(s.keys.policy_history("default", "rb"), "1"))
    assert v1.buckets["*"].values == {"y": 1.0}
    produce(s.kafka_bootstrap_servers, [(s.topics.agents, PolicyRollbackRequested(
        agent_id="rb", target_version=1, policy=v1))])
    pol = wait_until(lambda: (p := _policy(redis_client, s, "rb")) and p["version"] >= 4 and p,
                     timeout=15)
    assert pol["version"] == 4 and pol["parent_version"] == 3
    assert pol["explanation"] == "rolled back to v1."
    assert pol["buckets"]["*"]["values"] == {"y": 1.0}
