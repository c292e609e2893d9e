"""bench.flow_profile's live mode: paced Kafka-like partitions through the real flow."""

from __future__ import annotations

import pytest

from bench import flow_profile
from dataflows.source import TickConfig


def test_paced_source_looks_like_kafka_partitions_and_keeps_the_rate() -> None:
    src = flow_profile.PacedSource(rate=2000, seconds=1.0, agents=20, poll=0.05, batch=5000)
    parts = src.list_parts()
    # named like the Kafka source's parts, so the input sends watermark ticks for them
    assert TickConfig(0.1, None, ["bench.agents"]).data_partitions(parts) == frozenset(
        {("bench.decisions", 0), ("bench.decisions", 1), ("bench.signals", 0),
         ("bench.signals", 1)})
    assert 1800 <= src.n <= 2200
    offsets = [e[0] for evs in src.parts.values() for e in evs]
    assert min(offsets) >= 0.0 and max(offsets) <= 1.0


def test_live_mode_completes_and_reports_cpu_per_event(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert flow_profile.main(["--live-rate", "2000", "--seconds", "1", "--agents", "20"]) == 0
    out = capsys.readouterr().out
    assert " events in " in out and "us/event" in out


def test_without_takes_parts_out_of_the_agent_step_for_the_run(
        capsys: pytest.CaptureFixture[str]) -> None:
    from dataflows import agent_step
    from dataflows.agent_step import AgentLogic
    from dataflows.learner.base import PolicyLearner

    update = PolicyLearner.update
    for parts in (["agent"], ["output", "learner", "projections"]):
        argv = ["--events", "2000", "--agents", "20"]
        for part in parts:
            argv += ["--without", part]
        assert flow_profile.main(argv) == 0
        out = capsys.readouterr().out
        assert out.startswith("2000 events in ") and f"(without: {', '.join(parts)})" in out
    # the real step is back after the run
    assert agent_step.AgentLogic is AgentLogic and PolicyLearner.update is update
    with pytest.raises(SystemExit):
        flow_profile.main(["--without", "parsing"])
