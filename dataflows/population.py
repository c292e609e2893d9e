"""Population priors: cluster a template's agents into archetypes (keyed by template).

:class:`Population` keeps, per agent of one template, its latest value table (bucket ->
action -> (mean reward, count)), small plain data. :meth:`Population.fit` turns the tables
into evidence (per cell a mean reward and the count behind it), clusters them with a seeded,
evidence-weighted k-means++ and returns a :class:`schemas.priors.PriorDocument` whose
archetypes are the clusters' pooled tables (:mod:`dataflows.population_k`). ``k`` is the one
whose archetypes best predict held-out agents' rewards, with at least ``min_size`` agents
(or ``min_share`` of them) per archetype: never one archetype per two noisy agents, and one
archetype when no split predicts better or there are too few agents to split.

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
>>> pop.remove("ag5")  # five agents: too few for two archetypes of three
>>> len(pop.fit(seed=0).archetypes)
1
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from dataflows.learner.base import stable_seed
from dataflows.population_k import centres, choose_k, cluster, min_cluster_size
from schemas.buckets import GLOBAL_BUCKET
from schemas.priors import Archetype, PriorDocument, unblend
from schemas.settings import Settings

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

    def observe_policy(self, agent_id: str, buckets: dict[str, Any], evidence: dict[str, Any],
                       priors: Mapping[int, PriorDocument], count: int = 1) -> None:
        """Take an agent's published policy (its ``buckets`` and ``evidence``): values its
        learner blended with one of ``priors`` (the version its evidence names) are
        un-blended first (:func:`own_table`), so a prior does not feed on itself."""
        version = evidence.get("prior.version")
        prior = priors.get(int(version)) if isinstance(version, int | float) else None
        self.observe(agent_id, buckets, own_table(buckets, evidence, prior), count=count)

    def remove(self, agent_id: str) -> None:
        """Forget an agent (it moved to another template)."""
        if self.tables.pop(agent_id, None) is not None:
            self.updates_since_fit += 1
            self.observed += 1

    def due(self) -> bool:
        return self.updates_since_fit >= self.refit_every

    def rewards(self, agent_id: str) -> int:
        """The rewards behind an agent's table (``*`` repeats the other buckets' rewards,
        so it counts only when it is the agent's only bucket).

        >>> pop = Population("default", "t")
        >>> pop.observe("a", {"x": {"values": {"a": 1.0}, "counts": {"a": 3}},
        ...                   "*": {"values": {"a": 1.0}, "counts": {"a": 3}}})
        >>> pop.rewards("a"), pop.rewards("nobody")
        (3, 0)
        """
        table = self.tables.get(agent_id, {})
        rows = [r for b, r in table.items() if b != GLOBAL_BUCKET] or list(table.values())
        return sum(n for row in rows for _, n in row.values())

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

    def evidence(self) -> tuple[list[str], list[tuple[str, str]], np.ndarray, np.ndarray]:
        """Agents kept, cells, and the ``(agents, cells)`` mean rewards and their counts."""
        cells = self._cells()
        agents = [a for a, t in self.tables.items()
                  if sum(n for row in t.values() for _, n in row.values()) >= self.min_rewards]
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
        return agents, cells, mean, cnt

    def matrix(self, shrink: float = 3.0) -> tuple[list[str], list[tuple[str, str]], np.ndarray]:
        """Agents kept, cells, and the ``(agents, cells)`` matrix of values shrunk toward the
        population mean by ``shrink`` pseudo-rewards."""
        agents, cells, mean, cnt = self.evidence()
        if not agents or not cells:
            return agents, cells, np.zeros((len(agents), len(cells)))
        tot = cnt.sum(axis=0)
        pop = np.divide((mean * cnt).sum(axis=0), tot, out=np.zeros(len(cells)), where=tot > 0)
        return agents, cells, (cnt * mean + shrink * pop[None, :]) / (cnt + shrink)

    def fit_with(self, settings: Settings) -> PriorDocument:
        """:meth:`fit` as the population process fits (its settings; a seed of the template's
        own, so the same tables give the same prior wherever they are fitted)."""
        return self.fit(seed=stable_seed(self.tenant, self.template),
                        max_k=settings.population_max_k, strength=settings.population_strength)

    def fit(
        self, seed: int = 0, max_k: int = 6, strength: float = 4.0, min_size: int = 3,
        min_share: float = 0.05, shrink: float = 1.0,
    ) -> PriorDocument:
        """Cluster the agents and return the template's prior document.

        Parameters
        ----------
        seed
            Seeds the folds, the sample and k-means++: the same tables give the same prior.
        max_k
            At most this many archetypes.
        strength
            The prior's pseudo-rewards per value (:func:`schemas.priors.blend`).
        min_size, min_share
            An archetype has at least ``min_size`` agents and ``min_share`` of them.
        shrink
            Pseudo-rewards pulling an archetype's value toward the population mean.
        """
        agents, cells, mean, cnt = self.evidence()
        self.updates_since_fit = 0
        self.version = max(self.version, self.observed)
        if len(agents) == 0 or not cells:
            return PriorDocument(tenant=self.tenant, template=self.template,
                                 version=self.version, actions=self.actions,
                                 strength=strength, explanation="no agent has enough rewards")
        # Agents are told apart by their per-bucket cells; ``*`` repeats those rewards (the
        # archetypes keep it, for buckets a new agent has not seen).
        own = [j for j, (b, _) in enumerate(cells) if b != GLOBAL_BUCKET] or list(range(len(cells)))
        m, c = mean[:, own], cnt[:, own]
        # k is chosen on a seeded sample of at most SAMPLE agents (a fit stays around a second
        # with thousands of agents), then the chosen k is fitted on all of them.
        pick = np.arange(len(agents))
        if len(agents) > SAMPLE:
            pick = np.random.default_rng(seed).choice(len(agents), SAMPLE, replace=False)
        size = min_cluster_size(len(pick), min_size, min_share)
        k, gain = choose_k(m[pick], c[pick], seed=seed, max_k=max_k, min_size=size)
        labels = np.zeros(len(agents), dtype=int)
        if k > 1:
            res = cluster(m, c, k, seed=seed, min_size=min_cluster_size(len(agents), min_size,
                                                                         min_share))
            if res is None:  # the sample could be split, all agents cannot: keep one
                k = 1
            else:
                labels = res[0]
        values = centres(mean, cnt, labels, k, shrink)
        archetypes: list[Archetype] = []
        order = sorted(range(k), key=lambda j: (-int((labels == j).sum()), j))
        for rank, j in enumerate(order):
            table: dict[str, dict[str, float]] = {}
            for (b, a), v in zip(cells, values[j], strict=True):
                table.setdefault(b, {})[a] = round(float(v), 4)
            archetypes.append(Archetype(name=f"arch{rank}", size=int((labels == j).sum()),
                                        values=table))
        if k > 1:
            why = f"held-out log-likelihood +{gain[k]:.1f} per agent over one archetype"
        elif not gain:
            why = f"too few agents to split into archetypes of {size}"
        else:
            why = "no split predicts held-out agents better"
        return PriorDocument(
            tenant=self.tenant, template=self.template, version=self.version,
            actions=list(self.actions), strength=strength, archetypes=archetypes,
            agents=len(agents), updated_at=datetime.now(UTC),
            explanation=f"{len(archetypes)} archetypes from {len(agents)} agents ({why}).")


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
