"""Fixtures: a real Kafka-protocol broker (Tansu) and a real Redis on free loopback ports.

Every test gets its own topic prefix and Redis key prefix through the ``settings`` fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from schemas.settings import Settings
from stack.broker import EmbeddedBroker, create_topics
from stack.redis_server import RedisServer


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker().start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    r = RedisServer(data_dir=tmp_path_factory.mktemp("redis")).start()
    yield r
    r.stop()


@pytest.fixture()
def settings(broker: EmbeddedBroker, redis_server: RedisServer, tmp_path) -> Settings:
    """Settings pointing at the test broker and Redis, with a unique topic and key prefix."""
    tag = uuid.uuid4().hex[:10]
    s = Settings(
        kafka_bootstrap_servers=broker.bootstrap,
        redis_url=redis_server.url,
        topic_prefix=f"t{tag}",
        key_prefix=f"k{tag}",
        recovery_dir=str(tmp_path / "recovery"),
        topic_partitions=2,
    )
    create_topics(broker.bootstrap, s.topics.all, partitions=s.topic_partitions)
    return s


@pytest.fixture()
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()
