"""Linear contextual scoring: per-action slopes on numeric context features.

An agent that declares ``features`` (numeric context keys, see
:class:`schemas.agent.AgentSpec`) keeps its value table per context bucket and action, and
learns on top of it how each action's reward moves with the features::

    score(a | bucket b, x) = base[b][a] + w[a] . (x - xbar[b][a])

* ``w[a]`` is the ridge-regression slope of ``a``'s reward on the features *within
  buckets*: every (bucket, action) cell is demeaned, features and rewards alike (the
  fixed-effects estimator), so what the bucket already explains is not learned twice and
  one slope per action pools the evidence of every bucket. The sufficient statistics are a
  Welford co-moment per action (``F x F`` scatter and ``F`` cross-moment), updated in
  O(F^2) per reward; the slope is one ``F x F`` solve when a document is built.
* ``base[b][a]`` is the cell's value as for a table (its mean reward with the learner's
  exploration bonus or prior), ``xbar[b][a]`` the mean feature vector of the cell's rewarded
  decisions: the score is the within-cell regression line through the cell's means. An
  action without rewards in the bucket is moved from the bucket's mean features
  (``center``). Only the slopes change with every reward; a bucket's entry changes with its
  own rewards, as a table's does.

The ridge penalty ``ridge`` (in squared feature units) shrinks slopes toward 0 until the
evidence is there, so a new agent scores like its value table. Features should be on
comparable scales (e.g. [0, 1]). A feature missing from a decision's context, or not a
number, reads as its cell's mean (it moves no statistic).

State is small and picklable (numpy arrays of ``F`` and ``F x F`` floats per action, ``F``
per cell); nothing is random.

>>> lin = LinearStats(["energy"], ridge=1.0)
>>> for x, r in [(0.2, -1.0), (0.8, 1.0), (0.3, -1.0), (0.9, 1.0)]:
...     lin.observe("day=mon", "work", lin.vector({"energy": x}), r)
>>> w = lin.weights()
>>> round(w["work"][0], 3)   # co-moment 1.2 / (scatter 0.37 + ridge 1); least squares 3.24
0.876
>>> lin.center("day=mon"), lin.cell_centers("day=mon")
([0.55], {'work': [0.55]})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from schemas.policy import feature_number

#: Ridge penalty (squared feature units; a feature spread evenly over [0, 1] adds 1/12 per
#: reward, so 5 weighs like about 60 rewards of evidence against a slope). Measured with
#: epsilon-greedy, 3 seeds x 15 people of the life world, week 4 / oracle with the meter
#: levels as features: ridge 1 -> 0.76-0.78, 10 -> 0.83-0.87 (the table alone: 0.86-0.90);
#: on a world whose best action flips with one feature (``tests/learner/test_linear.py``),
#: 400 decisions: ridge 1 -> 0.674 expected acceptance, 5 -> 0.650, 10 -> 0.641, table 0.489.
RIDGE = 5.0


class LinearStats:
    """Within-bucket regression statistics of reward on ``features``, per action.

    Parameters
    ----------
    features
        Names of the numeric context keys, in the order of every vector.
    ridge
        Ridge penalty of the slope fit.
    """

    def __init__(self, features: Sequence[str], ridge: float = RIDGE) -> None:
        self.features = tuple(features)
        self.ridge = float(ridge)
        f = len(self.features)
        self._eye = np.eye(f)
        #: bucket -> action -> [n, mean feature vector, mean reward]
        self.cells: dict[str, dict[str, list[Any]]] = {}
        #: action -> within-cell scatter of the features (F x F) and co-moment with reward (F)
        self.sxx: dict[str, np.ndarray] = {}
        self.sxr: dict[str, np.ndarray] = {}
        self._w: dict[str, list[float]] | None = None
        self._centers: dict[str, np.ndarray | None] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_eye")
        state.pop("_centers")
        state["_w"] = None  # derived
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._eye = np.eye(len(self.features))
        self._centers = {}

    def vector(self, context: Mapping[str, object]) -> tuple[float, ...]:
        """The features of a decision's context (``nan`` where missing or not a number).

        >>> LinearStats(["a", "b", "c"]).vector({"a": 1, "b": "x", "d": 2.0})
        (1.0, nan, nan)
        """
        out = []
        for f in self.features:
            v = feature_number(context.get(f))
            out.append(math.nan if v is None else v)
        return tuple(out)

    def observe(self, bucket: str, action: str, x: Sequence[float], reward: float,
                within: bool = True) -> None:
        """Fold one reward of ``action`` in ``bucket`` at features ``x`` into the cell's
        means and (``within``, for a real bucket, not the agent-wide one) the action's
        within-cell co-moments."""
        arms = self.cells.get(bucket)
        if arms is None:
            arms = self.cells[bucket] = {}
        cell = arms.get(action)
        f = len(self.features)
        if cell is None:
            cell = arms[action] = [0, np.zeros(f), 0.0]
        n, xbar, rbar = cell
        xv = np.asarray(x, dtype=float)
        missing = np.isnan(xv)
        if missing.any():
            xv = np.where(missing, xbar, xv)
        n1 = n + 1
        dx = xv - xbar
        dr = reward - rbar
        if within and n > 0:
            k = n / n1
            sxx = self.sxx.get(action)
            if sxx is None:
                sxx = self.sxx[action] = np.zeros((f, f))
                self.sxr[action] = np.zeros(f)
            sxx += k * np.outer(dx, dx)
            self.sxr[action] += k * dr * dx
        cell[0] = n1
        cell[1] = xbar + dx / n1
        cell[2] = rbar + dr / n1
        self._w = None
        self._centers.pop(bucket, None)

    def weights(self) -> dict[str, list[float]]:
        """Each action's ridge slope ``(S_xx + ridge I)^-1 S_xr`` (actions with no
        within-cell evidence are absent: their slope is 0)."""
        if self._w is None:
            names = list(self.sxx)
            if not names:
                self._w = {}
                return self._w
            a = np.stack([self.sxx[n] for n in names]) + self.ridge * self._eye
            b = np.stack([self.sxr[n] for n in names])[:, :, None]
            sol = np.linalg.solve(a, b)[:, :, 0].round(6).tolist()  # one batched solve
            self._w = dict(zip(names, sol, strict=True))
        return self._w

    def _center(self, bucket: str) -> np.ndarray | None:
        if bucket in self._centers:
            return self._centers[bucket]
        arms = self.cells.get(bucket)
        center = None
        if arms:
            n = np.array([cell[0] for cell in arms.values()], dtype=float)
            center = n @ np.stack([cell[1] for cell in arms.values()]) / n.sum()
        self._centers[bucket] = center
        return center

    def center(self, bucket: str) -> list[float] | None:
        """The mean feature vector of the bucket's rewarded decisions (``None`` if none)."""
        c = self._center(bucket)
        return None if c is None else c.round(6).tolist()

    def cell_centers(self, bucket: str) -> dict[str, list[float]]:
        """The mean feature vector of each action's rewarded decisions in ``bucket``."""
        arms = self.cells.get(bucket)
        if not arms:
            return {}
        rows = np.stack([c[1] for c in arms.values()]).round(6).tolist()
        return dict(zip(arms, rows, strict=True))

    def restore(self, weights: Mapping[str, Sequence[float]],
                buckets: Mapping[str, tuple[Mapping[str, Sequence[float]] | None,
                                            Mapping[str, int], Mapping[str, float]]]) -> None:
        """Start over from a published document (a rollback): its slopes come back exactly
        (as ridge pseudo-evidence: ``S_xr = ridge * w`` over an empty scatter), and so do
        its cells' counts, mean rewards and mean features (``buckets``: per bucket, the
        ``centers``, ``counts`` and ``values`` it published).

        >>> lin = LinearStats(["e"])
        >>> lin.restore({"work": [0.4]}, {"*": ({"work": [0.5]}, {"work": 3}, {"work": 0.2})})
        >>> lin.weights(), lin.center("*"), lin.cell_centers("*")
        ({'work': [0.4]}, [0.5], {'work': [0.5]})
        """
        f = len(self.features)
        self.cells, self.sxx, self.sxr, self._centers = {}, {}, {}, {}
        for a, w in weights.items():
            if len(w) == f:
                self.sxx[a] = np.zeros((f, f))
                self.sxr[a] = self.ridge * np.asarray(w, dtype=float)
        for b, (centers, counts, values) in buckets.items():
            at = centers or {}
            cells = {a: [n, np.asarray(at[a], dtype=float), float(values[a])]
                     for a, n in counts.items()
                     if n > 0 and a in values and len(at.get(a, ())) == f}
            if cells:
                self.cells[b] = cells
        self._w = None

    def strongest(self, weights: Mapping[str, Sequence[float]]) -> tuple[str, str, float] | None:
        """``(feature, action, slope)`` of the largest slope, for explanations.

        >>> LinearStats(["a", "b"]).strongest({"x": [0.1, -0.7], "y": [0.3, 0.0]})
        ('b', 'x', -0.7)
        """
        best: tuple[str, str, float] | None = None
        for a, w in weights.items():
            for f, v in zip(self.features, w, strict=False):
                if best is None or abs(v) > abs(best[2]):
                    best = (f, a, v)
        return best
