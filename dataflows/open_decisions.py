"""An agent's open decisions: the reward window's join state, cheap to snapshot.

A decision stays open until feedback or a terminal signal closes it, or the reward window
(ten minutes by default) passes. At a few decisions per second per agent that is thousands
of open decisions per agent, the largest part of its recovery state; kept as one dict (with
a heap of deadlines beside it), every epoch re-pickled all of them for every agent it
touched: at 20k events/s over 1,000 agents after one minute, about 1 s of the flow's CPU
per epoch per process, growing with the window.

:class:`OpenDecisions` files each decision under the time bucket of its event time (``span``
seconds wide) and keeps each bucket's pickled form until the bucket changes. Decisions
arrive in event-time order (an agent applies its events in that order), so they are added
to the newest bucket and time out from the oldest one, in the order they were added: the
buckets in between change only when feedback closes one of their decisions or a signal
joins it, and a snapshot copies their bytes instead of pickling them again. The oldest
decision is the first of the oldest bucket, so no heap of deadlines is needed either.

The agent seals buckets as its watermark passes them (:meth:`OpenDecisions.seal`), so the
pickling happens as it goes rather than all at the epoch end; with recovery on, each pickle
goes to the process's cold store (:mod:`dataflows.cold_store`) and the snapshot carries its
reference.
"""

from __future__ import annotations

import bisect
import math
import pickle
from collections.abc import Iterator
from typing import Any

from dataflows.cold_store import Frozen, drop, freeze, keep, thaw

#: buckets per reward window: an epoch end pickles the buckets the agent has not sealed
#: yet (the newest, ``SEAL_LAG`` behind the watermark and one ``span`` wide: 2.3 s of the
#: default 10-minute window)
BUCKETS = 256

Record = list[Any]


class OpenDecisions:
    """Open decisions by id, in the order they were added (event-time order).

    >>> od = OpenDecisions(span=60.0)
    >>> od.add("d1", ["u", "a"], ts=10.0); od.add("d2", ["v", "b"], ts=70.0)
    >>> "d1" in od, len(od), od.first()
    (True, 2, ('d1', ['u', 'a'], 10.0))
    >>> od.touch("d2").append("joined")      # a signal joined d2: its bucket changes
    >>> od.pop("d1")
    ['u', 'a']
    >>> od.first(), od["d2"]
    (('d2', ['v', 'b', 'joined'], 70.0), ['v', 'b', 'joined'])
    >>> copy = pickle.loads(pickle.dumps(od))
    >>> list(copy), copy.first() == od.first()
    (['d2'], True)
    """

    __slots__ = ("_blobs", "_buckets", "_head", "_order", "_pending", "_where", "span")

    def __init__(self, span: float) -> None:
        if not span > 0:
            msg = f"OpenDecisions: span must be > 0 seconds, got {span!r}"
            raise ValueError(msg)
        self.span = float(span)
        #: bucket index -> {decision id: (record, ts)}, in the order added
        self._buckets: dict[int, dict[str, tuple[Record, float]]] = {}
        #: the bucket indexes, ascending
        self._order: list[int] = []
        #: decision id -> its bucket index (derived: rebuilt on restore, never pickled)
        self._where: dict[str, int] = {}
        #: bucket index -> pickled bucket (or its cold-store reference), until it changes
        self._blobs: dict[int, Frozen] = {}
        #: buckets with no pickle: new or changed since (derived, never pickled)
        self._pending: set[int] = set()
        #: :meth:`first`, until it changes (derived, never pickled)
        self._head: tuple[str, Record, float] | None = None

    @classmethod
    def for_window(cls, window: float) -> OpenDecisions:
        """Buckets of ``window / BUCKETS`` seconds (at least one second).

        >>> OpenDecisions.for_window(600.0).span
        2.34375
        """
        return cls(max(1.0, window / BUCKETS))

    def __contains__(self, did: object) -> bool:
        return did in self._where

    def __len__(self) -> int:
        return len(self._where)

    def __iter__(self) -> Iterator[str]:
        for b in self._order:
            yield from self._buckets[b]

    def __getitem__(self, did: str) -> Record:
        """The record of ``did`` to read (use :meth:`touch` to change it)."""
        return self._buckets[self._where[did]][did][0]

    def add(self, did: str, rec: Record, ts: float) -> None:
        """Open ``did`` at event time ``ts`` (not earlier than any open decision's, as the
        agent applies events in event-time order)."""
        b = math.floor(ts / self.span)
        bucket = self._buckets.get(b)
        if bucket is None:
            bucket = self._buckets[b] = {}
            bisect.insort(self._order, b)
        bucket[did] = (rec, ts)
        self._where[did] = b
        self._changed(b)
        head = self._head
        if head is not None and ts <= head[2]:  # the same ts, a smaller id may come first
            self._head = None

    def _changed(self, b: int) -> None:
        piece = self._blobs.pop(b, None)
        if piece is not None and piece.__class__ is int:
            drop(piece)
        self._pending.add(b)

    def _pickle(self, b: int) -> None:
        self._blobs[b] = freeze(pickle.dumps(self._buckets[b], protocol=pickle.HIGHEST_PROTOCOL))

    def seal(self, before: float) -> None:
        """Pickle now every new or changed bucket that ends at or before event time
        ``before`` (the agent calls this as its watermark moves, so that an epoch end
        pickles only the newest buckets; one that changes again is pickled again)."""
        pending = self._pending
        if pending and before != -math.inf:
            last = math.floor(before / self.span)  # buckets < last end at or before it
            done = [b for b in pending if b < last]
            for b in done:
                self._pickle(b)
                pending.discard(b)

    def touch(self, did: str) -> Record:
        """The record of ``did``, to be changed in place (its bucket is pickled again)."""
        b = self._where[did]
        self._changed(b)
        return self._buckets[b][did][0]

    def replace(self, did: str, rec: Record) -> None:
        """Put ``rec`` in place of ``did``'s record."""
        b = self._where[did]
        self._changed(b)
        bucket = self._buckets[b]
        bucket[did] = (rec, bucket[did][1])
        self._head = None

    def pop(self, did: str) -> Record:
        """Close ``did``: its record, which is no longer kept."""
        b = self._where.pop(did)
        bucket = self._buckets[b]
        rec = bucket.pop(did)[0]
        self._changed(b)
        head = self._head
        if head is not None and head[0] == did:
            self._head = None
        if not bucket:
            del self._buckets[b]
            self._order.remove(b)
            self._pending.discard(b)
        return rec

    def first(self) -> tuple[str, Record, float] | None:
        """``(id, record, ts)`` of the oldest open decision (the next to time out; of
        decisions with the same ts, the smallest id, as a heap of (deadline, id) would)."""
        head = self._head
        if head is not None or not self._order:
            return head
        bucket = self._buckets[self._order[0]]
        it = iter(bucket.items())
        did, (rec, ts) = next(it)
        for other, (orec, ots) in it:  # ties are rare: stop at the first later ts
            if ots != ts:
                break
            if other < did:
                did, rec = other, orec
        self._head = head = (did, rec, ts)
        return head

    def __getstate__(self) -> dict[str, Any]:
        for b in self._pending:
            self._pickle(b)
        self._pending.clear()
        return {"span": self.span, "buckets": dict(self._blobs)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.span = state["span"]
        self._buckets, self._blobs, self._where, self._head = {}, {}, {}, None
        self._pending = set()
        for b, blob in state["buckets"].items():
            bucket = pickle.loads(thaw(blob))  # noqa: S301 - our own recovery snapshot
            self._buckets[b] = bucket
            self._blobs[b] = keep(blob)
            for did in bucket:
                self._where[did] = b
        self._order = sorted(self._buckets)

    @classmethod
    def from_dict(cls, window: float, records: dict[str, Record], ts_index: int
                  ) -> OpenDecisions:
        """The open decisions of a snapshot taken before this class (a dict of records,
        each with its event time at ``ts_index``), in event-time order."""
        od = cls.for_window(window)
        for did, rec in sorted(records.items(), key=lambda kv: kv[1][ts_index]):
            od.add(did, rec, rec[ts_index])
        return od
