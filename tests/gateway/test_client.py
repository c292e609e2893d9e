"""The typed sync client against a real uvicorn server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from gateway.client import RewardflowClient, RewardflowError
from gateway.main import create_app
from schemas.settings import Settings
from stack.ports import free_port
from tests.gateway.conftest import SPEC, read_topic


@pytest.fixture()
def base_url(settings: Settings) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    t.join(10)


def test_client_round_trip(base_url: str, settings: Settings) -> None:
    with RewardflowClient(base_url) as c:
        assert c.ready()
        assert c.upsert_agent("ava", SPEC)["created"] is True
        assert c.upsert_agent("ava", SPEC)["created"] is False
        d = c.decide("ava", "u1", {"slot": "morning"})
        assert d["action"] in SPEC["actions"] and d["bucket"] == "slot=morning"
        c.feedback(d["decision_id"], "ava", "u1", "thumbs", 1)
        c.signals([{"decision_id": d["decision_id"], "agent_id": "ava", "user_id": "u1",
                    "kind": "sentiment", "value": 0.4}])
        assert c.policy("ava")["version"] == 0
        assert [v["version"] for v in c.policy_versions("ava")] == [0]
        assert c.projection("ava", "7d")["window"]["window"] == "7d"
        assert c.relationship("ava", "u1")["user_id"] == "u1"
        assert c.agent("ava")["persona"]["name"] == "Ava"
        with pytest.raises(RewardflowError) as ei:
            c.decide("nobody", "u1", {})
        assert ei.value.status == 404 and "unknown agent" in ei.value.body
        with pytest.raises(RewardflowError) as ei:
            c.feedback(d["decision_id"], "ava", "u1", "thumbs", 5)
        assert ei.value.status == 422
    kinds = [e["type"] for e in read_topic(settings.kafka_bootstrap_servers,
                                           settings.topics.signals, 2)]
    assert sorted(kinds) == ["FeedbackGiven", "SignalObserved"]
