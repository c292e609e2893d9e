"""Output edges: a guarded, pipelined Redis projection sink and a timed Kafka sink.

Bytewax replays output emitted since the last snapshot after a crash, so every Redis write
is absolute (SET/HSET of the new state) and guarded by the agent's ``seq``: a write whose
``seq`` is not newer than the stored one is skipped. One pipeline per batch, one script call
per touched agent (coalesced).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.metrics import flow_metrics
from schemas.keys import Keys

log = logging.getLogger("rewardflow.dataflow.sinks")

#: KEYS: summary, 1h, 24h, 7d, hist, policy, policy_history, rel...;
#: ARGV: seq, ttl, summary, 1h, 24h, 7d, hist, policy ('' = none), n_versions,
#:       (version, doc)*n, history_keep, rel docs...
GUARDED_WRITE = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
local seq = tonumber(ARGV[1])
if seq <= cur then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'doc', ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
for i = 2, 5 do
  if ARGV[i + 2] ~= '' then redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ttl) end
end
if ARGV[8] ~= '' then redis.call('SET', KEYS[6], ARGV[8]) end
local n = tonumber(ARGV[9])
local pos = 10
local top = -1
for _ = 1, n do
  redis.call('HSET', KEYS[7], ARGV[pos], ARGV[pos + 1])
  top = math.max(top, tonumber(ARGV[pos]))
  pos = pos + 2
end
local keep = tonumber(ARGV[pos])
pos = pos + 1
if n > 0 and top - keep > 0 then
  for v = math.max(1, top - keep - n), top - keep do redis.call('HDEL', KEYS[7], tostring(v)) end
end
for k = 8, #KEYS do
  redis.call('SET', KEYS[k], ARGV[pos], 'EX', ttl)
  pos = pos + 1
end
return 1
"""


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def merge_snapshots(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Coalesce a batch to one write per agent: newest state, all policy versions and users.

    >>> a = {"agent": "t:a", "seq": 1, "policy_versions": {1: "p1"}, "relationships": {"u": 1}}
    >>> b = {"agent": "t:a", "seq": 2, "policy_versions": {2: "p2"}, "relationships": {"v": 2}}
    >>> m = merge_snapshots([a, b])["t:a"]
    >>> m["seq"], sorted(m["policy_versions"]), sorted(m["relationships"])
    (2, [1, 2], ['u', 'v'])
    """
    out: dict[str, dict[str, Any]] = {}
    for snap in items:
        prev = out.get(snap["agent"])
        if prev is None:
            out[snap["agent"]] = dict(snap)
            continue
        versions = {**prev["policy_versions"], **snap["policy_versions"]}
        rels = {**prev["relationships"], **snap["relationships"]}
        merged = dict(snap) if snap["seq"] >= prev["seq"] else dict(prev)
        merged["policy_versions"] = versions
        merged["relationships"] = rels
        if merged.get("policy") is None:
            merged["policy"] = snap.get("policy") or prev.get("policy")
        for part in ("windows", "history"):  # a light snapshot keeps the last full docs
            if merged.get(part) is None:
                merged[part] = snap.get(part) if snap.get(part) is not None else prev.get(part)
        out[snap["agent"]] = merged
    return out


def _resp(out: list[bytes], args: list[Any]) -> None:
    """Append ``args`` as one RESP command to ``out`` (the bytes redis-py's packer sends:
    str as UTF-8, int as its decimal repr, bytes as is)."""
    out.append(b"*%d\r\n" % len(args))
    for a in args:
        if a.__class__ is str:
            a = a.encode()
        elif a.__class__ is int:
            a = b"%d" % a
        out.append(b"$%d\r\n%b\r\n" % (len(a), a))


class _RedisPartition(StatelessSinkPartition[dict[str, Any]]):
    """Packs the batch's EVALSHA calls itself (redis-py's generic packer cost more CPU than
    everything else in the sink) and sends them as one pipeline on one pooled connection."""

    def __init__(self, url: str, keys: Keys, ttl: int, history_keep: int,
                 give_up_seconds: float = 300.0) -> None:
        import redis

        self._give_up = give_up_seconds
        self._client = redis.Redis.from_url(url)
        self._script = self._client.register_script(GUARDED_WRITE)
        self._loaded = False
        self._keys = keys
        self._ttl = ttl
        self._keep = history_keep
        #: agent -> its seven fixed keys
        self._agent_keys: dict[str, list[str]] = {}

    def _fixed_keys(self, tenant: str, agent: str, name: str) -> list[str]:
        ks = self._agent_keys.get(name)
        if ks is None:
            k = self._keys
            ks = self._agent_keys[name] = [
                k.summary(tenant, agent), k.projection(tenant, agent, "1h"),
                k.projection(tenant, agent, "24h"), k.projection(tenant, agent, "7d"),
                k.history(tenant, agent), k.policy(tenant, agent),
                k.policy_history(tenant, agent)]
        return ks

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        t0 = time.perf_counter()
        k = self._keys
        ttl, keep = self._ttl, self._keep
        head = [b"EVALSHA", self._script.sha.encode()]  # type: ignore[attr-defined]
        out: list[bytes] = []
        n = 0
        for name, snap in merge_snapshots(items).items():
            tenant, agent = snap["tenant"], snap["agent_id"]
            rels = snap["relationships"]
            users = sorted(rels)
            keys = self._fixed_keys(tenant, agent, name)
            if users:
                keys = keys + [k.relationship(tenant, agent, u) for u in users]
            versions = sorted(snap["policy_versions"].items())
            win = snap["windows"]
            args: list[Any] = [*head, len(keys), *keys, snap["seq"], ttl, _dumps(snap["summary"]),
                               _dumps(win["1h"]) if win else "",
                               _dumps(win["24h"]) if win else "",
                               _dumps(win["7d"]) if win else "",
                               _dumps(snap["history"]) if snap["history"] is not None else "",
                               snap["policy"] or "", len(versions)]
            for v, doc in versions:
                args += [v, doc]
            args.append(keep)
            args += [_dumps(rels[u]) for u in users]
            _resp(out, args)
            n += 1
        self._execute(b"".join(out), n)
        flow_metrics().redis_seconds.observe(time.perf_counter() - t0)

    def _send(self, payload: bytes, n: int) -> list[Exception]:
        """Send ``n`` packed commands, read every reply; the error replies."""
        from redis.exceptions import ResponseError

        if not self._loaded:
            self._client.script_load(GUARDED_WRITE)
            self._loaded = True
        pool = self._client.connection_pool
        conn = pool.get_connection()
        errors: list[Exception] = []
        try:
            conn.send_packed_command([payload])
            for _ in range(n):
                try:
                    conn.read_response()
                except ResponseError as exc:
                    errors.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return errors

    def _execute(self, payload: bytes, n: int) -> None:
        """One pipeline for the batch; while Redis is unreachable (or lost the script),
        resend it with backoff (the writes are absolute and seq-guarded, so a repeat is
        harmless)."""
        import redis
        from redis.exceptions import NoScriptError

        delay, waited = 0.05, 0.0
        reloaded = False
        while True:
            try:
                errors = self._send(payload, n)
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                self._loaded = False
                if waited >= self._give_up:
                    raise
                log.warning("redis unavailable (%s); retrying the batch in %.2fs", exc, delay)
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 2.0)
                continue
            if not errors:
                return
            if not reloaded and any(isinstance(e, NoScriptError) for e in errors):
                reloaded = True  # a restarted Redis lost the script: load it, send again
                self._loaded = False
                log.warning("redis lost the write script; loading it and resending the batch")
                continue
            raise errors[0]

    def close(self) -> None:
        self._client.close()


class RedisProjectionSink(DynamicSink[dict[str, Any]]):
    """Writes agent snapshots (see :func:`dataflows.flow.snapshot_item`) to Redis."""

    def __init__(self, url: str, keys: Keys, ttl: int, history_keep: int = 50) -> None:
        self._url, self._keys, self._ttl, self._keep = url, keys, ttl, history_keep

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisPartition:
        return _RedisPartition(self._url, self._keys, self._ttl, self._keep)


class _KafkaPartition(StatelessSinkPartition[KafkaSinkMessage[bytes, bytes]]):
    def __init__(self, config: dict[str, Any]) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(config)

    def write_batch(self, items: list[KafkaSinkMessage[bytes, bytes]]) -> None:
        t0 = time.perf_counter()
        for msg in items:
            while True:
                try:
                    self._producer.produce(msg.topic or "", value=msg.value, key=msg.key)
                    break
                except BufferError:
                    self._producer.poll(0.05)
        self._producer.flush()
        flow_metrics().kafka_seconds.observe(time.perf_counter() - t0)

    def close(self) -> None:
        self._producer.flush()


class TimedKafkaSink(DynamicSink[KafkaSinkMessage[bytes, bytes]]):
    """At-least-once Kafka output (flushed every batch); topics come from the messages."""

    def __init__(self, bootstrap: str) -> None:
        self._config = {"bootstrap.servers": bootstrap, "linger.ms": 2,
                        "enable.idempotence": False}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaPartition:
        return _KafkaPartition(self._config)
