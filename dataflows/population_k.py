"""How many archetypes a population has, and which agent belongs to which (pure numpy).

An agent's value table is evidence, not a point: per (bucket, action) cell a mean reward in
[-1, 1] over ``n`` rewards. Everything here reads it that way, as the learner does when it
weighs archetypes (:func:`schemas.priors.archetype_loglik`): a reward ``r`` is a success
fraction ``(r + 1) / 2`` of a Bernoulli whose probability under an archetype is
``(v + 1) / 2``, so a cell counts as much as the rewards behind it and an empty cell not
at all (no pull toward the population mean as with shrunk vectors).

* :func:`centres`: an archetype's value of a cell is its members' rewards pooled (an agent
  weighs as much as its rewards), shrunk by ``shrink`` pseudo-rewards toward the population
  mean of the cell (:func:`population_mean`).
* :func:`cluster`: seeded k-means++ with that likelihood as the distance (classification EM of
  a Bernoulli mixture), the best of ``n_init`` restarts (run side by side) whose clusters all
  have at least ``min_size`` agents (:func:`min_cluster_size`).
* :func:`choose_k`: ``k`` by cross-validated predictive log-likelihood: agents are held out
  (one at a time up to :data:`LOO_MAX` agents, else ``folds`` seeded folds), clusters are
  fitted on the others, and each held-out agent is scored under the mixture of the resulting
  archetypes weighted by size: the prior a new agent starts from. A split only pays when it
  predicts unseen agents better (by ``min_gain`` nats per agent), which an archetype of two
  noisy agents does not. Populations smaller than ``2 * min_size`` are one archetype.

>>> rng = np.random.default_rng(0)
>>> taste = np.repeat(np.array([[0.8, -0.8, -0.8], [-0.8, 0.8, -0.8], [-0.8, -0.8, 0.8]]),
...                   4, axis=0)
>>> mean = np.clip(taste + rng.normal(0, 0.3, taste.shape), -1, 1)
>>> count = np.full(mean.shape, 10.0)
>>> k, _ = choose_k(mean, count, seed=0)
>>> labels, _ = cluster(mean, count, k, seed=0, min_size=3)
>>> k, sorted(np.bincount(labels).tolist())
(3, [4, 4, 4])
"""

from __future__ import annotations

import math

import numpy as np

from schemas.priors import P_MIN

#: Agents held out one at a time up to this many (else ``folds`` folds).
LOO_MAX = 30


def min_cluster_size(n: int, min_agents: int = 3, min_share: float = 0.05) -> int:
    """The fewest agents an archetype may have: ``min_agents``, or ``min_share`` of ``n``.

    >>> min_cluster_size(12), min_cluster_size(600)
    (3, 30)
    """
    return max(1, min_agents, math.ceil(min_share * n))


def population_mean(mean: np.ndarray, count: np.ndarray, shrink: float = 30.0) -> np.ndarray:
    """Per cell, the mean of all the rewards behind it, shrunk by ``shrink`` pseudo-rewards
    toward the mean of all rewards (a cell few agents tried says little of its own).

    >>> population_mean(np.array([[1.0, -1.0]]), np.array([[30.0, 10.0]]), shrink=30.0)
    array([0.75 , 0.125])
    """
    grand = float((mean * count).sum() / count.sum()) if count.sum() > 0 else 0.0
    return ((mean * count).sum(axis=0) + shrink * grand) / (count.sum(axis=0) + shrink)


def centres(mean: np.ndarray, count: np.ndarray, labels: np.ndarray, k: int,
            shrink: float = 1.0, base: np.ndarray | None = None) -> np.ndarray:
    """``(k, cells)`` archetype values: members' rewards pooled, shrunk toward ``base``.

    >>> centres(np.array([[1.0], [0.0]]), np.array([[3.0], [1.0]]), np.array([0, 0]), 1,
    ...         shrink=0.0)
    array([[0.75]])
    """
    base = population_mean(mean, count) if base is None else base
    onehot = (labels[:, None] == np.arange(k)[None, :]).astype(float)
    return _pool(onehot.T, mean * count, count, shrink, base)


def _pool(weights: np.ndarray, sums: np.ndarray, count: np.ndarray, shrink: float,
          base: np.ndarray) -> np.ndarray:
    # weights (..., k, agents) -> (..., k, cells); no evidence and no shrink: the base
    s, t = weights @ sums, weights @ count
    return np.divide(s + shrink * base, t + shrink, out=np.broadcast_to(base, s.shape).copy(),
                     where=(t + shrink) > 0)


def loglik(mean: np.ndarray, count: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``(..., agents, k)`` log-likelihood of each agent's rewards under each value table.

    ``values`` is ``(k, cells)`` or a stack ``(runs, k, cells)``.

    >>> ll = loglik(np.array([[1.0]]), np.array([[2.0]]), np.array([[0.8], [-0.8]]))
    >>> bool(ll[0, 0] > ll[0, 1])
    True
    """
    p = np.clip((values + 1.0) / 2.0, P_MIN, 1.0 - P_MIN)
    q = np.clip((mean + 1.0) / 2.0, 0.0, 1.0)
    wins, losses = count * q, count * (1.0 - q)
    return wins @ np.swapaxes(np.log(p), -1, -2) + losses @ np.swapaxes(np.log1p(-p), -1, -2)


def mixture_loglik(mean: np.ndarray, count: np.ndarray, values: np.ndarray,
                   sizes: np.ndarray) -> np.ndarray:
    """``(agents,)`` log-likelihood under the archetypes mixed by their sizes (the prior a
    new agent of the template starts from, :func:`schemas.priors.archetype_weights`)."""
    lw = np.log(np.maximum(sizes, 1) / np.maximum(sizes, 1).sum())[None, :]
    lw = lw + loglik(mean, count, values)
    top = lw.max(axis=1)
    return np.asarray(top + np.log(np.exp(lw - top[:, None]).sum(axis=1)))


def cluster(mean: np.ndarray, count: np.ndarray, k: int, seed: int = 0,
            n_init: int | None = None, min_size: int = 1, shrink: float = 1.0,
            iters: int = 50, held_out: tuple[np.ndarray, np.ndarray] | None = None,
            ) -> tuple[np.ndarray, float] | None:
    """Evidence-weighted k-means++ of agents' value tables into ``k`` clusters.

    Parameters
    ----------
    mean, count
        ``(agents, cells)`` mean rewards in [-1, 1] and the number of rewards behind each.
    k
        Number of clusters.
    seed
        Seeds k-means++; the result depends on the inputs and ``seed`` only.
    n_init
        Restarts, run side by side (default: more for fewer agents, ``clip(4000 // n, 4,
        64)``).
    min_size
        Restarts with a smaller cluster do not count.
    shrink
        Pseudo-rewards pulling a cluster's value toward the population mean.
    iters
        At most this many Lloyd iterations.
    held_out
        ``(mean, count)`` of agents left out of the fit but counted, in their most likely
        cluster, toward ``min_size`` (cross-validation folds).

    Returns
    -------
    tuple of (numpy.ndarray, float) or None
        Labels of the best restart and its cost (minus the log-likelihood of the agents'
        rewards under their clusters); ``None`` when no restart satisfies ``min_size``.

    Examples
    --------
    >>> mean = np.array([[0.9, -0.9], [0.8, -0.7], [-0.9, 0.9], [-0.8, 0.7]])
    >>> labels, _ = cluster(mean, np.full((4, 2), 5.0), 2, min_size=2)
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
    True
    """
    n = len(mean)
    if k <= 1:
        one = np.zeros(n, dtype=int)
        return one, float(-loglik(mean, count, centres(mean, count, one, 1, shrink)).sum())
    extra = held_out if held_out is not None else (mean[:0], count[:0])
    if n + len(extra[0]) < k * min_size:
        return None
    runs = n_init if n_init is not None else int(np.clip(4000 // n, 4, 64))
    rng = np.random.default_rng(seed)
    base = population_mean(mean, count)
    own = (count * mean + shrink * base) / (count + shrink)  # each agent as a centre
    own_ll = loglik(mean[:, None, :], count[:, None, :], own[:, None, :])[:, 0, 0]
    # k-means++ seeding, all restarts at once; distance: log-likelihood lost to the centre
    picks = [rng.integers(n, size=runs)]
    for _ in range(1, k):
        lost = own_ll[None, :] - loglik(mean, count, own[np.stack(picks, axis=1)]).max(axis=2)
        d = np.maximum(lost, 0.0) + 1e-12
        cum = np.cumsum(d / d.sum(axis=1, keepdims=True), axis=1)
        picks.append(np.minimum((cum < rng.random(runs)[:, None]).sum(axis=1), n - 1))
    cen = own[np.stack(picks, axis=1)]  # (runs, k, cells)
    labels = np.full((runs, n), -1)
    for _ in range(iters):
        new = loglik(mean, count, cen).argmax(axis=2)
        if (new == labels).all():
            break
        labels = new
        onehot = (labels[:, None, :] == np.arange(k)[None, :, None]).astype(float)
        cen = _pool(onehot, mean * count, count, shrink, base)
    ll = loglik(mean, count, cen)
    cost = -np.take_along_axis(ll, labels[:, :, None], axis=2)[:, :, 0].sum(axis=1)
    every = np.concatenate([labels, loglik(*extra, cen).argmax(axis=2)], axis=1)
    sizes = (every[:, :, None] == np.arange(k)[None, None, :]).sum(axis=1).min(axis=1)
    cost = np.where(sizes >= min_size, cost, np.inf)
    best = int(np.argmin(cost))
    if not np.isfinite(cost[best]):
        return None
    return labels[best].copy(), float(cost[best])


def choose_k(mean: np.ndarray, count: np.ndarray, seed: int = 0, max_k: int = 6,
             min_size: int | None = None, folds: int = 10, shrink: float = 1.0,
             n_init: int | None = None, min_gain: float = 0.5,
             ties: float = 0.02) -> tuple[int, dict[int, float]]:
    """The number of archetypes of a population, by cross-validated likelihood.

    Parameters
    ----------
    mean, count
        ``(agents, cells)`` mean rewards in [-1, 1] and the number of rewards behind each.
    seed
        Seeds the folds and :func:`cluster`: the same inputs give the same ``k``.
    max_k
        At most this many archetypes.
    min_size
        The fewest agents per archetype (default :func:`min_cluster_size` of the agents);
        ``k`` is at most ``len(mean) // min_size``.
    folds
        Folds when there are more than :data:`LOO_MAX` agents (else leave-one-out).
    shrink, n_init
        Passed to :func:`cluster` and :func:`centres`.
    min_gain
        A split must raise the held-out log-likelihood by this many nats per agent.
    ties
        Gains within this share of the best are ties, resolved toward fewer archetypes.

    Returns
    -------
    tuple of (int, dict)
        ``k``, and per ``k >= 2`` tried the mean held-out log-likelihood per agent gained
        over one archetype (``-inf``: no partition with clusters of ``min_size``).

    Examples
    --------
    >>> mean = np.random.default_rng(1).normal(0.2, 0.3, (12, 4)).clip(-1, 1)
    >>> choose_k(mean, np.full((12, 4), 10.0))[0]  # one homogeneous population
    1
    >>> choose_k(mean[:5], np.full((5, 4), 10.0))  # too few agents to split
    (1, {})
    """
    n = len(mean)
    size = min_cluster_size(n) if min_size is None else min_size
    top = min(max_k, n // max(size, 1))
    if top < 2:
        return 1, {}
    nf = n if n <= LOO_MAX else min(folds, n)
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % nf
    held = np.zeros((top, n))  # held-out log-likelihood per k and agent
    for f in range(nf):
        test, train = fold == f, fold != f
        m, c = mean[train], count[train]
        base = population_mean(m, c)
        for k in range(1, top + 1):
            if not np.isfinite(held[k - 1]).all():
                continue
            res = cluster(m, c, k, seed=seed, n_init=n_init, min_size=size, shrink=shrink,
                          held_out=(mean[test], count[test]))
            if res is None:
                held[k - 1] = -np.inf
                continue
            sizes = np.bincount(res[0], minlength=k)
            values = centres(m, c, res[0], k, shrink, base)
            held[k - 1, test] = mixture_loglik(mean[test], count[test], values, sizes)
    gain = {k: float((held[k - 1] - held[0]).mean()) for k in range(2, top + 1)}
    best = max(gain, key=lambda k: (gain[k], -k))
    if gain[best] < min_gain:
        return 1, gain
    return min(k for k in gain if gain[k] >= gain[best] - ties * gain[best]), gain
