"""An independent, batch, plain-Python computation of rewards and projections.

It shares no code with the dataflow's join or projections: it sorts each agent's accepted
events by event time and walks them once. Lateness is decided by a threshold of 30 minutes
behind the agent's newest accepted event, which classifies the test stream's two-hour-late
events and none of its in-order events (their jitter is below a second), whatever the
interleaving of topics the dataflow sees.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from pydantic import ValidationError

from dataflows.reward_model import RewardModel
from schemas.events import parse_event
from schemas.kinds import FEEDBACK_KINDS, TERMINAL_SIGNALS
from schemas.projections import WINDOWS

RANK = {"DecisionMade": 1, "FeedbackGiven": 2, "SignalObserved": 2}


def reference(stream: list[tuple[str, bytes]], model: RewardModel, window: float,
              lateness: float, history_length: int, half_life: float) -> dict[str, Any]:
    counts = defaultdict(int)
    seen: set[Any] = set()
    newest: dict[str, float] = {}
    per_agent: dict[str, list[Any]] = defaultdict(list)
    for _topic, raw in stream:
        counts["in"] += 1
        try:
            ev = parse_event(raw)
        except ValidationError:
            counts["dlq"] += 1
            continue
        if ev.event_id in seen:
            counts["duplicates"] += 1
            continue
        ts = ev.ts.timestamp()
        if ev.agent_id in newest and ts < newest[ev.agent_id] - 1800:
            counts["late"] += 1
            continue
        seen.add(ev.event_id)
        newest[ev.agent_id] = max(newest.get(ev.agent_id, ts), ts)
        per_agent[ev.agent_id].append(ev)

    rewards: dict[str, tuple[float, str]] = {}
    agents: dict[str, Any] = {}
    for agent, evs in per_agent.items():
        evs.sort(key=lambda e: (e.ts.timestamp(), RANK[e.type], str(e.event_id)))
        decisions: dict[str, dict[str, Any]] = {}
        closed: list[tuple[float, dict[str, Any], float]] = []

        def close(d: dict[str, Any], at: float,
                  closed: list[tuple[float, dict[str, Any], float]] = closed) -> None:
            d["closed"] = at
            if not d["signals"]:
                r = model.default_reward
            else:
                by_kind: dict[str, list[float]] = defaultdict(list)
                for k, v in d["signals"]:
                    by_kind[k].append(model.component(k, v))
                total = 0.0
                for k in sorted(by_kind):
                    scope = model.explicit_weight if k in FEEDBACK_KINDS else \
                        model.implicit_weight
                    total += scope * model.kinds[k].weight * (sum(by_kind[k]) / len(by_kind[k]))
                r = max(-1.0, min(1.0, total))
            closed.append((at, d, r))
            rewards[d["id"]] = (r, d["by"])

        def expire(upto: float, inclusive: bool,
                   decisions: dict[str, dict[str, Any]] = decisions) -> None:
            due = sorted((d["ts"] + window, d["id"]) for d in decisions.values()
                         if d["closed"] is None and (d["ts"] + window < upto or
                                                     (inclusive and d["ts"] + window <= upto)))
            for at, did in due:
                decisions[did]["by"] = "timeout"
                close(decisions[did], at)

        max_d = max_s = -math.inf
        for ev in evs:
            ts = ev.ts.timestamp()
            expire(ts, inclusive=True)
            if ev.type == "DecisionMade":
                max_d = max(max_d, ts)
                counts["decisions"] += 1
                decisions[str(ev.decision_id)] = {"id": str(ev.decision_id), "ts": ts,
                                                  "user": ev.user_id, "action": ev.action,
                                                  "bucket": ev.bucket, "signals": [],
                                                  "closed": None, "by": None}
                continue
            max_s = max(max_s, ts)
            if ev.decision_id is not None:
                d = decisions.get(str(ev.decision_id))
                if d is None:
                    counts["dlq"] += 1
                    continue
            else:
                cands = [x for x in decisions.values()
                         if x["user"] == ev.user_id and x["ts"] <= ts < x["ts"] + window]
                if not cands:
                    counts["dlq"] += 1
                    continue
                d = max(cands, key=lambda x: x["ts"])
            if d["closed"] is not None:
                counts["late"] += 1
                continue
            counts["joined"] += 1
            d["signals"].append((ev.kind, ev.value))
            if ev.type == "FeedbackGiven" or ev.kind in TERMINAL_SIGNALS:
                d["by"] = "feedback" if ev.type == "FeedbackGiven" else "terminal"
                close(d, ts)
        expire(min(max_d, max_s) - lateness, inclusive=True)
        agents[agent] = _projections(closed, history_length, half_life)
    return {"counts": dict(counts), "rewards": rewards, "agents": agents}


def _projections(closed: list[tuple[float, dict[str, Any], float]], history_length: int,
                 half_life: float) -> dict[str, Any]:
    closed.sort(key=lambda c: c[0])  # close times never go backwards; stable within ties
    n = len(closed)
    total = sum(r for _, _, r in closed)
    windows: dict[str, dict[int, list[float]]] = {}
    for w, (length, width) in WINDOWS.items():
        rows: dict[int, list[float]] = {}
        for at, d, r in closed:
            row = rows.setdefault(int(at) // width * width, [0, 0, 0, 0.0, 0])
            row[0] += 1
            row[1] += r > 0
            row[2] += r < 0
            row[3] += r
            row[4] += bool(d["signals"])
        last = int(closed[-1][0]) // width * width if closed else 0
        windows[w] = {s: row for s, row in rows.items() if s >= last - length}
    rel: dict[str, list[float]] = {}
    for at, d, r in closed:
        cur = rel.get(d["user"])
        if cur is None:
            rel[d["user"]] = [1, r, r, at]
        else:
            cur[2] = cur[2] * 0.5 ** (max(0.0, at - cur[3]) / half_life) + r
            cur[0] += 1
            cur[1] += r
            cur[3] = at
    per_action: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_bucket: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for _, d, r in closed:
        per_action[d["action"]][0] += 1
        per_action[d["action"]][1] += r > 0
        per_bucket[d["bucket"]][d["action"]][0] += 1
        per_bucket[d["bucket"]][d["action"]][1] += r > 0
    return {
        "interactions": n, "mean_reward": total / n if n else 0.0,
        "last_reward_at": closed[-1][0] if closed else None, "windows": windows,
        "relationships": rel, "recent": [d["id"] for _, d, _ in closed[-history_length:]],
        "per_action": {a: list(v) for a, v in per_action.items()},
        "per_bucket": {b: {a: list(v) for a, v in acts.items()} for b, acts in per_bucket.items()},
    }
