"""The join against the independent computation, in process, over several seeds.

``test_exactness`` makes this comparison through broker -> flow -> Redis for one 100k-event
stream. This test drives each agent's :class:`~dataflows.agent_state.AgentState` directly
(no services, no Bytewax), fed by the flow's own input step: validated events with their
topic, partition, offset and the partition's newest earlier event time. Each seed's stream
has duplicates, two-hour-late signals, jitter, garbage and signals for unknown decisions. A
change to the join, or a second implementation of it, is checked against the reference in
seconds. The same comparison then runs through the whole flow (input step, agent shards,
documents) under Bytewax's testing runtime, with one worker and with two, so a change to
the step's glue is checked too.
"""

from __future__ import annotations

import pickle
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from dataflows.agent_state import AgentState
from dataflows.flow import build_flow
from dataflows.join_types import JoinConfig
from dataflows.reward_model import load_reward_model
from dataflows.source import ShardCache, parse_and_clock
from schemas.settings import Settings
from schemas.topics import Topics
from tests.dataflows.mixed_stream import mixed_stream
from tests.dataflows.reference import reference
from tests.dataflows.streams import keyed_messages, to_messages

WINDOW, LATENESS, HISTORY, HALF_LIFE = 600.0, 2.0, 20, 7 * 86400.0
AGENTS = 12


class Join:
    """Every agent's state, fed by the flow's own input step (:func:`parse_and_clock`:
    validation, dead letters, the partition clocks of each event's meta)."""

    def __init__(self) -> None:
        self.cfg = JoinConfig(load_reward_model(), window=WINDOW, lateness=LATENESS,
                              idle=None, history_length=HISTORY, half_life=HALF_LIFE)
        self.states: dict[str, AgentState] = {}
        self.rewards: dict[str, tuple[float, str]] = {}
        self.reward_events = 0
        self.garbage = 0
        self.offsets: dict[tuple[str, int], int] = {}
        self.clocks: dict[Any, float] = {}
        self.shards = ShardCache(64)

    def feed(self, stream: list[tuple[str, bytes]]) -> None:
        msgs = keyed_messages(stream, self.offsets)
        for _, item in parse_and_clock(msgs, self.clocks, "ref.dlq", self.shards):
            if item.__class__ is KafkaSinkMessage:
                self.garbage += 1
                continue
            _, ev, meta, raw = item
            st = self.states.get(ev.agent_id)
            if st is None:
                st = self.states[ev.agent_id] = AgentState(ev.tenant, ev.agent_id, self.cfg)
            out = st.ingest(ev, meta, now=0.0, raw=raw)
            self.reward_events += len(out.rewards)
            for r in out.rewards:
                self.rewards[r["decision_id"]] = (r["reward"], r["closed_by"])

    def counts(self) -> dict[str, int]:
        keys = ("in", "decisions", "joined", "dlq", "duplicates", "late", "agents")
        c = {k: sum(st.counts[k] for st in self.states.values()) for k in keys}
        c["buffered"] = sum(len(st.buffer) for st in self.states.values())
        return c


def _projections(st: AgentState) -> dict[str, Any]:
    p = st.proj
    return {"interactions": p.interactions, "reward_sum": p.reward_sum,
            "windows": p.windows, "relationships": p.relationships,
            "recent": [e["decision_id"] for e in p.recent], "per_action": p.per_action,
            "per_bucket": p.per_bucket}


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_join_equals_independent_computation_and_a_replay_changes_nothing(seed: int) -> None:
    topics = Topics("ref")
    stream = mixed_stream(topics, n_decisions=4_000, agents=AGENTS, users=6, seed=seed,
                          window=WINDOW)
    ref = reference(stream, load_reward_model(), WINDOW, LATENESS, HISTORY, HALF_LIFE)
    join = Join()
    join.feed(stream)

    # Counted in = applied + DLQ + duplicates + late + still buffered, nothing lost.
    c, rc = join.counts(), ref["counts"]
    assert c["in"] + join.garbage == len(stream)
    assert c["in"] == c["decisions"] + c["joined"] + c["dlq"] + c["duplicates"] + c["late"] \
        + c["agents"] + c["buffered"]
    assert rc["duplicates"] > 0 and rc["late"] > 0 and join.garbage > 0  # the stream has them
    assert (c["duplicates"], c["late"]) == (rc["duplicates"], rc["late"])
    assert c["dlq"] + join.garbage == rc["dlq"]
    assert c["buffered"] == 2 * AGENTS  # each agent's flush decision and signal
    assert c["decisions"] == rc["decisions"] - AGENTS
    assert c["joined"] == rc["joined"] - AGENTS

    # Rewards: the same decisions, values and closing reasons, each emitted once.
    assert join.reward_events == len(join.rewards) == len(ref["rewards"])
    assert set(join.rewards) == set(ref["rewards"])
    for did, (val, by) in ref["rewards"].items():
        assert join.rewards[did][1] == by
        assert join.rewards[did][0] == pytest.approx(val, abs=1e-9)

    # Every projection equals the independent computation.
    assert set(join.states) == set(ref["agents"])
    for agent, st in join.states.items():
        got, want = _projections(st), ref["agents"][agent]
        assert got["interactions"] == want["interactions"]
        assert got["reward_sum"] / got["interactions"] == pytest.approx(want["mean_reward"])
        for w, rows in want["windows"].items():
            assert set(got["windows"][w]) == set(rows), (agent, w)
            for start, row in rows.items():
                g = got["windows"][w][start]
                assert g[:3] == row[:3] and g[4] == row[4]
                assert g[3] == pytest.approx(row[3], abs=1e-6)  # rewards are rounded to 1e-9
        assert set(got["relationships"]) == set(want["relationships"])
        for u, (n, _, strength, _) in want["relationships"].items():
            g = got["relationships"][u]
            assert int(g[0]) == n and g[2] == pytest.approx(strength, abs=1e-6), (agent, u)
        assert got["recent"] == want["recent"]
        assert {a: list(v) for a, v in got["per_action"].items()} == want["per_action"]
        assert {b: {a: list(v) for a, v in acts.items()}
                for b, acts in got["per_bucket"].items()} == want["per_bucket"]

    # The same events again, with new offsets: duplicates (or late) only, nothing changes.
    before = {a: pickle.dumps(_projections(st)) for a, st in join.states.items()}
    rewards_before = dict(join.rewards)
    events_before = join.reward_events
    join.feed(stream)
    again = join.counts()
    assert join.reward_events == events_before and join.rewards == rewards_before
    assert {a: pickle.dumps(_projections(st)) for a, st in join.states.items()} == before
    assert again["decisions"] == c["decisions"] and again["joined"] == c["joined"]
    assert again["duplicates"] + again["late"] + again["dlq"] \
        == c["duplicates"] + c["late"] + c["dlq"] + c["in"]


def _flow_documents(stream: list[tuple[str, bytes]], workers: int, core: str = "python"
                    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Run the whole flow in process; its reward events and each agent's final documents
    (the last snapshot, with every user's newest relationship)."""
    settings = Settings(topic_prefix="ref", reward_window_seconds=WINDOW,
                        allowed_lateness_seconds=LATENESS, idle_watermark_seconds=None,
                        history_length=HISTORY, relationship_half_life_seconds=HALF_LIFE,
                        agent_core=core)
    kafka_out: list[Any] = []
    redis_out: list[Any] = []
    flow = build_flow(TestingSource(to_messages(list(stream))), TestingSink(kafka_out),
                      TestingSink(redis_out), settings)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    rewards = [orjson.loads(m.value) for m in kafka_out if m.topic == "ref.rewards"]
    docs: dict[str, dict[str, Any]] = {}
    for snap in sorted(redis_out, key=lambda d: d["seq"]):  # per agent, in its own order
        doc = docs.setdefault(snap["agent_id"], {"rel": {}})
        doc["rel"].update(snap["relationships"])
        doc["summary"] = snap["summary"]
        if snap["windows"] is not None:
            doc["windows"], doc["history"] = snap["windows"], orjson.loads(snap["history"])
    return rewards, docs


@pytest.mark.parametrize(("workers", "core"), [(1, "python"), (2, "python"), (1, "native"),
                                               (2, "native")])
def test_flow_equals_independent_computation(workers: int, core: str) -> None:
    stream = mixed_stream(Topics("ref"), n_decisions=3_000, agents=AGENTS, users=6, seed=21,
                          window=WINDOW)
    ref = reference(stream, load_reward_model(), WINDOW, LATENESS, HISTORY, HALF_LIFE)
    rewards, docs = _flow_documents(stream, workers, core)

    # At the end of input the flow drains: each agent's flush decision and signal apply too.
    rc = ref["counts"]
    keys = ("in", "decisions", "joined", "dlq", "duplicates", "late", "agents")
    c = {k: sum(d["summary"]["counts"][k] for d in docs.values()) for k in keys}
    assert sum(d["summary"]["buffered"] for d in docs.values()) == 0
    garbage = rc["dlq"] - c["dlq"]
    assert garbage > 0 and c["in"] + garbage == len(stream)
    assert (c["decisions"], c["joined"], c["duplicates"], c["late"]) \
        == (rc["decisions"], rc["joined"], rc["duplicates"], rc["late"])

    assert len(rewards) == len(ref["rewards"])  # each once
    assert {r["decision_id"]: r["closed_by"] for r in rewards} \
        == {did: by for did, (_, by) in ref["rewards"].items()}
    for r in rewards:
        assert r["reward"] == pytest.approx(ref["rewards"][r["decision_id"]][0], abs=1e-9)

    assert set(docs) == set(ref["agents"])
    for agent, doc in docs.items():
        want = ref["agents"][agent]
        assert doc["summary"]["interactions"] == want["interactions"]
        assert doc["summary"]["mean_reward"] == pytest.approx(want["mean_reward"], abs=1e-6)
        for w, rows in want["windows"].items():
            got = {int(k): v for k, v in doc["windows"][w]["buckets"].items()}
            assert set(got) == set(rows), (agent, w)
            for start, row in rows.items():
                assert got[start][:3] == row[:3] and got[start][4] == row[4]
                assert got[start][3] == pytest.approx(row[3], abs=1e-6)
        assert set(doc["rel"]) == set(want["relationships"])
        for u, (n, _, strength, _) in want["relationships"].items():
            assert doc["rel"][u]["interactions"] == n
            assert doc["rel"][u]["strength"] == pytest.approx(strength, abs=1e-6)
        hist = doc["history"]
        assert [e["decision_id"] for e in hist["recent"]] == want["recent"]
        assert {a: [v["count"], v["success"]] for a, v in hist["per_action"].items()} \
            == want["per_action"]
        assert {b: {a: [v["count"], v["success"]] for a, v in acts.items()}
                for b, acts in hist["per_bucket"].items()} == want["per_bucket"]
