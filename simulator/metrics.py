"""Learning-speed measures over life-world records (shared by the demos and the benchmark).

**Interactions until 80% of the oracle**: for one person, the smallest ``t`` such that over
that person's decisions ``t-k+1 .. t`` (``k = 4``, one simulated day) the summed expected
acceptance of the chosen actions is at least 0.8 times the oracle's summed expected
acceptance in the same states; ``None`` (reported as "not reached") if it never happens.
Expected acceptances (the hidden probabilities), not draws, so the measure has no
Accept/Ignore noise.

>>> recs = [{"person_id": "p", "slot": t, "expected": e, "oracle_expected": 0.9}
...         for t, e in enumerate([0.1, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9])]
>>> interactions_to_target(recs)
{'p': 5}
>>> summarize_hits({"p": 6, "q": None}, horizon=10)["median"]
8.5
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Decisions per window (one simulated day) and the share of the oracle to reach.
WINDOW = 4
TARGET = 0.8


def interactions_to_target(records: list[dict[str, Any]], window: int = WINDOW,
                           target: float = TARGET) -> dict[str, int | None]:
    """Per person: first ``t`` (1-based) whose last ``window`` decisions reach ``target``."""
    by_person: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_person.setdefault(r["person_id"], []).append(r)
    out: dict[str, int | None] = {}
    for pid, recs in by_person.items():
        recs.sort(key=lambda r: r["slot"])
        exp = np.array([r["expected"] for r in recs])
        orc = np.array([r["oracle_expected"] for r in recs])
        hit = None
        for t in range(window, len(recs) + 1):
            if exp[t - window:t].sum() >= target * orc[t - window:t].sum():
                hit = t
                break
        out[pid] = hit
    return out


def summarize_hits(hits: Mapping[str, int | None], horizon: int) -> dict[str, Any]:
    """Median, mean, max, share within 8 and "not reached" (counted as ``horizon + 1``)."""
    vals = [h if h is not None else horizon + 1 for h in hits.values()]
    return {
        "median": float(statistics.median(vals)) if vals else None,
        "mean": float(np.mean(vals)) if vals else None,
        "max": max(vals) if vals else None,
        "within_8": float(np.mean([v <= 8 for v in vals])) if vals else None,
        "not_reached": int(sum(h is None for h in hits.values())),
        "people": len(vals),
    }
