"""The fixtures start a real broker and a real Redis."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition


def test_broker_round_trip(settings):
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    p.produce(settings.topics.signals, key=b"a1", value=b"hello")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "x",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(settings.topics.signals, i, 0) for i in range(2)])
    got = []
    for _ in range(50):
        got += [m.value() for m in c.consume(10, 0.2) if m.error() is None]
        if got:
            break
    c.close()
    assert got == [b"hello"]


def test_redis_round_trip(settings, redis_client):
    key = settings.keys.policy("default", "a1")
    redis_client.set(key, "v")
    assert redis_client.get(key) == "v"
