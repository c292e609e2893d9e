"""The Redis output edge: a guarded, pipelined projection sink (and the partition routing
that it shares with :mod:`dataflows.kafka_sink`).

Bytewax replays output emitted since the last snapshot after a crash, so every Redis write
is absolute (SET/HSET of the new state) and guarded by the agent's ``seq``: a write whose
``seq`` is not newer than the stored one is skipped. One pipeline per batch, one script call
per touched agent (coalesced).

Both sinks are fixed-partitioned (one partition per process, see :func:`local_key`) so that
Bytewax calls their ``snapshot`` at the end of every epoch, before it commits the epoch's
recovery snapshot: that is where they wait for delivery (Kafka ``flush``, the replies of
every Redis pipeline still in flight). In between, ``write_batch`` does not wait: the Kafka
producer delivers in the background and a Redis batch's replies are read after the next
batch was sent, so Redis executes one batch while the flow computes the next. Output of a
committed epoch is therefore delivered (at least once), as when every batch waited.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from dataflows import metrics as _m
from dataflows.metrics import flow_metrics
from schemas.keys import Keys

log = logging.getLogger("rewardflow.dataflow.sinks")


def process_index() -> int:
    """This process's index in a Bytewax cluster (``BYTEWAX_PROCESS_ID``, else 0)."""
    return int(os.environ.get("BYTEWAX_PROCESS_ID", "") or 0)


def local_key() -> str:
    """The item key that routes output to this process's own sink partition.

    Each process lists one partition of each sink (``<sink>-<process index>``) and
    :meth:`part_fn` sends key ``"<i>"`` to partition ``i``, so output never moves between
    processes (Bytewax would pickle it). Without ``BYTEWAX_PROCESS_ID`` every process uses
    partition 0: still correct, output just moves to the process that owns it.
    """
    return str(process_index())


def part_name(sink: str) -> str:
    """The one partition this process lists for ``sink`` (``"<sink>-<process index>"``)."""
    return f"{sink}-{process_index():04d}"


def part_of(item_key: str) -> int:
    """The sink partition of an item keyed by :func:`local_key` (0 for any other key)."""
    return int(item_key) if item_key.isdigit() else 0

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
        if prev is None:  # the common case: not copied (merging builds a new dict)
            out[snap["agent"]] = snap
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


def _bulk(a: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(a), a)


class _RedisPartition(StatefulSinkPartition[dict[str, Any], None]):
    """Packs the batch's EVALSHA calls itself (redis-py's generic packer cost more CPU than
    everything else in the sink) and sends them as one pipeline on its own connection; the
    replies are read after the next batch was sent, and all of them at :meth:`snapshot`."""

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
        #: agent -> its seven fixed keys, RESP-packed
        self._agent_keys: dict[str, bytes] = {}
        self._conn: Any = None
        #: (payload, number of commands) sent whose replies were not read yet, oldest first
        self._inflight: list[tuple[bytes, int]] = []

    def _fixed_keys(self, tenant: str, agent: str, name: str) -> bytes:
        """The agent's seven fixed keys, RESP-packed (cached)."""
        ks = self._agent_keys.get(name)
        if ks is None:
            k = self._keys
            if len(self._agent_keys) >= 200_000:
                self._agent_keys.clear()
            ks = self._agent_keys[name] = b"".join(_bulk(x.encode()) for x in (
                k.summary(tenant, agent), k.projection(tenant, agent, "1h"),
                k.projection(tenant, agent, "24h"), k.projection(tenant, agent, "7d"),
                k.history(tenant, agent), k.policy(tenant, agent),
                k.policy_history(tenant, agent)))
        return ks

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        t0 = time.perf_counter()
        k = self._keys
        sha = _bulk(self._script.sha.encode())  # type: ignore[attr-defined]
        ttl = _bulk(b"%d" % self._ttl)
        keep = _bulk(b"%d" % self._keep)
        none = _bulk(b"")
        # a light snapshot (no windows, history, policy or relationship): one format
        light = (b"*20\r\n$7\r\nEVALSHA\r\n" + sha + _bulk(b"7") + b"%b$%d\r\n%b\r\n" + ttl
                 + b"$%d\r\n%b\r\n" + none * 5 + _bulk(b"0") + keep)
        out: list[bytes] = []
        n = 0
        for name, snap in merge_snapshots(items).items():
            tenant, agent = snap["tenant"], snap["agent_id"]
            rels = snap["relationships"]
            win = snap["windows"]
            hist = snap["history"]
            policy = snap["policy"]
            seq = b"%d" % snap["seq"]
            summary = _dumps(snap["summary"])
            n += 1
            if not rels and win is None and hist is None and policy is None \
                    and not snap["policy_versions"]:
                out.append(light % (self._fixed_keys(tenant, agent, name), len(seq), seq,
                                    len(summary), summary))
                continue
            users = sorted(rels)
            versions = sorted(snap["policy_versions"].items())
            # EVALSHA sha numkeys keys... seq ttl summary 1h 24h 7d hist policy n (v doc)*n
            # keep rel...
            n_keys = 7 + len(users)
            out += [b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + n_keys + 10 + 2 * len(versions)
                                                   + len(users)),
                    sha, _bulk(b"%d" % n_keys), self._fixed_keys(tenant, agent, name)]
            out += [_bulk(k.relationship(tenant, agent, u).encode()) for u in users]
            out += [_bulk(seq), ttl, _bulk(summary),
                    _bulk(_dumps(win["1h"])) if win else none,
                    _bulk(_dumps(win["24h"])) if win else none,
                    _bulk(_dumps(win["7d"])) if win else none,
                    none if hist is None else _bulk(hist) if hist.__class__ is bytes
                    else _bulk(_dumps(hist)),
                    _bulk(policy) if policy else none, _bulk(b"%d" % len(versions))]
            for v, doc in versions:
                out += [_bulk(b"%d" % v), _bulk(doc)]
            out.append(keep)
            out += [_bulk(_dumps(rels[u])) for u in users]
        self._pipeline(b"".join(out), n)
        _m.flush()
        m = flow_metrics()
        m.redis_documents.inc(n)
        m.redis_seconds.observe(time.perf_counter() - t0)

    def _pipeline(self, payload: bytes, n: int) -> None:
        """Send this batch, then read the replies of the batches sent before it."""
        import redis

        self._inflight.append((payload, n))
        try:
            if self._conn is None:
                if not self._loaded:
                    self._client.script_load(GUARDED_WRITE)
                    self._loaded = True
                self._conn = self._client.connection_pool.get_connection()
            self._conn.send_packed_command([payload])
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            log.warning("redis pipeline failed (%s); resending the batches in flight", exc)
            self._recover()
            return
        self._drain(keep=1)

    def _drain(self, keep: int) -> None:
        """Read replies until at most ``keep`` batches are in flight; on an error reply or a
        lost connection, resend every batch in flight (:meth:`_recover`)."""
        import redis

        try:
            while len(self._inflight) > keep:
                if self._read(*self._inflight[0]):
                    self._recover()
                    return
                del self._inflight[0]
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            log.warning("redis pipeline failed (%s); resending the batches in flight", exc)
            self._recover()

    def _read(self, payload: bytes, n: int) -> list[Exception]:
        """Read the ``n`` replies of one batch; the error replies."""
        from redis.exceptions import ResponseError

        errors: list[Exception] = []
        for _ in range(n):
            try:
                self._conn.read_response()
            except ResponseError as exc:
                errors.append(exc)
        return errors

    def _recover(self) -> None:
        """Drop the connection (and any unread replies) and run every batch in flight again,
        in order, waiting for each (absolute, seq-guarded writes: a repeat is harmless)."""
        self._drop()
        batches, self._inflight = self._inflight, []
        for payload, n in batches:
            self._execute(payload, n)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._client.connection_pool.release(self._conn)
            self._conn = None

    def snapshot(self) -> None:
        """Wait for every batch in flight (the epoch's writes are in Redis when it commits)."""
        self._drain(keep=0)

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
        self.snapshot()
        if self._conn is not None:
            self._client.connection_pool.release(self._conn)
            self._conn = None
        self._client.close()


class RedisProjectionSink(FixedPartitionedSink[dict[str, Any], None]):
    """Writes agent snapshots (see :func:`dataflows.agent_docs.snapshot_item`) to Redis.

    Takes ``(key, snapshot)`` pairs keyed by :func:`local_key`."""

    def __init__(self, url: str, keys: Keys, ttl: int, history_keep: int = 50) -> None:
        self._url, self._keys, self._ttl, self._keep = url, keys, ttl, history_keep

    def list_parts(self) -> list[str]:
        return [part_name("redis")]

    def part_fn(self, item_key: str) -> int:
        return part_of(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _RedisPartition:
        return _RedisPartition(self._url, self._keys, self._ttl, self._keep)
