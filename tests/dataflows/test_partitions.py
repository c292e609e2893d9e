"""Co-partitioned flow processes (``dataflows/partitions.py``): the partition share, the
producers' partitioners as librdkafka computes them, and two processes giving exactly the
projections of one on the real broker and Redis."""

from __future__ import annotations

import uuid

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from dataflows.partitions import Routing, Share, check_store_layout, partition_for, store_dir
from schemas.events import FeedbackGiven, dump_event
from stack.broker import create_topics
from stack.ports import free_port, wait_for_port
from stack.processes import start_dataflow, stop
from tests.dataflows.kafka_io import consume_all, produce
from tests.dataflows.mixed_stream import mixed_stream
from tests.dataflows.projection_io import GARBAGE_PREFIX, wait_consumed


def test_shares_of_several_processes_cover_every_partition_once():
    for n in (1, 2, 3, 5):
        owners = [[i for i in range(n) if Share(i, n).owns(p)] for p in range(12)]
        assert all(len(o) == 1 for o in owners)
    with pytest.raises(ValueError, match="outside 0..1"):
        Share(2, 2)


def test_a_layout_the_processes_cannot_serve_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="same number of partitions; found a: 2, b: 3"):
        Share(1, 2).check({"a": 2, "b": 3})
    with pytest.raises(ValueError, match="3 flow processes but the input topics have 2"):
        Share(0, 3).check({"a": 2, "b": 2})
    Share(0, 2).check({"a": 4, "b": 4})
    Share().check({"a": 2, "b": 3})  # one process reads everything: any layout will do


def test_a_store_of_another_process_count_is_refused(tmp_path):
    single = tmp_path / "one"
    single.mkdir()
    (single / "part-0.sqlite3").write_bytes(b"")
    check_store_layout(single, 1)
    with pytest.raises(ValueError, match="written by 1 flow processes, not 2"):
        check_store_layout(single, 2)
    two = tmp_path / "two"
    store_dir(two, Share(1, 2)).mkdir(parents=True)
    check_store_layout(two, 2)
    with pytest.raises(ValueError, match="written by 2 flow processes, not 3"):
        check_store_layout(two, 3)
    check_store_layout(tmp_path / "new", 4)


@pytest.mark.integration
@pytest.mark.parametrize("partitioner", ["consistent_random", "murmur2_random"])
def test_partition_for_is_where_librdkafka_sends_each_key(broker, partitioner):
    topic = f"keys-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=5)
    keys = [f"agent-{i}".encode() for i in range(200)] + [b"ag7", "ünï".encode()]
    p = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": partitioner})
    for k in keys:
        p.produce(topic, key=k, value=k)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "keys",
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, i, 0) for i in range(5)])
    seen: dict[bytes, int] = {}
    eof: set[int] = set()
    while len(eof) < 5:
        for m in c.consume(500, 1.0):
            if m.error():
                eof.add(m.partition())
            else:
                seen[m.key()] = m.partition()
    c.close()
    assert len(seen) == len(keys)
    assert {k: partition_for(k, 5, partitioner) for k in keys} == seen
    assert len(set(seen.values())) == 5  # the keys spread over every partition


def _flow_settings(settings, tag, tmp_path, processes):
    base = settings.model_copy(update={
        "topic_prefix": f"{settings.topic_prefix}{tag}",
        "key_prefix": f"{settings.key_prefix}{tag}",
        "recovery_dir": str(tmp_path / f"rec{tag}"), "dataflow_metrics_port": free_port(),
        "reward_window_seconds": 600.0, "allowed_lateness_seconds": 2.0,
        "idle_watermark_seconds": 86400.0, "snapshot_seconds": 1,
        "dataflow_batch_size": 200, "dataflow_processes": processes})
    create_topics(base.kafka_bootstrap_servers, base.topics.all, 2)
    return base


@pytest.mark.integration
def test_two_co_partitioned_processes_give_the_projections_of_one_and_dlq_a_misrouted_event(
        settings, redis_client, tmp_path):
    runs = []
    for processes in (1, 2):
        s = _flow_settings(settings, f"p{processes}", tmp_path, processes)
        stream = mixed_stream(s.topics, n_decisions=3000, agents=8, seed=4, window=600.0)
        garbage = sum(1 for _, raw in stream if raw.startswith(GARBAGE_PREFIX))
        agents = [f"ag{i}" for i in range(8)]
        produce(s.kafka_bootstrap_servers, stream, by_agent=True)
        misrouted = None
        if processes == 2:  # one feedback on the partition its agent does not hash to
            wrong = 1 - partition_for(b"ag0", 2, s.kafka_partitioner)
            misrouted = FeedbackGiven(decision_id=uuid.uuid4(), agent_id="ag0",
                                      user_id="u0", kind="thumbs", value=1.0)
            p = Producer({"bootstrap.servers": s.kafka_bootstrap_servers})
            p.produce(s.topics.signals, key=b"ag0", value=dump_event(misrouted),
                      partition=wrong)
            assert p.flush(10) == 0
        proc = start_dataflow(s, log_path=tmp_path / f"p{processes}.log")
        try:
            for i in range(processes):  # each process serves metrics on its own port
                wait_for_port("127.0.0.1", s.dataflow_metrics_port + i, 30)
            runs.append(wait_consumed(redis_client, s, agents, len(stream) + (processes - 1),
                                      garbage + (processes - 1)))
            if misrouted is not None:
                dead = [d for d in consume_all(s.kafka_bootstrap_servers, s.topics.dlq,
                                               timeout=10)
                        if d.get("reason", "").startswith("misrouted")]
                assert [(d["topic"], d["partition"], orjson.loads(d["payload"])["event_id"])
                        for d in dead] == [(s.topics.signals, wrong,
                                            str(misrouted.event_id))]
                assert "hashes to partition" in dead[0]["reason"]
        finally:
            stop(proc)
    one, two = runs
    assert one == two
    assert all(d["policy"]["version"] > 10 for d in one.values())
    assert (tmp_path / "recp2" / "proc-0-of-2").is_dir()
    assert (tmp_path / "recp2" / "proc-1-of-2").is_dir()


def test_routing_names_the_partition_an_agent_belongs_on():
    r = Routing({"t.signals": 2, "t.decisions": 2}, "consistent_random")
    home = partition_for(b"ag3", 2, "consistent_random")
    assert r.misrouted("t.signals", home, "ag3") is None
    assert r.misrouted("t.other", 1 - home, "ag3") is None  # not an input topic it knows
    assert f"hashes to partition {home} of t.decisions" in r.misrouted(
        "t.decisions", 1 - home, "ag3")
    with pytest.raises(ValueError, match="unknown partitioner 'fnv'"):
        Routing({"t": 1}, "fnv")
