"""Generate docker/grafana/dashboards/rewardflow.json (the provisioned Grafana dashboard).

    python docker/grafana/make_dashboard.py          # rewrite the JSON file
    python docker/grafana/make_dashboard.py --check  # exit 1 if the file is out of date

Edit the panels here, not in the JSON; tests/ops checks that both agree and that every metric
the dashboard queries is one that rewardflow exports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from panels import DS, RI, TPL, Layout, quantiles, stat, timeseries

OUT = Path(__file__).resolve().parent / "dashboards" / "rewardflow.json"


def build() -> dict[str, Any]:
    L = Layout()

    L.row("Overview")
    L.add(
        stat(
            "Events in / s",
            "All input events the dataflow read, per second.",
            f"sum(rate(rewardflow_events_in_total[{RI}]))",
            "reqps",
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Decisions / s",
            "Decisions served by the gateway, per second.",
            f"sum(rate(rewardflow_gateway_decisions_total[{RI}]))",
            "reqps",
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Mean reward (1h)",
            "Mean reward over all templates in the last hour; rewards are in [-1, 1].",
            "sum(rate(rewardflow_reward_sum[1h])) / sum(rate(rewardflow_reward_count[1h]))",
            "none",
            3,
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Acceptance (1h)",
            "Share of rewards above 0 in the last hour.",
            '1 - sum(rate(rewardflow_reward_bucket{le=~"0|0\\\\.0"}[1h])) '
            "/ sum(rate(rewardflow_reward_count[1h]))",
            "percentunit",
            1,
        ),
        4,
        4,
    )
    L.add(
        stat(
            "DLQ / s",
            "Messages sent to the dead-letter topic, per second.",
            f"sum(rate(rewardflow_dlq_total[{RI}]))",
            "reqps",
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Consumer lag",
            "Messages the dataflow has yet to read, all topics.",
            "sum(rewardflow_consumer_lag)",
            "short",
        ),
        4,
        4,
    )

    L.row("Learning")
    L.add(
        timeseries(
            "Reward trend per template",
            "Mean reward per agent template over the rate window (rewards are in [-1, 1]).",
            (
                f"sum by (template) (rate(rewardflow_reward_sum{{{TPL}}}[{RI}])) / "
                f"sum by (template) (rate(rewardflow_reward_count{{{TPL}}}[{RI}]))",
                "{{template}}",
            ),
            unit="none",
            minv=-1,
            maxv=1,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Acceptance (share of positive rewards)",
            "Share of rewards above 0 per template, from the reward histogram's le=0 bucket.",
            (
                f"1 - sum by (template) "
                f'(rate(rewardflow_reward_bucket{{{TPL}, le=~"0|0\\\\.0"}}[{RI}]))'
                f" / sum by (template) (rate(rewardflow_reward_count{{{TPL}}}[{RI}]))",
                "{{template}}",
            ),
            unit="percentunit",
            minv=0,
            maxv=1,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Exploration rate",
            "Share of decisions that explored (uniform action), and the mean epsilon the gateway "
            "served and the learner published.",
            (
                f'sum(rate(rewardflow_gateway_decisions_total{{explored="true"}}[{RI}])) / '
                f"sum(rate(rewardflow_gateway_decisions_total[{RI}]))",
                "explored share",
            ),
            (
                f"sum(rate(rewardflow_gateway_epsilon_sum[{RI}])) / "
                f"sum(rate(rewardflow_gateway_epsilon_count[{RI}]))",
                "mean epsilon served",
            ),
            (
                f"sum(rate(rewardflow_policy_epsilon_sum[{RI}])) / "
                f"sum(rate(rewardflow_policy_epsilon_count[{RI}]))",
                "mean epsilon published",
            ),
            unit="percentunit",
            minv=0,
            maxv=1,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Policy changes",
            "New policy versions published, and updates clamped by the safety bounds.",
            ("sum(increase(rewardflow_policy_versions_total[$__interval]))", "versions"),
            ("sum(increase(rewardflow_policy_clamps_total[$__interval]))", "clamps"),
            bars=True,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Decisions by action",
            "Decisions served per action, explored or greedy.",
            (
                f"sum by (action, explored) (rate(rewardflow_gateway_decisions_total[{RI}]))",
                "{{action}} explored={{explored}}",
            ),
            unit="reqps",
            stack=True,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Rewards by how they closed",
            "Rewards per template and what closed them (explicit feedback, terminal signal, "
            "window timeout with the default reward).",
            (
                f"sum by (template, closed_by) (rate(rewardflow_rewards_total{{{TPL}}}[{RI}]))",
                "{{template}} {{closed_by}}",
            ),
            unit="reqps",
            stack=True,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Feedback and signals in (gateway)",
            "Explicit feedback and implicit signals accepted over HTTP, by kind.",
            (f"sum by (kind) (rate(rewardflow_gateway_feedback_total[{RI}]))", "feedback {{kind}}"),
            (f"sum by (kind) (rate(rewardflow_gateway_signals_total[{RI}]))", "signal {{kind}}"),
            unit="reqps",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Population priors",
            "Per template: archetypes and agents of the newest prior, refits, and live agents "
            "handed a newer prior (at most once a day of event time, to agents with enough "
            "rewards of their own).",
            ("sum by (template) (rewardflow_population_archetypes)", "{{template}} archetypes"),
            ("sum by (template) (rewardflow_population_agents)", "{{template}} agents"),
            ("sum by (template) (increase(rewardflow_population_fits_total[$__interval]))",
             "{{template}} fits"),
            ("sum by (template) (increase(rewardflow_population_handoffs_total[$__interval]))",
             "{{template}} agents handed a prior"),
        ),
        24,
        8,
    )

    L.row("Pipeline")
    L.add(
        timeseries(
            "Events in by topic and type",
            "Input events read by the dataflow.",
            (
                f"sum by (topic, type) (rate(rewardflow_events_in_total[{RI}]))",
                "{{topic}} {{type}}",
            ),
            unit="reqps",
            stack=True,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "DLQ by reason",
            "Messages sent to the dead-letter topic, by reason.",
            (f"sum by (reason) (rate(rewardflow_dlq_total[{RI}]))", "{{reason}}"),
            unit="reqps",
            stack=True,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Consumer lag",
            "Messages not yet read, per topic (the dataflow exports it; Kafka consumer groups do "
            "not see Bytewax, which keeps offsets in its recovery snapshots).",
            ("sum by (topic) (rewardflow_consumer_lag)", "{{topic}}"),
            ("max(rewardflow_watermark_lag_seconds)", "watermark lag (s)"),
            unit="short",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Input wait (produced to read by the flow)",
            "Age of the oldest message of each poll when the dataflow read it (its Kafka "
            "timestamp to now). Tens of ms while the flow keeps up; when it rises, the flow is "
            "short of CPU and every projection and reward is that much later.",
            *quantiles("rewardflow_input_wait_seconds", "", (0.5, 0.99)),
            unit="s",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Duplicates, late and unattributed signals",
            "Duplicates dropped by event_id, signals later than the allowed lateness, signals with "
            "no decision to attribute them to, and signals joined to a decision.",
            (f"sum(rate(rewardflow_duplicates_total[{RI}]))", "duplicates"),
            (f"sum(rate(rewardflow_late_signals_total[{RI}]))", "late signals"),
            (f"sum(rate(rewardflow_unattributed_signals_total[{RI}]))", "unattributed"),
            (f"sum(rate(rewardflow_joined_signals_total[{RI}]))", "joined"),
            unit="reqps",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Reward delay (decision to reward, event time)",
            "How long after a decision its reward closes.",
            *quantiles("rewardflow_reward_delay_seconds", "", (0.5, 0.9, 0.99)),
            unit="s",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Sink and learner latency",
            "p99 of one learner update, one Redis pipeline flush and one Kafka write.",
            *quantiles("rewardflow_learner_update_seconds", "", (0.99,)),
            *quantiles("rewardflow_redis_write_seconds", "", (0.99,)),
            *quantiles("rewardflow_kafka_write_seconds", "", (0.99,)),
            unit="s",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Redis documents against events",
            "Agent document sets written to Redis and events read. A busy agent writes at most "
            "one per RF_PROJECTION_WRITE_SECONDS (0.2 s): with many agents this rate, more than "
            "the events', sets the flow's CPU (docs/operations.md, 'How many flow processes').",
            (f"sum(rate(rewardflow_redis_documents_total[{RI}]))", "documents"),
            (f"sum(rate(rewardflow_events_in_total[{RI}]))", "events"),
            unit="reqps",
        ),
        12,
        8,
    )

    L.row("Gateway")
    lat = quantiles("rewardflow_gateway_request_duration_seconds", "route")
    L.add(
        timeseries(
            "Gateway latency p50 / p99 by route",
            "Request latency per route template.",
            *lat,
            unit="s",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Gateway requests by route and status",
            "Requests per second by route, method and status.",
            (
                f"sum by (route, method, status) (rate(rewardflow_gateway_requests_total[{RI}]))",
                "{{method}} {{route}} {{status}}",
            ),
            unit="reqps",
            stack=True,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Gateway produce errors",
            "Events the gateway failed to hand to Kafka, by topic.",
            (f"sum by (topic) (rate(rewardflow_gateway_produce_errors_total[{RI}]))", "{{topic}}"),
            unit="reqps",
        ),
        24,
        6,
    )

    return {
        "uid": "rewardflow",
        "title": "rewardflow",
        "description": "Rewards, learning, pipeline health and gateway latency of rewardflow.",
        "tags": ["rewardflow"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "utc",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                {
                    "datasource": DS,
                    "enable": True,
                    "iconColor": "orange",
                    "name": "Policy changes",
                    "expr": "sum(increase(rewardflow_policy_versions_total[1m])) > 0",
                    "step": "1m",
                    "titleFormat": "policy versions published",
                    "tagKeys": "",
                },
            ]
        },
        "templating": {
            "list": [
                {
                    "type": "query",
                    "name": "template",
                    "label": "Template",
                    "datasource": DS,
                    "query": {
                        "query": "label_values(rewardflow_reward_count, template)",
                        "refId": "template",
                    },
                    "definition": "label_values(rewardflow_reward_count, template)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1,
                    "hide": 0,
                    "options": [],
                },
            ]
        },
        "panels": L.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
