"""Co-partitioned flow processes: which input partitions a process reads, and the check
that every event is on the partition its agent hashes to.

Every input topic is keyed by ``agent_id``. When all of them have the same number of
partitions and every producer uses the same partitioner, partition ``p`` of each topic holds
the same agents: the topics are *co-partitioned*. Then ``N`` flow processes can each read a
disjoint share of the partition numbers (``p % N == index``) and own every event of their
agents, with nothing exchanged between them (Bytewax's own cluster mode routes every item to
the worker that owns its key, which pickles it across processes: 80.6 against 50.8 us of
CPU per event for two processes against one, measured on 2026-11-22).

The price is a rule the producers must keep. One event of an agent on a partition its
agent does not hash to would be read by another process than the agent's other events, and
two processes would each keep (and write to Redis) half an agent. So in co-partitioned mode
the input checks every event: an event whose ``agent_id`` hashes to another partition under
the configured partitioner (``RF_KAFKA_PARTITIONER``: librdkafka's default
``consistent_random``, CRC32 of the key, or ``murmur2_random``, the Java client's default)
goes to the DLQ as *misrouted*, with its topic, partition and offset.

>>> share = Share(index=1, processes=2)
>>> [p for p in range(5) if share.owns(p)]
[1, 3]
>>> partition_for(b"ag7", 4, "consistent_random"), partition_for(b"ag7", 4, "murmur2_random")
(2, 3)
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from schemas.settings import KafkaPartitioner

PARTITIONERS: tuple[str, ...] = get_args(KafkaPartitioner)

_M32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The Java Kafka client's ``Utils.murmur2`` (seed ``0x9747b28c``), as an unsigned int.

    Kafka's own test vectors (``UtilsTest.testMurmur2``, signed there):

    >>> murmur2(b"21") - 2**32, murmur2(b"foobar") - 2**32, murmur2(b"abc")
    (-973932308, -790332482, 479470107)
    """
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & _M32
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & _M32
        k ^= k >> r
        k = (k * m) & _M32
        h = (h * m) & _M32
        h ^= k
    tail = data[4 * n4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & _M32
    h ^= h >> 13
    h = (h * m) & _M32
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int, partitioner: str) -> int:
    """The partition a producer with ``partitioner`` sends ``key`` to.

    ``consistent_random``: librdkafka's default, ``crc32(key) % partitions``;
    ``murmur2_random``: the Java client's default, ``(murmur2(key) & 0x7fffffff) %
    partitions`` (librdkafka's ``murmur2_random`` is the same).
    """
    if partitioner == "consistent_random":
        return zlib.crc32(key) % partitions
    if partitioner == "murmur2_random":
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    msg = f"unknown partitioner {partitioner!r}; use one of {', '.join(PARTITIONERS)}"
    raise ValueError(msg)


@dataclass(frozen=True)
class Share:
    """Process ``index`` of ``processes`` reads the partitions ``p % processes == index``."""

    index: int = 0
    processes: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.processes:
            msg = (f"process index {self.index} is outside 0..{self.processes - 1} "
                   f"(RF_DATAFLOW_PROCESS_INDEX, RF_DATAFLOW_PROCESSES)")
            raise ValueError(msg)

    @property
    def alone(self) -> bool:
        """One process reads everything: nothing to check."""
        return self.processes == 1

    def owns(self, partition: int) -> bool:
        return partition % self.processes == self.index

    def check(self, partitions: Mapping[str, int]) -> None:
        """Refuse a layout the share cannot serve: topics with different partition counts
        (not co-partitioned), or fewer partitions than processes (an idle process).

        >>> Share(0, 2).check({"rf.decisions": 2, "rf.signals": 4})
        Traceback (most recent call last):
        ...
        ValueError: 2 co-partitioned flow processes need every input topic with the same \
number of partitions; found rf.decisions: 2, rf.signals: 4
        """
        if self.alone:
            return
        counts = set(partitions.values())
        if len(counts) > 1:
            found = ", ".join(f"{t}: {n}" for t, n in sorted(partitions.items()))
            msg = (f"{self.processes} co-partitioned flow processes need every input topic "
                   f"with the same number of partitions; found {found}")
            raise ValueError(msg)
        n = counts.pop() if counts else 0
        if n < self.processes:
            msg = (f"{self.processes} flow processes but the input topics have {n} "
                   f"partition(s): a process would read nothing; use at most {n} processes "
                   f"or more partitions")
            raise ValueError(msg)


def store_dir(base: Path, share: Share) -> Path:
    """The recovery store of one process: ``base`` itself for a single process, else
    ``base/proc-{index}-of-{processes}`` (each process snapshots only its partitions).

    >>> str(store_dir(Path("var/recovery"), Share(1, 2)))
    'var/recovery/proc-1-of-2'
    """
    return base if share.alone else base / f"proc-{share.index}-of-{share.processes}"


def check_store_layout(base: Path, processes: int) -> None:
    """Refuse a recovery store written for another number of processes: its offsets and
    agent states belong to another partition assignment.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "proc-0-of-2").mkdir()
    >>> check_store_layout(d, 2)
    >>> check_store_layout(d, 1)
    Traceback (most recent call last):
    ...
    ValueError: the recovery store ... was written by 2 flow processes, not 1: ...
    """
    if not base.exists():
        return
    found = {p.name.rsplit("-of-", 1)[-1] for p in base.glob("proc-*-of-*") if p.is_dir()}
    single = any(base.glob("*.sqlite3"))
    written = sorted({int(n) for n in found if n.isdigit()} | ({1} if single else set()))
    wrong = [n for n in written if n != processes]
    if wrong:
        msg = (f"the recovery store {base} was written by {wrong[0]} flow processes, not "
               f"{processes}: its offsets and agent states belong to another partition "
               f"assignment. Keep RF_DATAFLOW_PROCESSES={wrong[0]}, or stop the flow, delete "
               f"the store and let it rebuild from the topics (Redis writes are absolute "
               f"and seq-guarded)")
        raise ValueError(msg)


class Routing:
    """What a co-partitioned process checks per event: that it was read from the partition
    its ``agent_id`` hashes to (``partitions``: each input topic's partition count).

    >>> r = Routing({"rf.signals": 4}, "consistent_random")
    >>> r.misrouted("rf.signals", 2, "ag7") is None
    True
    >>> r.misrouted("rf.signals", 0, "ag7")
    "misrouted: agent_id 'ag7' hashes to partition 2 of rf.signals under consistent_random, \
but the event was read from partition 0 (with several flow processes every producer must key \
by agent_id with the same partitioner, RF_KAFKA_PARTITIONER)"
    """

    def __init__(self, partitions: Mapping[str, int], partitioner: str) -> None:
        partition_for(b"", 1, partitioner)  # an unknown partitioner fails here, at start
        self.partitions = dict(partitions)
        self.partitioner = partitioner
        self._memo: dict[tuple[str, str], int] = {}

    def expected(self, topic: str, agent_id: str) -> int | None:
        n = self.partitions.get(topic)
        if n is None:
            return None
        key = (topic, agent_id)
        p = self._memo.get(key)
        if p is None:
            if len(self._memo) >= 1_000_000:
                self._memo.clear()
            p = self._memo[key] = partition_for(agent_id.encode(), n, self.partitioner)
        return p

    def misrouted(self, topic: str, partition: int, agent_id: str) -> str | None:
        """Why this event is on the wrong partition, or None."""
        want = self.expected(topic, agent_id)
        if want is None or want == partition:
            return None
        return (f"misrouted: agent_id {agent_id!r} hashes to partition {want} of {topic} "
                f"under {self.partitioner}, but the event was read from partition "
                f"{partition} (with several flow processes every producer must key by "
                f"agent_id with the same partitioner, RF_KAFKA_PARTITIONER)")
