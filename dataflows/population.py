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

from schemas.priors import Archetype, PriorDocument, unblend

Table = dict[str, dict[str, tuple[float, int]]]

#: Agents on which the number of archetypes is chosen (the final fit uses all of them).
SAMPLE = 600


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
        #: table updates absorbed in all (the version of the next fit: monotonic, and the
        #: same when the input is replayed from the start)
        self.observed = 0
        self.version = 0

    def observe(self, agent_id: str, buckets: dict[str, Any],
                unblended: Table | None = None, count: int = 1) -> None:
        """Take the ``buckets`` block of an agent's policy document (values and counts).

        ``unblended``: the agent's own means when its published values are blended with a
        prior (:func:`own_table`); they replace the published values cell by cell.
        ``count``: how many published documents this newest one stands for (the others
        were superseded before they arrived here); it advances :attr:`observed`.
        """
        table: Table = {}
        for b, bp in buckets.items():
            vals = bp.get("values", {})
            counts = bp.get("counts", {})
            own = (unblended or {}).get(b, {})
            table[b] = {a: (own[a][0] if a in own else float(v), int(counts.get(a, 0)))
                        for a, v in vals.items() if counts.get(a, 0) > 0}
            for a in vals:
                if a not in self.actions:
                    self.actions.append(a)
        self.tables.pop(agent_id, None)
        self.tables[agent_id] = table
        if len(self.tables) > self.max_agents:
            del self.tables[next(iter(self.tables))]
        self.updates_since_fit += count
        self.observed += count

    def remove(self, agent_id: str) -> None:
        """Forget an agent (it moved to another template)."""
        if self.tables.pop(agent_id, None) is not None:
            self.updates_since_fit += 1
            self.observed += 1

    def due(self) -> bool:
        return self.updates_since_fit >= self.refit_every

    def snapshot(self) -> Population:
        """A copy that later :meth:`observe` calls do not change (tables are replaced, never
        edited in place, so copying the outer dict is enough: cheap for Bytewax snapshots).
        """
        new = Population.__new__(Population)
        new.__dict__.update(self.__dict__)
        new.actions = list(self.actions)
        new.tables = dict(self.tables)
        return new

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
        self.version = max(self.version, self.observed)
        if len(agents) == 0:
            return PriorDocument(tenant=self.tenant, template=self.template,
                                 version=self.version, actions=self.actions,
                                 strength=strength, explanation="no agent has enough rewards")
        # k is chosen on a seeded sample of at most SAMPLE agents (a fit stays well under a
        # second with thousands of agents), then the chosen k is fitted on all of them.
        xs = x
        if len(x) > SAMPLE:
            xs = x[np.random.default_rng(seed).choice(len(x), SAMPLE, replace=False)]
        best_k, best_labels, best_sil = 1, np.zeros(len(xs), dtype=int), -1.0
        for k in range(2, min(max_k, len(xs) - 1) + 1):
            labels, _ = kmeans(xs, k, seed=seed)
            sil = silhouette(xs, labels, seed=seed)
            if sil > best_sil:
                best_k, best_labels, best_sil = k, labels, sil
        if best_sil < min_silhouette:
            best_k, best_labels = 1, np.zeros(len(agents), dtype=int)
        elif len(xs) < len(x):
            best_labels, _ = kmeans(x, best_k, seed=seed, n_init=2)
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


def silhouette(x: np.ndarray, labels: np.ndarray, max_points: int = 1000,
               seed: int = 0) -> float:
    """Mean silhouette coefficient (Euclidean); 0 when there is a single cluster.

    Distances come from the Gram matrix (``n x n`` memory, not ``n x n x cells``); above
    ``max_points`` agents a seeded sample of that many is scored.

    >>> x = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> round(silhouette(x, np.array([0, 0, 1, 1])), 2)
    0.98
    """
    if len(np.unique(labels)) < 2:
        return 0.0
    if len(x) > max_points:
        pick = np.random.default_rng(seed).choice(len(x), max_points, replace=False)
        x, labels = x[pick], labels[pick]
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    sq = (x * x).sum(axis=1)
    d = np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0, None))
    onehot = (labels[:, None] == ks[None, :]).astype(float)
    sizes = onehot.sum(axis=0)
    sums = d @ onehot  # (points, clusters): summed distance to each cluster
    own = (labels[:, None] == ks[None, :])
    a = (sums * own).sum(axis=1) / np.maximum((sizes[None, :] * own).sum(axis=1) - 1, 1)
    mean_other = np.where(own, np.inf, sums / sizes[None, :])
    b = mean_other.min(axis=1)
    top = np.maximum(a, b)
    s = np.divide(b - a, top, out=np.zeros(len(x)), where=top > 0)
    return float(s.mean())


def own_table(buckets: dict[str, Any], evidence: dict[str, Any],
              prior: PriorDocument | None) -> Table | None:
    """An agent's own mean per (bucket, action) behind values its learner blended with
    ``prior`` (the document's ``evidence`` names the prior version and the archetype
    weights); ``None`` when the values are not blended with this prior.

    >>> doc = PriorDocument(template="t", version=3, strength=4.0, archetypes=[
    ...     Archetype(name="arch0", size=1, values={"*": {"a": 0.5}})])
    >>> b = {"*": {"values": {"a": 0.1}, "counts": {"a": 4}}}
    >>> own_table(b, {"prior.version": 3.0, "prior.weight.arch0": 1.0}, doc)
    {'*': {'a': (-0.3, 4)}}
    >>> own_table(b, {"prior.version": 2.0, "prior.weight.arch0": 1.0}, doc) is None
    True
    """
    if prior is None or evidence.get("prior.version") != float(prior.version):
        return None
    w = [float(evidence.get(f"prior.weight.{a.name}", 0.0)) for a in prior.archetypes]
    if sum(w) <= 0.0:
        return None
    out: Table = {}
    for b, bp in buckets.items():
        counts = bp.get("counts", {})
        row: dict[str, tuple[float, int]] = {}
        for a, v in bp.get("values", {}).items():
            n = int(counts.get(a, 0))
            if n > 0:
                own = unblend(float(v), n, prior.value(b, a, w), prior.strength)
                row[a] = (round(own, 6), n)
        out[b] = row
    return out


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
