"""Each agent's Redis documents go out at most every ``RF_PROJECTION_WRITE_SECONDS``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from dataflows.agent_step import AgentLogic
from dataflows.flow import join_config
from schemas.events import DecisionMade
from schemas.settings import Settings


def _decision(i: int) -> tuple[str, DecisionMade, tuple[str, int, int, None], None]:
    ev = DecisionMade(decision_id=uuid.uuid4(), agent_id="a1", user_id="u", action="x",
                      propensity=0.5, explored=False, policy_version=0, bucket="*",
                      ts=datetime.fromtimestamp(1_000.0 + i, UTC))
    return ("default:a1", ev, ("t.decisions", 0, i, None), None)


@pytest.mark.parametrize(("every", "expected"), [(0.2, [True, True, True]),
                                                 (1.0, [True, False, True])])
def test_documents_coalesce_to_the_write_interval(every, expected):
    s = Settings(projection_write_seconds=every, idle_watermark_seconds=None)
    cfg = join_config(s)
    assert cfg.write_every == every
    agent = AgentLogic(cfg, s.topics, lambda: 0.0, None)
    wrote = []
    for i, now in enumerate((5_000.0, 5_000.5, 5_001.2)):
        items = agent.on_batch([_decision(i)], now, float("-inf"), now)
        wrote.append(any(isinstance(it, dict) for it in items))
    assert wrote == expected
    # what was held back is written by the trailing wake-up, one interval after the last write
    agent.on_batch([_decision(3)], 5_001.3, float("-inf"), 5_001.3)
    assert agent.notify_at(5_001.3) == pytest.approx(5_001.2 + every)
    items = agent.on_notify(5_001.2 + every, float("-inf"), 5_001.3)
    docs = [it for it in items if isinstance(it, dict)]
    assert len(docs) == 1 and docs[0]["summary"]["counts"]["in"] == 4


def test_the_interval_is_validated():
    with pytest.raises(ValueError, match="projection_write_seconds"):
        Settings(projection_write_seconds=0)
