"""The population process's metrics: recorded by the flow under ``run_main``, served by
``population_run.serve_metrics``, accepted by ``promtool check metrics``."""

from __future__ import annotations

import httpx
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import generate_latest

from dataflows.population_flow import PopulationLogic, build_flow
from dataflows.population_metrics import PopulationMetrics, population_metrics
from schemas.priors import Archetype, PriorDocument
from schemas.settings import Settings
from stack.ports import free_port
from tests.dataflows.test_population_flow import S, _agent_msg, _msg, _policy_msg
from tests.ops import metrics_catalog
from tests.ops.promtool import check_metrics

COACH = {"tenant": "default", "template": "coach"}


def _run(msgs: list[KafkaSourceMessage], settings: Settings = S,
         metrics: PopulationMetrics | None = None) -> list[PriorDocument]:
    kafka: list[KafkaSinkMessage] = []
    redis: list[PriorDocument] = []
    run_main(build_flow(TestingSource(msgs), TestingSink(kafka), TestingSink(redis), settings,
                        metrics=metrics))
    return redis


def _two_tastes(n: int) -> list[KafkaSourceMessage]:
    msgs: list[KafkaSourceMessage] = []
    for i in range(n):
        msgs += [_agent_msg(f"ag{i}", i), _policy_msg(f"ag{i}", "a" if i % 2 else "b", 100 + i)]
    return msgs


def test_a_fit_is_counted_and_the_gauges_show_the_published_prior() -> None:
    m = PopulationMetrics()
    msgs = _two_tastes(12)
    msgs += [_msg(None, b"not json", S.topics.policies, 500),
             _msg(None, b'{"type": "RewardComputed"}', S.topics.policies, 501),
             _msg(None, b"{", S.topics.agents, 502)]  # the main flow's to dead-letter
    msgs += [_agent_msg("solo", 600, template=None), _policy_msg("solo", "c", 601)]
    (doc,) = _run(msgs, metrics=m)
    value = m.registry.get_sample_value
    assert value("rewardflow_population_fits_total", COACH) == 1
    assert value("rewardflow_population_fit_seconds_count") == 1
    assert (value("rewardflow_population_fit_seconds_sum") or 0) > 0
    assert value("rewardflow_population_agents", COACH) == doc.agents == 12
    assert value("rewardflow_population_archetypes", COACH) == len(doc.archetypes) == 2
    assert value("rewardflow_population_prior_version", COACH) == doc.version == 12
    assert value("rewardflow_population_policies_total") == 12  # "solo" has no template
    assert value("rewardflow_population_dlq_total", {"reason": "invalid_json"}) == 1
    assert value("rewardflow_population_dlq_total", {"reason": "unexpected_type"}) == 1
    text = generate_latest(m.registry).decode()
    assert not metrics_catalog.missing_metrics(text, metrics_catalog.POPULATION_METRICS)
    check_metrics(text)  # promtool, lint included


def test_the_gauges_follow_the_newest_prior_of_each_template() -> None:
    m = PopulationMetrics()
    s = S.model_copy(update={"population_refit_every": 6})
    msgs = [*_two_tastes(6), _agent_msg("ag0", 50, template="other")]
    priors = _run(msgs, s, m)
    assert [(d.version, d.agents) for d in priors] == [(6, 6), (7, 5)]
    value = m.registry.get_sample_value
    assert value("rewardflow_population_fits_total", COACH) == 2
    assert value("rewardflow_population_agents", COACH) == 5
    assert value("rewardflow_population_prior_version", COACH) == 7
    # ag0 moved to "other" with no policy since: no population there, no series
    other = {"tenant": "default", "template": "other"}
    assert value("rewardflow_population_fits_total", other) is None
    assert value("rewardflow_population_agents", other) is None


def test_a_resumed_population_shows_its_newest_prior_again() -> None:
    m = PopulationMetrics()
    docs = {v: PriorDocument(template="coach", version=v, agents=v,
                             archetypes=[Archetype(name="x", size=v)] * (v - 2))
            for v in (3, 4)}
    PopulationLogic(S, lambda: 0.0, (None, docs, None, None), m)
    value = m.registry.get_sample_value
    assert value("rewardflow_population_prior_version", COACH) == 4
    assert value("rewardflow_population_archetypes", COACH) == 2
    assert value("rewardflow_population_fits_total", COACH) is None  # no fit happened


def test_the_flow_records_into_the_process_metrics_by_default() -> None:
    m = population_metrics()
    before = m.registry.get_sample_value("rewardflow_population_fits_total", COACH) or 0
    _run(_two_tastes(12))
    assert m.registry.get_sample_value("rewardflow_population_fits_total", COACH) == before + 1


def test_serve_metrics_serves_the_process_registry_unless_the_port_is_0() -> None:
    from dataflows.population_run import serve_metrics

    assert serve_metrics(S.model_copy(update={"population_metrics_port": 0})) is None
    port = free_port()
    server = serve_metrics(S.model_copy(update={"population_metrics_port": port}))
    assert server is not None
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "# TYPE rewardflow_population_fits_total counter" in text
        assert serve_metrics(S.model_copy(update={"population_metrics_port": port})) is None
    finally:
        server.shutdown()
        server.server_close()
