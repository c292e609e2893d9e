"""Per-agent projections: summary, windowed aggregates, relationships, behaviour history.

Pure and picklable. Every closed reward is applied in close order (close times never go
backwards, see :mod:`dataflows.agent_state`), so the result is a function of the events
alone. Windows are bucketed by close time; a window is the sum of its buckets up to the
agent's event-time clock (:func:`schemas.projections.window_totals`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.projections import WINDOWS, window_totals

#: ts -> ISO string of the times snapshots format again and again: window bounds, reward
#: close times (the summary's and relationships' last), watermarks (shared tick floors).
_ISO: dict[float, str] = {}


def iso(ts: float) -> str:
    """``datetime.fromtimestamp(ts, UTC).isoformat()``, memoized (for values that repeat)."""
    s = _ISO.get(ts)
    if s is None:
        if len(_ISO) >= 50_000:  # (a few MB; most entries are read within seconds)
            _ISO.clear()
        s = _ISO[ts] = datetime.fromtimestamp(ts, UTC).isoformat()
    return s


def _iso(ts: float | None) -> str | None:
    """:func:`iso` of a reward's close time (a snapshot formats it again and again), or None."""
    return iso(ts) if ts is not None else None


def relationship_doc(user_id: str, rel: list[float]) -> dict[str, Any]:
    """The relationship document of ``rel``: ``[interactions, reward_sum, strength,
    last_ts]`` (the projections' row of one user)."""
    n, total, strength, last = rel
    return {"user_id": user_id, "interactions": int(n),
            "mean_reward": round(total / n, 9) if n else 0.0,
            "strength": round(strength, 9), "last_ts": _iso(last)}


def _action_stats(per_action: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    return {a: {"count": c, "success": s} for a, (c, s) in per_action.items()}


def history_doc(recent: Iterable[dict[str, Any]], per_action: dict[str, list[int]],
                per_bucket: dict[str, dict[str, list[int]]]) -> dict[str, Any]:
    """The history document: recent outcomes, and success per action and per bucket."""
    return {"recent": list(recent), "per_action": _action_stats(per_action),
            "per_bucket": {b: _action_stats(acts) for b, acts in per_bucket.items()}}


def history_json(recent_json: Iterable[bytes], per_action: dict[str, list[int]],
                 per_bucket: dict[str, dict[str, list[int]]]) -> bytes:
    """:func:`history_doc`'s JSON, from each recent outcome's JSON (serialized once)."""
    return b"".join((
        b'{"recent":[', b",".join(recent_json), b'],"per_action":',
        orjson.dumps(_action_stats(per_action)), b',"per_bucket":',
        orjson.dumps({b: _action_stats(acts) for b, acts in per_bucket.items()}), b"}"))


class Projections:
    """Projection state of one agent.

    >>> p = Projections(history_length=2, half_life=3600.0)
    >>> p.apply(user_id="u", decision_id="d1", action="a", bucket="*", reward=1.0,
    ...         engaged=True, close_ts=7200.0)
    >>> p.apply(user_id="u", decision_id="d2", action="b", bucket="*", reward=-0.5,
    ...         engaged=False, close_ts=10800.0)
    >>> p.interactions, p.reward_sum, round(p.relationships["u"][2], 3)
    (2, 0.5, 0.0)
    >>> p.docs(as_of=10800.0)["1h"]["count"]
    1
    """

    def __init__(self, history_length: int = 20, half_life: float = 7 * 86400.0) -> None:
        self.history_length = history_length
        self.half_life = half_life
        self.interactions = 0
        self.reward_sum = 0.0
        self.last_reward_ts: float | None = None
        #: window -> bucket start -> [count, positive, negative, reward_sum, engaged]
        self.windows: dict[str, dict[int, list[float]]] = {w: {} for w in WINDOWS}
        #: user -> [interactions, reward_sum, strength, last_ts]
        self.relationships: dict[str, list[float]] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=history_length)
        #: action -> [count, success]
        self.per_action: dict[str, list[int]] = {}
        #: bucket -> action -> [count, success]
        self.per_bucket: dict[str, dict[str, list[int]]] = {}
        self.touched_users: set[str] = set()

    def apply(
        self,
        *,
        user_id: str,
        decision_id: str,
        action: str,
        bucket: str,
        reward: float,
        engaged: bool,
        close_ts: float,
        close_iso: str | None = None,
    ) -> None:
        """Fold one closed reward into every projection (``close_iso``: ``close_ts`` as ISO
        8601, when the caller has it)."""
        self.interactions += 1
        self.reward_sum += reward
        self.last_reward_ts = close_ts
        pos, neg, eng = (1 if reward > 0 else 0), (1 if reward < 0 else 0), (1 if engaged else 0)
        t = int(close_ts)
        for w, (length, width) in WINDOWS.items():
            start = t // width * width
            buckets = self.windows[w]
            row = buckets.get(start)
            if row is None:
                # Close times never go backwards, so buckets only fall out of the window
                # when a new one starts.
                row = buckets[start] = [0, 0, 0, 0.0, 0]
                horizon = start - length
                for s in [s for s in buckets if s < horizon]:
                    del buckets[s]
            row[0] += 1
            row[1] += pos
            row[2] += neg
            row[3] += reward
            row[4] += eng
        rel = self.relationships.get(user_id)
        if rel is None:
            rel = self.relationships[user_id] = [0, 0.0, 0.0, close_ts]
        decay = math.pow(0.5, max(0.0, close_ts - rel[3]) / self.half_life)
        rel[0] += 1
        rel[1] += reward
        rel[2] = rel[2] * decay + reward
        rel[3] = close_ts
        self.touched_users.add(user_id)
        success = 1 if reward > 0 else 0
        entry = {"decision_id": decision_id, "action": action, "bucket": bucket,
                 "reward": reward, "ts": close_iso if close_iso is not None else _iso(close_ts)}
        cache = self._recent_json()  # before the append: a rebuilt cache must not have it
        self.recent.append(entry)
        cache.append(orjson.dumps(entry))
        pa = self.per_action.setdefault(action, [0, 0])
        pa[0] += 1
        pa[1] += success
        pb = self.per_bucket.setdefault(bucket, {}).setdefault(action, [0, 0])
        pb[0] += 1
        pb[1] += success

    def relationship_doc(self, user_id: str) -> dict[str, Any]:
        return relationship_doc(user_id, self.relationships[user_id])

    def docs(self, as_of: float, full: bool = True) -> dict[str, Any]:
        """JSON-able documents: ``summary`` fields and, when ``full``, one per window and
        ``history``."""
        out: dict[str, Any] = {
            "interactions": self.interactions,
            "mean_reward": round(self.reward_sum / self.interactions, 9)
            if self.interactions else 0.0,
            "last_reward_at": _iso(self.last_reward_ts),
        }
        if not full:
            return out
        for w, buckets in self.windows.items():
            agg = window_totals(w, buckets, as_of, iso)
            agg["buckets"] = {str(s): row for s, row in sorted(buckets.items())}
            out[w] = agg
        out["history"] = history_doc(self.recent, self.per_action, self.per_bucket)
        return out

    def _recent_json(self) -> deque[bytes]:
        """The JSON of each ``recent`` entry, serialized once (a cache, not state)."""
        cache: deque[bytes] | None = self.__dict__.get("_recent_cache")
        if cache is None or len(cache) != len(self.recent):
            cache = self._recent_cache = deque((orjson.dumps(e) for e in self.recent),
                                               maxlen=self.history_length)
        return cache

    def window_docs(self, as_of: float) -> dict[str, dict[str, Any]]:
        """The window documents (as in :meth:`docs`)."""
        out = {}
        for w, buckets in self.windows.items():
            agg = window_totals(w, buckets, as_of, iso)
            agg["buckets"] = {str(s): row for s, row in sorted(buckets.items())}
            out[w] = agg
        return out

    def history_json(self) -> bytes:
        """``orjson.dumps(self.docs(...)["history"])``, with each recent entry's JSON cached.

        >>> p = Projections(history_length=2)
        >>> for i in range(3):
        ...     p.apply(user_id="u", decision_id=f"d{i}", action="a", bucket="*",
        ...             reward=0.5, engaged=True, close_ts=60.0 * i)
        >>> p.history_json() == orjson.dumps(p.docs(as_of=120.0)["history"])
        True
        """
        return history_json(self._recent_json(), self.per_action, self.per_bucket)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_recent_cache", None)  # rebuilt on demand
        return state

    def take_touched_users(self) -> list[str]:
        users = sorted(self.touched_users)
        self.touched_users.clear()
        return users
