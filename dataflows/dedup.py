"""Ids seen within a horizon of event time, cheap to expire and cheap to snapshot.

An agent remembers the ``event_id`` of every event (and the ``decision_id`` of every closed
decision) of the last ``RF_DEDUP_HORIZON_SECONDS`` of event time: a day by default, so many
thousands of ids per agent. Kept as one dict, every prune walked all of them (8.5 ms for
86,400 ids and 43,200 decisions, every 512 events of the agent) and every epoch re-pickled
all of them for each agent it touched (11.5 ms), so both grew with uptime.

:class:`ExpiringIds` files each id under the time bucket of its event time (``span``
seconds wide). Expiring drops whole buckets; a bucket the watermark has passed no longer
changes (apart from the rare control event applied late).

A snapshot pickles only the ids added since the last one: each bucket is a list of *chunks*
(pickled pieces, each an epoch's new ids), and once the watermark has passed a bucket its
chunks are merged into one. With recovery on, each chunk goes to the process's cold store
(:mod:`dataflows.cold_store`) once and the snapshot carries its reference, so an epoch end
costs what the epoch added, not what the horizon holds.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Hashable
from typing import Any

from dataflows.cold_store import Frozen, drop, freeze, keep, thaw

#: buckets per horizon: an id is kept at most ``horizon / BUCKETS`` longer than the horizon
BUCKETS = 32
#: ... and at most this wide: a bucket's chunks are merged once the watermark has passed it
#: (at 20 events/s an agent, 6,000 ids, not the 54,000 of a 45-minute bucket of the default
#: day)
MAX_SPAN = 300.0


class ExpiringIds:
    """A set of ids, each filed under the event time it was seen at.

    ``expire(before)`` forgets every bucket that ends at or before ``before``, so an id is
    kept for at least the horizon and at most one bucket (``span``) longer.

    >>> ids = ExpiringIds(span=60.0)
    >>> ids.add("a", ts=10.0); ids.add("b", ts=70.0)
    >>> "a" in ids, "b" in ids, len(ids)
    (True, True, 2)
    >>> ids.expire(before=60.0)          # the bucket [0, 60) ends at 60: gone
    >>> "a" in ids, "b" in ids
    (False, True)
    >>> import pickle
    >>> copy = pickle.loads(pickle.dumps(ids))
    >>> ids.add("c", ts=80.0)            # the next snapshot pickles "c" alone
    >>> ids.__getstate__()["chunks"][1] == [pickle.dumps(["b"], 5), pickle.dumps(["c"], 5)]
    True
    >>> ids.seal(before=120.0)           # the watermark passed 120: [60, 120) is final
    >>> ids.__getstate__()["chunks"][1] == [pickle.dumps(["b", "c"], 5)]
    True
    >>> copy = pickle.loads(pickle.dumps(ids))
    >>> "b" in copy, "c" in copy, len(copy)
    (True, True, 2)
    """

    __slots__ = ("_all", "_buckets", "_chunks", "_fresh", "_frozen", "span")

    def __init__(self, span: float) -> None:
        if not span > 0:
            msg = f"ExpiringIds: span must be > 0 seconds, got {span!r}"
            raise ValueError(msg)
        self.span = float(span)
        self._all: set[Hashable] = set()
        #: bucket index -> ids filed there, in the order added
        self._buckets: dict[int, list[Hashable]] = {}
        #: bucket index -> the pieces (pickled lists) that hold its first ``_frozen[b]`` ids
        self._chunks: dict[int, list[Frozen]] = {}
        self._frozen: dict[int, int] = {}
        #: buckets with ids added since their last chunk (derived, never pickled)
        self._fresh: set[int] = set()

    @classmethod
    def for_horizon(cls, horizon: float) -> ExpiringIds:
        """Buckets of ``horizon / BUCKETS`` seconds, between one second and ``MAX_SPAN``.

        >>> ExpiringIds.for_horizon(86400.0).span, ExpiringIds.for_horizon(3200.0).span
        (300.0, 100.0)
        """
        return cls(min(MAX_SPAN, max(1.0, horizon / BUCKETS)))

    def __contains__(self, key: object) -> bool:
        return key in self._all

    def __len__(self) -> int:
        return len(self._all)

    def add(self, key: Hashable, ts: float) -> None:
        """Remember ``key``, seen at event time ``ts``."""
        b = math.floor(ts / self.span)
        ids = self._buckets.get(b)
        if ids is None:
            self._buckets[b] = [key]
        else:
            ids.append(key)
        self._all.add(key)
        self._fresh.add(b)

    def expire(self, before: float) -> None:
        """Forget every bucket that ends at or before event time ``before``."""
        if before == -math.inf:
            return
        last = math.floor(before / self.span)  # buckets < last end at or before ``before``
        old = [b for b in self._buckets if b < last]
        for b in old:
            self._all.difference_update(self._buckets.pop(b))
            for piece in self._chunks.pop(b, ()):
                drop(piece)
            self._frozen.pop(b, None)
            self._fresh.discard(b)

    def seal(self, before: float) -> None:
        """Merge the chunks of every bucket that ends at or before ``before`` (the
        watermark: no new id lands there, except a control event applied late, which adds
        a chunk that the next seal merges)."""
        if before == -math.inf:
            return
        last = math.floor(before / self.span)
        chunks, frozen = self._chunks, self._frozen
        for b, ids in self._buckets.items():
            if b < last:
                pieces = chunks.get(b)
                if pieces is None or len(pieces) > 1 or frozen[b] < len(ids):
                    for piece in pieces or ():
                        drop(piece)
                    chunks[b] = [freeze(pickle.dumps(ids, protocol=pickle.HIGHEST_PROTOCOL))]
                    frozen[b] = len(ids)
                    self._fresh.discard(b)

    def _chunk(self, b: int) -> None:
        """File the ids of bucket ``b`` added since its last chunk as a new chunk."""
        ids = self._buckets[b]
        done = self._frozen.get(b, 0)
        piece = freeze(pickle.dumps(ids[done:] if done else ids,
                                    protocol=pickle.HIGHEST_PROTOCOL))
        pieces = self._chunks.get(b)
        if pieces is None:
            self._chunks[b] = [piece]
        else:
            pieces.append(piece)
        self._frozen[b] = len(ids)

    def chunk(self, min_ids: int) -> None:
        """Chunk every bucket with at least ``min_ids`` new ids now (the agent calls this
        as it goes, so that an epoch end pickles only the last few ids of each)."""
        fresh, frozen, buckets = self._fresh, self._frozen, self._buckets
        done = [b for b in fresh if len(buckets[b]) - frozen.get(b, 0) >= min_ids]
        for b in done:
            self._chunk(b)
            fresh.discard(b)

    def __getstate__(self) -> dict[str, Any]:
        for b in self._fresh:  # the ids added since the last snapshot, as one new chunk
            self._chunk(b)
        self._fresh.clear()
        return {"span": self.span, "chunks": {b: list(p) for b, p in self._chunks.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.span = state["span"]
        self._buckets, self._chunks, self._frozen, self._all = {}, {}, {}, set()
        self._fresh = set()
        if "buckets" in state:  # the layout before chunks: {bucket: ids or their pickle}
            state = {"chunks": {b: [ids if isinstance(ids, bytes) else
                                    pickle.dumps(ids, protocol=pickle.HIGHEST_PROTOCOL)]
                                for b, ids in state["buckets"].items()}}
        for b, pieces in state["chunks"].items():
            ids: list[Hashable] = []
            for piece in pieces:
                ids += pickle.loads(thaw(piece))  # noqa: S301 - our own recovery snapshot
            self._buckets[b] = ids
            self._chunks[b] = [keep(p) for p in pieces]
            self._frozen[b] = len(ids)
            self._all.update(ids)
