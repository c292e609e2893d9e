"""Prometheus config, alert rules (syntax and unit tests) and the check_metrics helper."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.ops.metrics_catalog import ALL_METRICS, unknown_names
from tests.ops.promtool import (
    PromtoolError,
    check_config,
    check_metrics,
    check_rules,
    run_promtool,
    run_rule_tests,
)

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "docker" / "prometheus"
ALERTS = PROM / "alerts.yml"
CONFIG = PROM / "prometheus.yml"

REQUIRED_ALERTS = {
    "RewardflowDLQRising",
    "RewardflowMisroutedEvents",
    "RewardflowConsumerLagGrowing",
    "RewardflowRewardDroppedAfterPolicyChange",
    "RewardflowGatewayLatencyHigh",
    "RewardflowGatewayNotReady",
}


def test_promtool_is_installed() -> None:
    proc = run_promtool("--version")
    assert proc.returncode == 0, proc.stderr
    assert "promtool" in proc.stdout + proc.stderr


def test_alert_rules_pass_promtool() -> None:
    out = check_rules(ALERTS)
    assert "SUCCESS" in out


def test_prometheus_config_passes_promtool_with_rules_resolved() -> None:
    out = check_config(CONFIG)
    assert "SUCCESS: 1 rule files found" in out
    assert f"Checking {CONFIG.parent}/alerts.yml" in out or "alerts.yml" in out


def test_alert_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in run_rule_tests(PROM / "tests" / "alerts_test.yml")


def test_every_required_alert_exists_with_severity_and_summary() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert REQUIRED_ALERTS <= names, REQUIRED_ALERTS - names
    for r in rules:
        assert r["labels"]["severity"] in {"warning", "critical"}, r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        assert "for" in r, f"{r['alert']} fires on one bad scrape"


def test_alert_rules_use_only_known_metrics() -> None:
    text = ALERTS.read_text()
    assert not unknown_names(text), unknown_names(text)
    used = set(re.findall(r"\brewardflow_[a-z0-9_]+", text))
    assert used, "alert rules reference no rewardflow metric"


def test_scrape_targets_match_the_compose_services() -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    targets = {
        sc["job_name"]: [t for s in sc["static_configs"] for t in s["targets"]]
        for sc in doc["scrape_configs"]
    }
    assert targets["gateway"] == ["gateway:8000"]
    assert targets["dataflow"] == ["dataflow:9108"]
    assert targets["population"] == ["population:9118"]
    assert doc["rule_files"] == ["alerts.yml"]


# --- check_metrics helper -------------------------------------------------------------------


def test_check_metrics_accepts_prometheus_client_output() -> None:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    reg = CollectorRegistry()
    Counter("rewardflow_events_in", "Input events.", ["topic", "type"], registry=reg).labels(
        "rewardflow.signals", "SignalObserved"
    ).inc(3)
    Histogram(
        "rewardflow_reward", "Rewards.", ["template"], registry=reg, buckets=(-1, -0.5, 0, 0.5, 1)
    ).labels("coach").observe(0.4)
    Gauge("rewardflow_consumer_lag", "Lag.", ["topic", "partition"], registry=reg).labels(
        "rewardflow.signals", "0"
    ).set(7)
    check_metrics(generate_latest(reg).decode())


def test_check_metrics_raises_with_promtool_output_on_parse_errors() -> None:
    with pytest.raises(PromtoolError, match=r"(?s)exit 1.*parsing error"):
        check_metrics('rewardflow_broken{topic="x" 1\n')


def test_check_metrics_raises_on_lint_problems_unless_disabled() -> None:
    text = "# TYPE rewardflowEventsIn counter\nrewardflowEventsIn 1\n"
    with pytest.raises(PromtoolError, match="snake_case"):
        check_metrics(text)
    check_metrics(text, lint=False)


def test_check_metrics_rejects_empty_text() -> None:
    with pytest.raises(PromtoolError, match="empty"):
        check_metrics("  \n")


def test_catalog_has_the_agreed_metric_count() -> None:
    assert len(ALL_METRICS) == 37


@pytest.mark.parametrize(
    ("module", "factory", "catalog"),
    [
        ("gateway.metrics", "Metrics", "GATEWAY_METRICS"),
        ("dataflows.metrics", "flow_metrics", "DATAFLOW_METRICS"),
        ("dataflows.population_metrics", "PopulationMetrics", "POPULATION_METRICS"),
    ],
)
def test_processes_export_every_catalogued_metric(module: str, factory: str, catalog: str) -> None:
    """The names the dashboard and alerts rely on are the ones the code registers."""
    import importlib

    from prometheus_client import generate_latest

    from tests.ops import metrics_catalog

    registry = getattr(importlib.import_module(module), factory)().registry
    text = generate_latest(registry).decode()
    expected = getattr(metrics_catalog, catalog)
    assert not metrics_catalog.missing_metrics(text, expected)
    check_metrics(text)
