# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The agent's join, compiled: :class:`NativeAgentState`, step 3 of ``docs/agent-core.md``.

The same join as :class:`dataflows.agent_state.AgentState` (dedup, the event-time buffer
and watermark, open decisions, credit assignment, the reward model and closing), as a typed
extension class: its clocks are C doubles, its oldest open decision is found in a C++ set,
and its loops run without the interpreter. It calls back into Python for the learner
(:class:`~dataflows.join_types.LearnerCallbacks`, as the Python join does), the reward
model's transforms, the document set's assembly (:func:`~dataflows.agent_docs.snapshot_item`,
whose parts come from the compiled projections,
:class:`~dataflows.projections_native.NativeProjections`) and dead letters. The reward arithmetic and the ``RewardComputed`` dict (the layout of
:func:`dataflows.agent_layout.reward_event`) are its own. It implements
:class:`~dataflows.join_types.AgentCore`, and ``tests/dataflows/test_differential.py``
compares it with the Python join call by call, as bytes.

Its open decisions and dedup ids are the Python join's own containers
(:class:`~dataflows.open_decisions.OpenDecisions`, :class:`~dataflows.dedup.ExpiringIds`),
so that their bulk goes to the cold store as it does there and its recovery snapshots are
as small, and :mod:`dataflows.agent_compaction` runs on it unchanged.
"""

import heapq
import logging
import math
from datetime import UTC, datetime

from cython.operator cimport dereference as deref
from libcpp.pair cimport pair
from libcpp.set cimport set as cset
from libcpp.string cimport string

from dataflows.agent_compaction import COMPACT_EVERY, PRUNE_EVERY, compact, prune
from dataflows.agent_docs import snapshot_item
from dataflows.agent_layout import failed_letter, unjoined_letter
from dataflows.credit import UNATTRIBUTED, UNKNOWN
from dataflows.dedup import ExpiringIds
from dataflows.join_types import Emitted, derived_str
from dataflows.learner import make_learner
from dataflows.open_decisions import OpenDecisions
from dataflows.projections import iso
from dataflows.projections_native import NativeProjections
from schemas.events import EVENT_ADAPTER
from schemas.kinds import FEEDBACK_KINDS, TERMINAL_SIGNALS

log = logging.getLogger("rewardflow.dataflow")

cdef double INF = math.inf
cdef double NEG_INF = -math.inf

cdef dict _RANK = {"AgentUpserted": 0, "PolicyRollbackRequested": 0, "PriorAssigned": 0,
                   "DecisionMade": 1, "FeedbackGiven": 2, "SignalObserved": 2}
cdef frozenset _DECISION_STREAM = frozenset(
    {"AgentUpserted", "PolicyRollbackRequested", "PriorAssigned", "DecisionMade"})
cdef frozenset _TERMINAL = frozenset(TERMINAL_SIGNALS)


cdef inline str _uuid_str(object u):
    """``str(u)`` of a UUID, from its int (the same text, without ``UUID.__str__``)."""
    cdef str x = "%032x" % u.int
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"

# the open-decision record, as dataflows.agent_layout lays it out
cdef enum:
    _USER = 0
    _ACTION = 1
    _BUCKET = 2
    _TS = 3
    _TEMPLATE = 4
    _PROBE = 5
    _SUMS = 6
    _NSIG = 7
    _FEAT = 8


cdef class NativeAgentState:
    """Everything the dataflow keeps for one agent; see :mod:`dataflows.agent_state` for
    the semantics, which are the same."""

    cdef public str tenant, agent_id
    cdef public object template
    cdef public object learner
    cdef public object proj
    cdef public dict counts
    cdef public long seq
    cdef public object clock
    cdef public object publish_at
    cdef public double published_at
    cdef public double wm
    cdef public list buffer
    #: open decisions, and the dedup ids of events and of closed decisions: the Python
    #: join's own containers, so that they keep their bulk in the cold store the same way
    #: (and :mod:`dataflows.agent_compaction` runs on this class as on that one)
    cdef public object open
    cdef public object seen, closed
    cdef public dict by_user
    cdef object _cfg
    cdef double max_d, max_s, last_arrival
    cdef bint has_d, has_s
    cdef long pruned_at, compacted_at
    # the oldest open decision first (ts, id), as a heap of deadlines would order them
    cdef cset[pair[double, string]] deadlines
    # configuration, read once
    cdef double lateness, window, idle, horizon, interval
    cdef bint has_idle
    # the reward model: each kind's transform, and its weight times its scope's weight
    cdef dict transforms, weights
    cdef double default_reward
    cdef str model_version

    def __init__(self, str tenant, str agent_id, cfg):
        self.tenant, self.agent_id = tenant, agent_id
        self.cfg = cfg
        self.seq = self.pruned_at = self.compacted_at = 0
        self.counts = {"in": 0, "duplicates": 0, "late": 0, "dlq": 0, "decisions": 0,
                       "joined": 0, "agents": 0, "rewards": 0}
        self.seen = ExpiringIds.for_horizon(cfg.dedup_horizon)
        self.closed = ExpiringIds.for_horizon(cfg.dedup_horizon)
        self.open = OpenDecisions.for_window(cfg.window)
        self.buffer, self.by_user = [], {}
        self.max_d = self.max_s = NEG_INF
        self.has_d = self.has_s = False
        self.last_arrival = 0.0
        self.wm = NEG_INF
        self.clock = None
        self.published_at = NEG_INF
        self.publish_at = None
        self.template = None
        self.learner = make_learner(
            agent_id, tenant, None, epsilon_floor=cfg.epsilon_floor,
            epsilon_decay_count=cfg.epsilon_decay_count, every_n_rewards=cfg.every_n_rewards)
        self.proj = NativeProjections(cfg.history_length, cfg.half_life)

    @property
    def cfg(self):
        return self._cfg

    @cfg.setter
    def cfg(self, cfg):
        self._cfg = cfg
        self.lateness, self.window = cfg.lateness, cfg.window
        self.has_idle = cfg.idle is not None
        self.idle = cfg.idle if self.has_idle else 0.0
        self.horizon, self.interval = cfg.dedup_horizon, cfg.policy_interval
        model = cfg.reward_model
        self.transforms = {k: rule.transform for k, rule in model.kinds.items()}
        self.weights = {k: (model.explicit_weight if k in FEEDBACK_KINDS
                            else model.implicit_weight) * rule.weight
                        for k, rule in model.kinds.items()}
        self.default_reward, self.model_version = model.default_reward, model.version

    # -- clocks -------------------------------------------------------------------------
    cdef inline double _top(self):
        if self.has_d and self.has_s:
            return self.max_d if self.max_d > self.max_s else self.max_s
        return self.max_d if self.has_d else self.max_s

    @property
    def max_ts_any(self):
        return self._top() if (self.has_d or self.has_s) else None

    cdef double _watermark(self, double now, double input_last, double floor):
        cdef double wm = self.wm if self.wm > floor else floor
        cdef double low, last, idle_for, top
        if not (self.has_d or self.has_s):
            return wm
        if self.has_d and self.has_s:
            low = (self.max_d if self.max_d < self.max_s else self.max_s) - self.lateness
            if low > wm:
                wm = low
        if self.has_idle:
            last = self.last_arrival
            idle_for = now - (last if last >= input_last else input_last)
            if idle_for >= self.idle:
                top = self._top() + (idle_for - self.idle)
                if top > wm:
                    wm = top
        return wm

    def notify_at(self, double input_last=0.0, due=None):
        """Wall time of the idle fallback's next release, if no input comes first."""
        cdef double d, top
        if not self.has_idle or not (self.has_d or self.has_s):
            return None
        if due is None:
            due = self.next_due()
            if due is None:
                return None
        d, top = due, self._top()
        return max(self.last_arrival, input_last) + self.idle + max(0.0, d - top)

    cdef inline double _next_deadline(self):
        if self.deadlines.empty():
            return INF
        return deref(self.deadlines.begin()).first + self.window

    def next_due(self):
        """Event time of the next thing a watermark would release, close or publish."""
        cdef double due = self.buffer[0][0] if self.buffer else INF
        cdef double dl = self._next_deadline()
        if dl < due:
            due = dl
        if self.publish_at is not None and self.publish_at < due:
            due = self.publish_at
        return None if due == INF else due

    # -- input --------------------------------------------------------------------------
    def on_events(self, items, double now, double input_last=0.0, double floor=NEG_INF):
        """This agent's ``(agent key, event, meta, raw JSON)`` items of one activation; an
        event the join fails on goes to the dead letters (as the Python join does)."""
        out = Emitted()
        cdef list rewards = out.rewards, policies = out.policies, dead = out.dead
        cdef Py_ssize_t n_r, n_p, n_d
        cdef long late, dups, joined
        for _, event, meta, raw in items:
            n_r, n_p, n_d = len(rewards), len(policies), len(dead)
            late, dups, joined = out.late, out.duplicates, out.joined
            try:
                self.ingest(event, meta, now, input_last, out, floor, raw)
            except Exception as exc:
                del rewards[n_r:], policies[n_p:], dead[n_d:]
                out.late, out.duplicates, out.joined = late, dups, joined
                log.exception("step 'agent' failed on event %s", event.event_id)
                dead.append(failed_letter(event, meta, exc))
        return out

    def document(self, policies, full=True):
        """The agent's Redis document set (:func:`~dataflows.agent_docs.snapshot_item`)."""
        return snapshot_item(self, policies, full)

    def ingest(self, ev, meta, double now, double input_last=0.0, out=None,
               double floor=NEG_INF, raw=None):
        """Take one validated event (see :meth:`dataflows.agent_state.AgentState.ingest`)."""
        cdef double ts, at
        cdef int rank
        cdef str typ
        self.seq += 1
        self.counts["in"] += 1
        if out is None:
            out = Emitted()
        key = ev.event_id.int
        if key in self.seen:
            self.counts["duplicates"] += 1
            out.duplicates += 1
            return out
        ts = ev.ts.timestamp()
        typ = ev.type
        rank = _RANK[typ]
        if floor > self.wm:
            self._release(floor, out)
        if rank == 0 and ts >= self.wm - self.horizon:
            at = ts if ts >= self.wm else self.wm
        elif ts < self.wm or (len(meta) > 3 and meta[3] is not None
                              and ts < meta[3] - self.lateness):
            self.counts["late"] += 1
            out.late += 1
            return out
        else:
            at = ts
        self.seen.add(key, ts)
        if typ in _DECISION_STREAM:
            if not self.has_d or at > self.max_d:
                self.max_d = at
            self.has_d = True
        else:
            if not self.has_s or at > self.max_s:
                self.max_s = at
            self.has_s = True
        self.last_arrival = now
        heapq.heappush(self.buffer, (at, rank, key, ev, meta, raw))
        self._release(self._watermark(now, input_last, floor), out)
        return out

    def advance(self, double now, double input_last=0.0, double floor=NEG_INF):
        """Move the watermark by the wall clock or the tick watermark ``floor``."""
        out = Emitted()
        self._release(self._watermark(now, input_last, floor), out)
        return out

    def drain(self):
        """Apply everything buffered; publish a deferred version."""
        out = Emitted()
        cdef double wm = self.wm
        if self.has_d or self.has_s:
            top = self._top()
            if top > wm:
                wm = top
        self._release(wm, out)
        if self.publish_at is not None:
            self.seq += 1
            self._publish(self.publish_at, out, True)
        return out

    cdef void _release(self, double wm, object out) except *:
        cdef list buf = self.buffer
        cdef double nxt_ev, nxt_dl, pub
        cdef pair[double, string] first
        if wm <= self.wm:
            if not (buf and buf[0][0] <= wm):
                return
            wm = self.wm
        else:
            self.wm = wm
        while True:
            nxt_ev = buf[0][0] if buf else INF
            if self.deadlines.empty():
                nxt_dl = INF
            else:
                first = deref(self.deadlines.begin())
                nxt_dl = first.first + self.window
            if self.publish_at is not None:
                pub = self.publish_at
                if pub < nxt_ev and pub < nxt_dl and pub <= wm:
                    self.seq += 1
                    self._publish(pub, out, True)
                    continue
            if nxt_dl != INF and nxt_dl <= nxt_ev and nxt_dl <= wm:
                self.seq += 1
                self._close(first.second.decode(), nxt_dl, "timeout", out)
            elif nxt_ev <= wm:
                ts, _, _, ev, meta, _ = heapq.heappop(buf)
                self.seq += 1
                self.clock = ts if self.clock is None or ts > self.clock else self.clock
                self._apply(ev, ts, meta, out)
            else:
                break
        if self.seq - self.pruned_at >= PRUNE_EVERY:
            self.pruned_at = self.seq
            prune(self)
        if self.seq - self.compacted_at >= COMPACT_EVERY:
            self.compacted_at = self.seq
            compact(self)

    # -- join ---------------------------------------------------------------------------
    cdef void _apply(self, object ev, double ts, object meta, object out) except *:
        cdef str typ = ev.type
        if typ == "DecisionMade":
            did = _uuid_str(ev.decision_id)
            if did in self.open or did in self.closed:
                self.counts["duplicates"] += 1
                out.duplicates += 1
                return
            self.counts["decisions"] += 1
            p = ev.probe
            probe = (p.trait, p.delta) if p is not None else None
            self.open.add(did, [ev.user_id, ev.action, ev.bucket, ts,
                                ev.template or self.template, probe, {}, 0,
                                self.learner.feature_vector(ev.context)], ts)
            self.deadlines.insert(pair[double, string](ts, did.encode()))
            self.by_user[ev.user_id] = (ts, did)
        elif typ == "FeedbackGiven" or typ == "SignalObserved":
            self._join(ev, ts, meta, out)
        elif typ == "AgentUpserted":
            self.counts["agents"] += 1
            self.learner.set_spec(ev.spec)
            if ev.prior is not None:
                self.learner.set_prior(ev.prior)
            self.template = ev.spec.template
        elif typ == "PolicyRollbackRequested":
            self.counts["agents"] += 1
            self.learner.rollback(ev.policy, ts)
            self._publish(ts, out, True)
        elif typ == "PriorAssigned":
            self.counts["agents"] += 1
            if ev.template == self.template:
                self.learner.assign_prior(ev.prior)
                self._publish(ts, out, True)

    cdef void _join(self, object ev, double ts, object meta, object out) except *:
        cdef str did
        cdef bint is_open
        d = ev.decision_id
        if d is not None:
            did = _uuid_str(d)
            if did in self.open:
                is_open = True
            elif did in self.closed:
                is_open = False
            else:
                self._dead(ev, meta, UNKNOWN, out)
                return
        else:
            last = self.by_user.get(ev.user_id)
            if last is None or not (last[0] <= ts < last[0] + self.window):
                self._dead(ev, meta, UNATTRIBUTED, out)
                return
            did = last[1]
            is_open = did in self.open
        if not is_open:
            self.counts["late"] += 1
            out.late += 1
            return
        rec = self.open.touch(did)
        sums = rec[_SUMS]
        kind = ev.kind
        acc = sums.get(kind)
        if acc is None:
            acc = sums[kind] = [0.0, 0]
        transform = self.transforms.get(kind)  # RewardModel.component
        acc[0] += transform(ev.value) if transform is not None else 0.0
        acc[1] += 1
        rec[_NSIG] += 1
        self.counts["joined"] += 1
        out.joined += 1
        if ev.type == "FeedbackGiven":
            self._close(did, ts, "feedback", out)
        elif kind in _TERMINAL:
            self._close(did, ts, "terminal", out)

    cdef void _dead(self, object ev, object meta, str reason, object out) except *:
        self.counts["dlq"] += 1
        out.dead.append(unjoined_letter(self.tenant, ev, meta, reason))

    cdef void _close(self, str did, double close_ts, str closed_by, object out) except *:
        rec = self.open.pop(did)
        cdef double ts = rec[_TS]
        self.deadlines.erase(pair[double, string](ts, did.encode()))
        reward, parts = self._reward(rec[_SUMS])
        self.closed.add(did, ts)
        self.clock = close_ts if self.clock is None or close_ts > self.clock else self.clock
        self.counts["rewards"] += 1
        probe = rec[_PROBE]
        close_iso = iso(close_ts)
        out.rewards.append({  # agent_layout.reward_event
            "event_id": derived_str("reward", did), "tenant": self.tenant,
            "ts": close_iso, "schema_version": 1,
            "type": "RewardComputed", "decision_id": did, "agent_id": self.agent_id,
            "user_id": rec[_USER], "action": rec[_ACTION], "bucket": rec[_BUCKET],
            "decision_ts": datetime.fromtimestamp(ts, UTC).isoformat(),
            "reward": reward, "components": parts, "closed_by": closed_by,
            "n_signals": rec[_NSIG], "reward_model_version": self.model_version,
            "probe": {"trait": probe[0], "delta": probe[1]} if probe else None,
            "template": rec[_TEMPLATE],
        })
        self.proj.apply(user_id=rec[_USER], decision_id=did, action=rec[_ACTION],
                        bucket=rec[_BUCKET], reward=reward, engaged=rec[_NSIG] > 0,
                        close_ts=close_ts, close_iso=close_iso)
        self.learner.update(rec[_BUCKET], rec[_ACTION], reward, close_ts, probe=probe,
                            features=rec[_FEAT] if len(rec) > _FEAT else None)
        self._publish(close_ts, out, False)

    cdef tuple _reward(self, dict sums):
        """:meth:`dataflows.reward_model.RewardModel.reward` of a decision's signal sums
        (the same arithmetic, in the same order)."""
        cdef double total = 0.0, c
        cdef dict parts = {}
        if not sums:
            return self.default_reward, parts
        weights = self.weights
        for kind in sorted(sums):
            s, n = sums[kind]
            w = weights.get(kind)
            if w is None or n == 0:
                continue
            c = w * (s / n)
            parts[kind] = round(c, 9)
            total += c
        return max(-1.0, min(1.0, round(total, 9))), parts

    cdef void _publish(self, double ts, object out, bint deferred) except *:
        if not deferred and self.interval > 0 and ts < self.published_at + self.interval:
            if self.publish_at is None:
                self.publish_at = self.published_at + self.interval
            return
        self.publish_at = None
        doc = self.learner.maybe_publish()
        if doc is not None:
            out.policies.append(doc)
            self.published_at = ts

    # -- recovery -----------------------------------------------------------------------
    def __reduce__(self):
        state = {
            "tenant": self.tenant, "agent_id": self.agent_id, "template": self.template,
            "learner": self.learner, "proj": self.proj, "counts": self.counts,
            "seq": self.seq, "pruned_at": self.pruned_at, "compacted_at": self.compacted_at,
            "clock": self.clock,
            "publish_at": self.publish_at, "published_at": self.published_at, "wm": self.wm,
            # buffered events as their JSON, validated again on restore
            "buffer": [(ts, rank, key, None, meta,
                        raw if raw is not None else ev.model_dump_json().encode())
                       for ts, rank, key, ev, meta, raw in self.buffer],
            "open": self.open, "by_user": self.by_user, "seen": self.seen,
            "closed": self.closed, "max_d": self.max_d if self.has_d else None,
            "max_s": self.max_s if self.has_s else None, "last_arrival": self.last_arrival,
        }
        return (_restore, (state,))

    cdef _restored(self, dict s):
        self.tenant, self.agent_id, self.template = s["tenant"], s["agent_id"], s["template"]
        self.learner, self.proj, self.counts = s["learner"], s["proj"], s["counts"]
        self.seq, self.pruned_at, self.clock = s["seq"], s["pruned_at"], s["clock"]
        self.compacted_at = s["compacted_at"]
        self.publish_at, self.published_at, self.wm = (s["publish_at"], s["published_at"],
                                                       s["wm"])
        validate = EVENT_ADAPTER.validate_json
        self.buffer = [(ts, rank, key, validate(raw), meta, raw)
                       for ts, rank, key, _, meta, raw in s["buffer"]]
        self.open, self.by_user, self.seen, self.closed = (s["open"], s["by_user"],
                                                           s["seen"], s["closed"])
        for did in self.open:
            self.deadlines.insert(pair[double, string](self.open[did][_TS], did.encode()))
        self.has_d, self.has_s = s["max_d"] is not None, s["max_s"] is not None
        self.max_d = s["max_d"] if self.has_d else NEG_INF
        self.max_s = s["max_s"] if self.has_s else NEG_INF
        self.last_arrival = s["last_arrival"]
        self.lateness = self.window = self.idle = self.horizon = self.interval = 0.0


def _restore(dict state):
    """A :class:`NativeAgentState` from its pickle (its ``cfg`` is set again after, as the
    flow does for every restored agent)."""
    cdef NativeAgentState st = NativeAgentState.__new__(NativeAgentState)
    st._restored(state)
    return st
