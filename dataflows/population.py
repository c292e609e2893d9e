"""Population priors: cluster a template's agents into archetypes (keyed by template).

:class:`Population` keeps, per agent of one template, its latest value table (bucket ->
action -> (mean reward, count)), small plain data. :meth:`Population.fit` turns the tables
into vectors (each cell shrunk toward the population mean by its count, so sparse agents
sit near the middle), clusters them with a seeded k-means++ (``k`` chosen by silhouette
among ``2..max_k``, or 1 when no split is clearly better), and returns a
:class:`schemas.priors.PriorDocument` whose archetypes are the clusters' mean tables.

The dataflow runs it as a step keyed by ``tenant:template`` fed by the agents' published
policies (:func:`population_step`); the in-process benchmark calls it directly.

>>> pop = Population("default", "t", actions=["a", "b"])
>>> for i in range(6):
...     likes_a = i % 2 == 0
...     pop.observe(f"ag{i}", {"*": {"values": {"a": 0.8 if likes_a else -0.8,
...                                              "b": -0.8 if likes_a else 0.8},
...                                   "counts": {"a": 20, "b": 20}}})
>>> doc = pop.fit(seed=0)
>>> len(doc.archetypes), sorted(a.size for a in doc.archetypes)
(2, [3, 3])
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from schemas.priors import Archetype, PriorDocument

Table = dict[str, dict[str, tuple[float, int]]]


class Population:
    """The latest value table of every agent of one template.

    Parameters
    ----------
    tenant, template
        Which population.
    actions
        The template's actions (the columns of every table); learned from the tables
        when empty.
    min_rewards
        Agents with fewer rewards are not clustered (too little evidence).
    max_agents
        Keep at most this many agents (the most recently updated), bounding the state.
    refit_every
        :meth:`due` is true after this many table updates since the last fit.
    """

    def __init__(
        self,
        tenant: str,
        template: str,
        actions: list[str] | None = None,
        min_rewards: int = 20,
        max_agents: int = 5000,
        refit_every: int = 200,
    ) -> None:
        self.tenant = tenant
        self.template = template
        self.actions = list(actions or [])
        self.min_rewards = min_rewards
        self.max_agents = max_agents
        self.refit_every = refit_every
        self.tables: dict[str, Table] = {}
        self.updates_since_fit = 0
        self.version = 0

    def observe(self, agent_id: str, buckets: dict[str, Any]) -> None:
        """Take the ``buckets`` block of an agent's policy document (values and counts)."""
        table: Table = {}
        for b, bp in buckets.items():
            vals = bp.get("values", {})
            counts = bp.get("counts", {})
            table[b] = {a: (float(v), int(counts.get(a, 0))) for a, v in vals.items()
                        if counts.get(a, 0) > 0}
            for a in vals:
                if a not in self.actions:
                    self.actions.append(a)
        self.tables.pop(agent_id, None)
        self.tables[agent_id] = table
        if len(self.tables) > self.max_agents:
            del self.tables[next(iter(self.tables))]
        self.updates_since_fit += 1

    def due(self) -> bool:
        return self.updates_since_fit >= self.refit_every

    def _cells(self) -> list[tuple[str, str]]:
        buckets = sorted({b for t in self.tables.values() for b in t})
        return [(b, a) for b in buckets for a in self.actions]

    def matrix(self, shrink: float = 3.0) -> tuple[list[str], list[tuple[str, str]], np.ndarray]:
        """Agents kept, cells, and the ``(agents, cells)`` matrix of shrunk values."""
        cells = self._cells()
        agents = [a for a, t in self.tables.items()
                  if sum(n for row in t.values() for _, n in row.values()) >= self.min_rewards]
        if not agents or not cells:
            return agents, cells, np.zeros((len(agents), len(cells)))
        col = {c: i for i, c in enumerate(cells)}
        mean = np.zeros((len(agents), len(cells)))
        cnt = np.zeros((len(agents), len(cells)))
        for i, ag in enumerate(agents):
            for b, row in self.tables[ag].items():
                for a, (v, n) in row.items():
                    j = col.get((b, a))
                    if j is not None:
                        mean[i, j] = v
                        cnt[i, j] = n
        tot = cnt.sum(axis=0)
        pop = np.divide((mean * cnt).sum(axis=0), tot, out=np.zeros(len(cells)), where=tot > 0)
        x = (cnt * mean + shrink * pop[None, :]) / (cnt + shrink)
        return agents, cells, x

    def fit(
        self, seed: int = 0, max_k: int = 6, strength: float = 4.0, min_silhouette: float = 0.2
    ) -> PriorDocument:
        """Cluster the agents and return the template's prior document."""
        agents, cells, x = self.matrix()
        self.updates_since_fit = 0
        self.version += 1
        if len(agents) == 0:
            return PriorDocument(tenant=self.tenant, template=self.template,
                                 version=self.version, actions=self.actions,
                                 strength=strength, explanation="no agent has enough rewards")
        best_k, best_labels, best_sil = 1, np.zeros(len(agents), dtype=int), -1.0
        for k in range(2, min(max_k, len(agents) - 1) + 1):
            labels, _ = kmeans(x, k, seed=seed)
            sil = silhouette(x, labels)
            if sil > best_sil:
                best_k, best_labels, best_sil = k, labels, sil
        if best_sil < min_silhouette:
            best_k, best_labels = 1, np.zeros(len(agents), dtype=int)
        archetypes: list[Archetype] = []
        order = sorted(range(best_k), key=lambda c: (-int((best_labels == c).sum()), c))
        for rank, c in enumerate(order):
            members = x[best_labels == c]
            if len(members) == 0:
                continue
            centre = members.mean(axis=0)
            values: dict[str, dict[str, float]] = {}
            for (b, a), v in zip(cells, centre, strict=True):
                values.setdefault(b, {})[a] = round(float(v), 4)
            archetypes.append(Archetype(name=f"arch{rank}", size=len(members), values=values))
        sil_txt = f"silhouette {best_sil:.2f}" if best_k > 1 else "no clear split"
        return PriorDocument(
            tenant=self.tenant, template=self.template, version=self.version,
            actions=list(self.actions), strength=strength, archetypes=archetypes,
            agents=len(agents), updated_at=datetime.now(UTC),
            explanation=f"{len(archetypes)} archetypes from {len(agents)} agents ({sil_txt}).")


def kmeans(
    x: np.ndarray, k: int, seed: int = 0, n_init: int = 5, iters: int = 50
) -> tuple[np.ndarray, float]:
    """Seeded k-means++ with restarts; returns ``(labels, inertia)`` of the best run.

    >>> x = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> labels, _ = kmeans(x, 2)
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
    True
    """
    rng = np.random.default_rng(seed)
    best: tuple[np.ndarray, float] | None = None
    n = len(x)
    for _ in range(n_init):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min([((x - c) ** 2).sum(axis=1) for c in centres], axis=0)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centres.append(x[rng.choice(n, p=p)])
        c = np.array(centres)
        labels = np.zeros(n, dtype=int)
        for _ in range(iters):
            d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
            new = d.argmin(axis=1)
            if (new == labels).all() and _ > 0:
                break
            labels = new
            for j in range(k):
                if (labels == j).any():
                    c[j] = x[labels == j].mean(axis=0)
        inertia = float(((x - c[labels]) ** 2).sum())
        if best is None or inertia < best[1]:
            best = (labels.copy(), inertia)
    if best is None:  # n_init >= 1 always sets it
        msg = "kmeans needs n_init >= 1"
        raise ValueError(msg)
    return best


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (Euclidean); 0 when there is a single cluster."""
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    s = np.zeros(len(x))
    for i in range(len(x)):
        own = labels == labels[i]
        a = d[i, own].sum() / max(own.sum() - 1, 1)
        b = min(d[i, labels == k].mean() for k in ks if k != labels[i])
        s[i] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return float(s.mean())


def population_step(pop: Population | None, item: tuple[str, str, str, dict[str, Any]],
                    seed: int = 0) -> tuple[Population, PriorDocument | None]:
    """Bytewax ``stateful_map`` logic keyed by ``tenant:template``.

    ``item`` is ``(tenant, template, agent_id, policy document)``; returns the new state and
    a prior document when a refit is due (else ``None``).
    """
    tenant, template, agent_id, doc = item
    if pop is None:
        pop = Population(tenant, template)
    pop.observe(agent_id, doc.get("buckets", {}))
    if pop.due():
        return pop, pop.fit(seed=seed)
    return pop, None
