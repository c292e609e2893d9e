# cython: language_level=3, boundscheck=False, wraparound=False
"""An agent's projections, compiled: :class:`NativeProjections`, step 4 of
``docs/agent-core.md``.

The same state, arithmetic and documents as :class:`dataflows.projections.Projections` (the
reference; its docstring says what each projection is), as a typed extension class: what the
native join (:mod:`dataflows.agent_native`) folds each closed reward into and builds its
Redis documents from. ``tests/dataflows/test_differential.py`` compares the documents of the
two joins as bytes.
"""

from collections import deque

from libc.math cimport pow

import orjson

from dataflows.projections import history_doc, history_json, iso, relationship_doc
from schemas.projections import WINDOWS

cdef tuple _WINDOWS = tuple((w, length, width) for w, (length, width) in WINDOWS.items())


cdef str _iso(object ts):
    return iso(ts) if ts is not None else None


cdef dict _totals(str window, dict buckets, double as_of, long length, long width):
    """:func:`schemas.projections.window_totals` (the same sums, in the same order)."""
    cdef long end = (<long>as_of // width + 1) * width
    cdef long start = end - length
    cdef long count = 0, pos = 0, neg = 0, engaged = 0, s
    cdef double total = 0.0
    for key, r in buckets.items():
        s = key
        if start <= s < end:
            count += <long>r[0]
            pos += <long>r[1]
            neg += <long>r[2]
            total += r[3]
            engaged += <long>r[4]
    return {
        "window": window, "start": iso(start), "end": iso(end),
        "count": count, "positive": pos, "negative": neg,
        "mean_reward": round(total / count, 9) if count else 0.0,
        "engagement": round(engaged / count, 9) if count else 0.0,
        "success_rate": round(pos / count, 9) if count else 0.0,
    }


cdef class NativeProjections:
    """Projection state of one agent (see :class:`dataflows.projections.Projections`)."""

    cdef public long history_length
    cdef public double half_life
    cdef public long interactions
    cdef public double reward_sum
    cdef public object last_reward_ts
    cdef public dict windows, relationships, per_action, per_bucket
    cdef public object recent
    cdef public set touched_users
    cdef object _recent_cache

    def __init__(self, long history_length=20, double half_life=7 * 86400.0):
        self.history_length, self.half_life = history_length, half_life
        self.interactions = 0
        self.reward_sum = 0.0
        self.last_reward_ts = None
        self.windows = {w: {} for w in WINDOWS}
        self.relationships = {}
        self.recent = deque(maxlen=history_length)
        self.per_action, self.per_bucket = {}, {}
        self.touched_users = set()
        self._recent_cache = None

    def apply(self, *, str user_id, str decision_id, str action, str bucket, double reward,
              bint engaged, double close_ts, close_iso=None):
        """Fold one closed reward into every projection."""
        cdef long pos = 1 if reward > 0 else 0, neg = 1 if reward < 0 else 0
        cdef long eng = 1 if engaged else 0
        cdef long t = <long>close_ts, start, length, width
        cdef dict buckets
        cdef list row, rel
        self.interactions += 1
        self.reward_sum += reward
        self.last_reward_ts = close_ts
        for w, length, width in _WINDOWS:
            start = t // width * width
            buckets = self.windows[w]
            row = buckets.get(start)
            if row is None:
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
        cdef double decay = pow(0.5, max(0.0, close_ts - rel[3]) / self.half_life)
        rel[0] += 1
        rel[1] += reward
        rel[2] = rel[2] * decay + reward
        rel[3] = close_ts
        self.touched_users.add(user_id)
        entry = {"decision_id": decision_id, "action": action, "bucket": bucket,
                 "reward": reward, "ts": close_iso if close_iso is not None else iso(close_ts)}
        cache = self._recent_json()
        self.recent.append(entry)
        cache.append(orjson.dumps(entry))
        cdef long success = 1 if reward > 0 else 0
        pa = self.per_action.get(action)
        if pa is None:
            pa = self.per_action[action] = [0, 0]
        pa[0] += 1
        pa[1] += success
        acts = self.per_bucket.get(bucket)
        if acts is None:
            acts = self.per_bucket[bucket] = {}
        pb = acts.get(action)
        if pb is None:
            pb = acts[action] = [0, 0]
        pb[0] += 1
        pb[1] += success

    def relationship_doc(self, str user_id):
        return relationship_doc(user_id, self.relationships[user_id])

    def docs(self, double as_of, bint full=True):
        """The ``summary`` fields and, when ``full``, each window and ``history``."""
        out = {
            "interactions": self.interactions,
            "mean_reward": round(self.reward_sum / self.interactions, 9)
            if self.interactions else 0.0,
            "last_reward_at": _iso(self.last_reward_ts),
        }
        if not full:
            return out
        out.update(self.window_docs(as_of))
        out["history"] = history_doc(self.recent, self.per_action, self.per_bucket)
        return out

    cdef object _recent_json(self):
        cache = self._recent_cache
        if cache is None or len(cache) != len(self.recent):
            cache = self._recent_cache = deque((orjson.dumps(e) for e in self.recent),
                                               maxlen=self.history_length)
        return cache

    def window_docs(self, double as_of):
        """The window documents."""
        cdef dict out = {}, buckets, agg
        for w, length, width in _WINDOWS:
            buckets = self.windows[w]
            agg = _totals(w, buckets, as_of, length, width)
            agg["buckets"] = {str(s): row for s, row in sorted(buckets.items())}
            out[w] = agg
        return out

    def history_json(self):
        """The history document's JSON, with each recent entry's JSON cached."""
        return history_json(self._recent_json(), self.per_action, self.per_bucket)

    def take_touched_users(self):
        users = sorted(self.touched_users)
        self.touched_users.clear()
        return users

    def __reduce__(self):
        return (_restore, ({
            "history_length": self.history_length, "half_life": self.half_life,
            "interactions": self.interactions, "reward_sum": self.reward_sum,
            "last_reward_ts": self.last_reward_ts, "windows": self.windows,
            "relationships": self.relationships, "recent": list(self.recent),
            "per_action": self.per_action, "per_bucket": self.per_bucket,
            "touched_users": self.touched_users},))


def _restore(dict s):
    p = NativeProjections(s["history_length"], s["half_life"])
    p.interactions, p.reward_sum = s["interactions"], s["reward_sum"]
    p.last_reward_ts, p.windows = s["last_reward_ts"], s["windows"]
    p.relationships, p.per_action, p.per_bucket = (s["relationships"], s["per_action"],
                                                   s["per_bucket"])
    p.recent.extend(s["recent"])
    p.touched_users = s["touched_users"]
    return p
