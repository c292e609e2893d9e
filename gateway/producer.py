"""The Kafka edge: one ``confluent_kafka.Producer``, polled for callbacks.

Nothing connects in the constructor; :meth:`EventProducer.start` runs in the app lifespan.
Started inside a running event loop (the app lifespan), the producer is polled without
blocking from that loop every :data:`POLL_INTERVAL` seconds; librdkafka's own threads do the
sending either way. A Python poll thread would have to take the GIL from the request path
every time its ``poll`` returns (on each batch's delivery events, even with error-only
reports); polling on the loop avoids that handoff. The thread is the fallback when no loop is
running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from gateway.metrics import Metrics

log = logging.getLogger(__name__)

#: Seconds between two non-blocking polls on the event loop (callbacks: delivery errors,
#: broker-down errors).
POLL_INTERVAL = 0.05
#: Seconds between two broker probes while Kafka is down.
PROBE_INTERVAL = 2.0


#: librdkafka ``linger.ms`` of the gateway's producer (the bench's live load batches the same).
LINGER_MS = 20


class KafkaUnavailable(RuntimeError):
    """The producer cannot accept messages (queue full or every broker down)."""


class EventProducer:
    def __init__(self, bootstrap: str, metrics: Metrics, **config: Any) -> None:
        self.bootstrap = bootstrap
        self.metrics = metrics
        self.config = {
            "bootstrap.servers": bootstrap,
            "linger.ms": LINGER_MS,
            "delivery.report.only.error": True,
            "acks": 1,
            "queue.buffering.max.messages": 200_000,
            "message.timeout.ms": 30_000,
            "socket.connection.setup.timeout.ms": 3_000,
            "reconnect.backoff.max.ms": 1_000,
            **config,
        }
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._probing = False
        self._last_probe = 0.0
        self.down_since: float | None = None
        self._err_children: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> EventProducer:
        from confluent_kafka import Producer

        # One delivery callback for every message (cheaper than one per produce call).
        self._producer = Producer({**self.config, "error_cb": self._on_error,
                                   "on_delivery": self._on_delivery})
        self._stop.clear()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if self._loop is not None:
            self._tick_handle = self._loop.call_later(POLL_INTERVAL, self._tick)
        else:
            self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._producer is not None:
            remaining = self._producer.flush(timeout)
            if remaining:
                log.warning("kafka: %d messages not delivered at shutdown", remaining)
            self._producer = None

    def _tick(self) -> None:
        """On the event loop: serve pending callbacks without blocking, probe when down."""
        loop = self._loop
        if self._stop.is_set() or self._producer is None or loop is None:
            return
        try:
            self._producer.poll(0)
            now = time.monotonic()
            if (self.down_since is not None and not self._probing
                    and now - self._last_probe > PROBE_INTERVAL):
                self._last_probe = now
                self._probing = True
                loop.run_in_executor(None, self.ping, 1.0).add_done_callback(self._probed)
        except Exception:
            log.exception("kafka: poll failed")
        finally:
            if not self._stop.is_set():
                self._tick_handle = loop.call_later(POLL_INTERVAL, self._tick)

    def _probed(self, fut: asyncio.Future[bool]) -> None:
        self._probing = False

    def _poll_loop(self) -> None:
        last_probe = 0.0
        while not self._stop.is_set():
            self._producer.poll(0.1)
            now = time.monotonic()
            if self.down_since is not None and now - last_probe > PROBE_INTERVAL:
                last_probe = now
                self.ping(1.0)

    # -- callbacks --------------------------------------------------------------------------
    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if err.code() == KafkaError._ALL_BROKERS_DOWN and self.down_since is None:
                self.down_since = time.monotonic()
            log.warning("kafka: %s", err)

    def _count_error(self, topic: str) -> None:
        child = self._err_children.get(topic)
        if child is None:
            child = self._err_children[topic] = self.metrics.produce_errors.labels(topic)
        child.inc()

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._count_error(msg.topic())
            log.warning("kafka delivery failed on %s: %s", msg.topic(), err)
        elif self.down_since is not None:
            self.down_since = None

    # -- API --------------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return self._producer is not None and self.down_since is None

    def produce(self, topic: str, key: str, value: bytes) -> None:
        """Queue one message; raise :class:`KafkaUnavailable` when it cannot be queued."""
        if not self.healthy:
            self._count_error(topic)
            msg = "kafka is unavailable"
            raise KafkaUnavailable(msg)
        try:
            self._producer.produce(topic, value, key.encode())
        except BufferError as exc:
            self._count_error(topic)
            msg = "kafka producer queue is full"
            raise KafkaUnavailable(msg) from exc
        except Exception as exc:  # KafkaException: unknown topic, bad config, ...
            self._count_error(topic)
            msg = f"kafka produce failed: {exc}"
            raise KafkaUnavailable(msg) from exc

    def ping(self, timeout: float = 1.0) -> bool:
        """Blocking metadata request; True when a broker answers."""
        if self._producer is None or not self.bootstrap:
            return False
        try:
            self._producer.list_topics(timeout=timeout)
        except Exception:
            if self.down_since is None:
                self.down_since = time.monotonic()
            return False
        self.down_since = None
        return True

    def flush(self, timeout: float = 5.0) -> int:
        return int(self._producer.flush(timeout)) if self._producer is not None else 0
