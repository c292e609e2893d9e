"""Ids seen within a horizon of event time, cheap to expire and cheap to snapshot.

An agent remembers the ``event_id`` of every event (and the ``decision_id`` of every closed
decision) of the last ``RF_DEDUP_HORIZON_SECONDS`` of event time: a day by default, so many
thousands of ids per agent. Kept as one dict, every prune walked all of them (8.5 ms for
86,400 ids and 43,200 decisions, every 512 events of the agent) and every epoch re-pickled
all of them for each agent it touched (11.5 ms), so both grew with uptime.

:class:`ExpiringIds` files each id under the time bucket of its event time (``span``
seconds wide). Expiring drops whole buckets; a bucket the watermark has passed no longer
changes (apart from the rare control event applied late), so its pickled form is kept and a
snapshot copies those bytes instead of pickling the ids again.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Hashable
from typing import Any

#: buckets per horizon: an id is kept at most ``horizon / BUCKETS`` longer than the horizon
BUCKETS = 32
#: ... and at most this wide: only the bucket the watermark is in is pickled at each epoch,
#: so its size (at 20 events/s an agent, 6,000 ids, not the 54,000 of a 45-minute bucket of
#: the default day) is what a snapshot costs per agent
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
    >>> ids.seal(before=120.0)           # the watermark passed 120: [60, 120) is final
    >>> copy = pickle.loads(pickle.dumps(ids))
    >>> "b" in copy, len(copy)
    (True, 1)
    """

    __slots__ = ("_all", "_blobs", "_buckets", "span")

    def __init__(self, span: float) -> None:
        if not span > 0:
            msg = f"ExpiringIds: span must be > 0 seconds, got {span!r}"
            raise ValueError(msg)
        self.span = float(span)
        self._all: set[Hashable] = set()
        #: bucket index -> ids filed there
        self._buckets: dict[int, list[Hashable]] = {}
        #: bucket index -> pickled ids of a sealed bucket (dropped when the bucket changes)
        self._blobs: dict[int, bytes] = {}

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
            if self._blobs:
                self._blobs.pop(b, None)
        self._all.add(key)

    def expire(self, before: float) -> None:
        """Forget every bucket that ends at or before event time ``before``."""
        if before == -math.inf:
            return
        last = math.floor(before / self.span)  # buckets < last end at or before ``before``
        old = [b for b in self._buckets if b < last]
        for b in old:
            self._all.difference_update(self._buckets.pop(b))
            self._blobs.pop(b, None)

    def seal(self, before: float) -> None:
        """Keep the pickled form of every bucket that ends at or before ``before`` (the
        watermark: no new id lands there, except a control event applied late, which
        unseals its bucket)."""
        if before == -math.inf:
            return
        last = math.floor(before / self.span)
        for b, ids in self._buckets.items():
            if b < last and b not in self._blobs:
                self._blobs[b] = pickle.dumps(ids, protocol=pickle.HIGHEST_PROTOCOL)

    def __getstate__(self) -> dict[str, Any]:
        blobs = self._blobs
        return {"span": self.span,
                "buckets": {b: blobs.get(b) or ids for b, ids in self._buckets.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.span = state["span"]
        self._buckets, self._blobs, self._all = {}, {}, set()
        for b, ids in state["buckets"].items():
            if isinstance(ids, bytes):
                self._blobs[b] = ids
                ids = pickle.loads(ids)  # noqa: S301 - our own recovery snapshot
            self._buckets[b] = ids
            self._all.update(ids)
