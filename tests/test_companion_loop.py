"""Trait tuning through the running stack: simulator.companion_demo against gateway + flow."""

from __future__ import annotations

import pytest

from simulator import companion_demo
from stack.ports import free_port
from tests.running_stack import running_stack

pytestmark = pytest.mark.integration


@pytest.fixture()
def stack(settings, tmp_path):
    s = settings.model_copy(update={"gateway_port": free_port(),
                                    "dataflow_metrics_port": free_port(),
                                    "idle_watermark_seconds": 0.2,
                                    "allowed_lateness_seconds": 0.1})
    with running_stack(s, tmp_path) as client:
        yield client


def test_companion_people_over_http_move_traits_inside_their_bounds(stack, tmp_path):
    # 4 people x 800 messages: every one of 5 runs moved 7-16 traits (3 x 300: 2 of 5 none)
    res = companion_demo.run(stack, people=4, interactions=800, seed=0, block=100,
                             run_id="t")
    assert res["settled"], "every message's reward reached the policy"
    assert res["violations"] == 0
    rows = res["people"]
    assert [r["policy_version"] for r in rows] == [800] * 4  # one version per reward
    lo, hi = companion_demo.BOUNDS
    moved = [t for r in rows for t, v in r["traits"].items() if v != 0.5]
    assert moved, "800 messages each moved no trait of anyone"
    for r in rows:
        assert all(lo <= v <= hi for v in r["traits"].values())
        assert len(r["curve"]) == 1 + 800 // 100 + 1
    companion_demo.plot(rows, 100, 800, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10_000
