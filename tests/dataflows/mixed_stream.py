"""A seeded stream of mixed events for exactness tests.

Decisions with explicit feedback, implicit signals (with and without decision_id), terminal
signals, no signal at all (timeouts); plus exact duplicates, late events (two hours old),
out-of-order jitter (< 0.5 s), garbage and signals for unknown decisions. Each agent ends
with a flush decision and signal far in the future so every real decision closes.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import DecisionMade, FeedbackGiven, SignalObserved, dump_event
from schemas.topics import Topics

T0 = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
IMPLICIT = ["reply_latency_ms", "message_length", "sentiment", "reaction", "reinvite"]


def _ts(x: float) -> datetime:
    return datetime.fromtimestamp(x, UTC)


def _value(kind: str, rng: random.Random) -> float:
    if kind == "reply_latency_ms":
        return rng.uniform(0, 120_000)
    if kind == "message_length":
        return float(rng.randint(0, 600))
    if kind in ("sentiment", "reaction"):
        return rng.uniform(-1, 1)
    return 1.0


def mixed_stream(topics: Topics, n_decisions: int = 30_000, agents: int = 40,
                 users: int = 15, seed: int = 5, window: float = 600.0
                 ) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs in production order."""
    rng = random.Random(seed)

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    timed: list[tuple[float, str, Any]] = []
    actions = ["a", "b", "c", "d"]
    t = T0
    for i in range(n_decisions):
        t += rng.uniform(0.01, 0.1)
        agent = f"ag{rng.randrange(agents)}"
        user = f"u{rng.randrange(users)}"
        d = DecisionMade(event_id=uid(), decision_id=uid(), agent_id=agent, user_id=user,
                         action=rng.choice(actions), propensity=0.25, explored=False,
                         policy_version=0, bucket=f"slot={i % 3}", ts=_ts(t))
        timed.append((t, topics.decisions, d))
        r = rng.random()
        if r < 0.35:
            kind = rng.choice(["thumbs", "rating", "accept", "ignore", "more_like_this"])
            val = float(rng.randint(1, 5)) if kind == "rating" else rng.choice([-1.0, 1.0])
            ft = t + rng.uniform(1, 120)
            timed.append((ft, topics.signals, FeedbackGiven(
                event_id=uid(), decision_id=d.decision_id, agent_id=agent, user_id=user,
                kind=kind, value=val, ts=_ts(ft))))  # type: ignore[arg-type]
        elif r < 0.75:
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(IMPLICIT)
                st = t + rng.uniform(0.5, window * 0.6)
                timed.append((st, topics.signals, SignalObserved(
                    event_id=uid(), decision_id=d.decision_id if rng.random() < 0.5 else None,
                    agent_id=agent, user_id=user, kind=kind, value=_value(kind, rng),
                    ts=_ts(st))))  # type: ignore[arg-type]
        elif r < 0.85:
            st = t + rng.uniform(1, 300)
            timed.append((st, topics.signals, SignalObserved(
                event_id=uid(), decision_id=d.decision_id, agent_id=agent, user_id=user,
                kind=rng.choice(["session_end", "abandonment"]), value=1.0, ts=_ts(st))))
    # Flush: far-future decision + signal per agent closes every real decision.
    end = t + 3 * window
    for a in range(agents):
        agent = f"ag{a}"
        d = DecisionMade(event_id=uid(), decision_id=uid(), agent_id=agent, user_id="flush",
                         action="a", propensity=1.0, explored=False, policy_version=0,
                         bucket="flush", ts=_ts(end))
        timed.append((end, topics.decisions, d))
        timed.append((end, topics.signals, SignalObserved(
            event_id=uid(), decision_id=d.decision_id, agent_id=agent, user_id="flush",
            kind="sentiment", value=0.0, ts=_ts(end))))
    # Production order: event time plus jitter below the allowed lateness.
    timed.sort(key=lambda x: x[0] + rng.uniform(0, 0.4))
    out: list[tuple[str, bytes]] = []
    for i, (_, topic, ev) in enumerate(timed):
        payload = dump_event(ev)
        out.append((topic, payload))
        if i > 2000 and i < len(timed) - 2 * agents:
            r = rng.random()
            if r < 0.03:  # exact duplicate, a little later
                out.append((topic, payload))
            elif r < 0.04 and isinstance(ev, SignalObserved):  # two hours late
                late = ev.model_copy(update={"event_id": uid(),
                                             "ts": ev.ts - timedelta(hours=2)})
                out.append((topic, dump_event(late)))
            elif r < 0.045:
                out.append((topics.signals, b'{"type": "SignalObserved", "value": "x"}'))
            elif r < 0.05 and isinstance(ev, SignalObserved):  # unknown decision
                bad = ev.model_copy(update={"event_id": uid(), "decision_id": uid()})
                out.append((topic, dump_event(bad)))
    return out
