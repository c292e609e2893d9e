"""Shared pieces of the learning benchmark: the update timer and Vowpal Wabbit helpers."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["VW_ARGS", "Timer", "sample", "vw_workspace"]


class Timer:
    """Accumulated seconds and calls of the learner's update path."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else float("nan")


# -- Vowpal Wabbit ------------------------------------------------------------------------------
VW_ARGS = "--cb_explore_adf --epsilon 0.1 -q UA --quiet"


def vw_workspace(args: str) -> Any:
    import vowpalwabbit

    return vowpalwabbit.Workspace(args)


def vw_learn(vw: Any, timer: Timer, ex: Sequence[str], i: int, p: float,
             reward: float) -> None:
    """Teach ``vw`` one cb_explore_adf example: action ``i`` (line ``i + 1`` after the shared
    line) was chosen with probability ``p`` and earned ``reward`` (VW takes a cost)."""
    labelled = list(ex)
    labelled[i + 1] = f"0:{-reward}:{p} {ex[i + 1]}"
    t0 = time.perf_counter()
    vw.learn(labelled)
    timer.seconds += time.perf_counter() - t0
    timer.calls += 1


def sample(pmf: Sequence[float], rng: random.Random) -> int:
    total = float(sum(pmf))
    r = rng.random() * total
    acc = 0.0
    for i, p in enumerate(pmf):
        acc += p
        if r < acc:
            return i
    return len(pmf) - 1
