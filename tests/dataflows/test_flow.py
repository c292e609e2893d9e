"""The dataflow under Bytewax's testing runtime: one worker and a 2-worker cluster."""

from __future__ import annotations

import orjson
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from dataflows.flow import build_flow
from schemas.events import parse_event
from schemas.settings import Settings
from tests.dataflows.streams import simple_stream, to_messages


def _run(msgs, workers: int = 1):
    settings = Settings(topic_prefix="t", reward_window_seconds=60, idle_watermark_seconds=None)
    kafka_out, redis_out = [], []
    flow = build_flow(TestingSource(msgs), TestingSink(kafka_out), TestingSink(redis_out),
                      settings)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return kafka_out, redis_out


def _final(redis_out):
    last = {}
    for snap in redis_out:
        if snap["agent"] not in last or snap["seq"] > last[snap["agent"]]["seq"]:
            last[snap["agent"]] = snap
    return last


def test_garbage_goes_to_dlq_and_flow_carries_on():
    msgs = to_messages([("t.signals", b"{not json"), ("t.signals", b'{"type": "Nope"}'),
                        *simple_stream(agents=1, decisions=4)])
    kafka_out, redis_out = _run(msgs)
    dlq = [orjson.loads(m.value) for m in kafka_out if m.topic == "t.dlq"]
    assert [d["offset"] for d in dlq[:2]] == [0, 1]
    assert all(d["topic"] == "t.signals" and d["reason"] for d in dlq[:2])
    rewards = [m for m in kafka_out if m.topic == "t.rewards"]
    # The last decision has only an implicit signal and its window has not passed yet.
    assert len(rewards) == 3
    assert _final(redis_out)["default:a0"]["summary"]["open_decisions"] == 1


def test_rewards_policies_and_projections():
    kafka_out, redis_out = _run(to_messages(simple_stream(agents=2, decisions=10)))
    # Derived events are built as plain dicts on the hot path: they must be valid events.
    parsed = [parse_event(m.value) for m in kafka_out]
    assert {type(e).__name__ for e in parsed} == {"RewardComputed", "PolicyUpdated"}
    rewards = [orjson.loads(m.value) for m in kafka_out if m.topic == "t.rewards"]
    assert len(rewards) == 18  # each agent's last (implicit-only) decision is still open
    closed = {r["closed_by"] for r in rewards}
    assert closed == {"feedback", "timeout"}
    # Implicit sentiment 0.5 weighted 0.5 * 0.6 -> 0.15 on the timed-out decisions.
    assert {round(r["reward"], 6) for r in rewards if r["closed_by"] == "timeout"} == {0.15}
    final = _final(redis_out)
    assert set(final) == {"default:a0", "default:a1"}
    snap = final["default:a0"]
    assert snap["summary"]["interactions"] == 9
    assert snap["summary"]["counts"]["duplicates"] == 0
    assert snap["summary"]["policy_version"] >= 1
    assert orjson.loads(snap["policy"])["version"] == snap["summary"]["policy_version"]


def test_one_and_two_workers_agree():
    msgs = to_messages(simple_stream(agents=4, decisions=15, seed=3))
    k1, r1 = _run(msgs, workers=1)
    k2, r2 = _run(msgs, workers=2)
    def rewards(k):
        return sorted(m.value for m in k if m.topic in ("t.rewards", "t.policies"))
    assert rewards(k1) == rewards(k2)
    f1, f2 = _final(r1), _final(r2)
    assert {a: (s["summary"], s["windows"], s["history"]) for a, s in f1.items()} == \
           {a: (s["summary"], s["windows"], s["history"]) for a, s in f2.items()}
