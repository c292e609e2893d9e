"""bench.capacity's report: which rate counts as met, the capacity figure, table and plot."""

from __future__ import annotations

from pathlib import Path

import bench.capacity as capacity


def _pt(rate: float, p99: float | None, *, consumed: bool = True, missing: int = 0
        ) -> dict[str, object]:
    return {"rate": rate, "achieved_rate": int(rate), "p50_s": 0.4, "p99_s": p99,
            "max_s": p99, "probes": 899, "probes_missing": missing,
            "input_wait_p99_s": 0.25, "epoch_ends_in_window": 1, "consumed_all": consumed,
            "flow_cores": 1.1, "machine_cores": 1.6, "end_to_end_per_s": 30_000}


def test_capacity_needs_every_lower_rate_and_every_repeat() -> None:
    pts = [_pt(10e3, 0.7), _pt(15e3, 0.8), _pt(15e3, 1.2), _pt(20e3, 0.9)]
    assert capacity.capacity(pts, 1.0) == 10e3  # 15k/s failed one of its two runs
    assert capacity.capacity(pts, 1.5) == 20e3
    # a run that did not drain, or lost a probe, is not met whatever its p99
    assert capacity.capacity([_pt(10e3, 0.5, consumed=False)], 1.0) is None
    assert capacity.capacity([_pt(10e3, 0.5, missing=1)], 1.0) is None
    assert capacity.capacity([_pt(10e3, None)], 1.0) is None


def test_point_reads_a_pipeline_result() -> None:
    res = {"end_to_end": {"events_per_s": 31_000},
           "freshness": {"target_rate": 15_000.0, "achieved_rate": 15_004, "p50_s": 0.47,
                         "p99_s": 0.91, "max_s": 1.4, "probes": 899, "probes_missing": 0,
                         "input_wait_p99_s": 0.25, "epoch_ends_in_window": 1,
                         "consumed_all": True,
                         "cpu_cores": {"flow": 1.29, "whole machine": 1.8}}}
    pt = capacity.point(res)
    assert (pt["rate"], pt["p99_s"], pt["flow_cores"], pt["machine_cores"]) == (
        15_000.0, 0.91, 1.29, 1.8)
    assert capacity.met(pt, 1.0)
    failed = capacity.point({"freshness": {"target_rate": 20_000.0}})  # the run raised
    assert failed["rate"] == 20_000.0
    assert not capacity.met(failed, 1.0)


def test_table_and_plot(tmp_path: Path) -> None:
    pts = [_pt(10e3, 0.7), _pt(20e3, 1.9), capacity.point({"freshness": {"target_rate": 25e3}})]
    text = capacity.table(pts, 1.0, "procs=2")
    assert "highest rate with p99 freshness < 1 s (and every lower rate): 10,000 events/s" in text
    rows = [r for r in text.splitlines() if r.strip().startswith(("10000", "20000", "25000"))]
    assert [r.split()[-1] for r in rows] == ["yes", "NO", "NO"]
    png = capacity.plot(pts, 1.0, "procs=2", tmp_path / "out" / "capacity.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_step_down_halves_until_a_rate_meets_the_target() -> None:
    pts = [_pt(10e3, 4.0), _pt(20e3, 9.0)]
    assert capacity.step_down(pts, 1.0, left=3) == 5e3
    pts.append(_pt(5e3, 1.4))
    assert capacity.step_down(pts, 1.0, left=2) == 2.5e3
    pts.append(_pt(2.5e3, 0.6))
    assert capacity.step_down(pts, 1.0, left=1) is None  # 2.5k/s met: the sweep is done
    assert capacity.capacity(pts, 1.0) == 2.5e3
    assert capacity.step_down([_pt(10e3, 4.0)], 1.0, left=0) is None  # no runs left
    assert capacity.step_down([_pt(900.0, 4.0)], 1.0, left=3) is None  # 450/s: below 500
