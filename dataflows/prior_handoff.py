"""Live prior hand-off: when a template's live agents get its newer prior, and which of them.

A new agent of a template starts from the template's prior (the gateway attaches it to the
agent's ``AgentUpserted``). Without more, an agent registered before the template had a
useful prior (every agent of a deployment's first cohort) never gets one, and learns alone.
The population process therefore also hands each fitted prior to the template's *live*
agents, as one ``PriorAssigned`` event per agent on the agents topic (keyed by agent, so
co-partitioned flow processes each get their own agents'), at most once per ``every``
seconds of event time (the newest policy time the population has read), and only to agents
with at least ``min_rewards`` rewards of their own.

Both limits matter. A prior fitted on a few days of evidence has blind spots (an action no
one of an archetype tried yet reads as bad), and an agent handed it before it has explored
on its own stops exploring where the prior is wrong. Handed after about a week (28 rewards),
daily, a life-world cohort of 15 people starting together without a prior had every
archetype at 0.95-0.97 of the oracle in week 4, against 0.86-0.90 for the same people alone
(``python -m bench.learning_sweep life --cohort``, seeds 0-11); handed from day one (a
scratch experiment), 5 of 36 seed x archetype cells stayed below 0.90.

>>> from dataflows.population import Population
>>> from schemas.priors import Archetype
>>> pop = Population("default", "coach", actions=["a", "b"])
>>> pop.observe("old", {"day=mon": {"values": {"a": 0.5}, "counts": {"a": 30}},
...                     "*": {"values": {"a": 0.5}, "counts": {"a": 30}}})
>>> pop.observe("new", {"*": {"values": {"a": 1.0}, "counts": {"a": 3}}})
>>> two = PriorDocument(template="coach", archetypes=[Archetype(name="x"), Archetype(name="y")])
>>> h = Handoff(every=86400.0, min_rewards=28)
>>> h.targets(pop, 1000.0, two)
['old']
>>> h.targets(pop, 1000.0 + 3600, two)      # not a day later yet
[]
>>> h.targets(pop, 1000.0 + 86400, PriorDocument(template="coach", archetypes=[Archetype(
...     name="x")]))                          # one archetype: nothing to tell agents
[]
>>> h.targets(pop, 1000.0 + 86400, two)
['old']
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage

from dataflows.population import Population
from schemas import SCHEMA_VERSION
from schemas.events import derived_id
from schemas.priors import PriorDocument


class Handoff:
    """The hand-off schedule of one template (small, picklable state).

    Parameters
    ----------
    every
        Seconds of event time between two hand-offs (``0``: never hand off).
    min_rewards
        An agent gets a prior only once it has this many rewards of its own.
    """

    def __init__(self, every: float, min_rewards: int) -> None:
        self.every = every
        self.min_rewards = min_rewards
        #: event time of the last hand-off, and the prior versions handed off (newest last)
        self.last: float | None = None
        self.versions: list[int] = []

    def targets(self, pop: Population, event_ts: float | None,
                prior: PriorDocument) -> list[str]:
        """The agents to hand ``prior`` (fitted now) to (``event_ts``: the newest policy time
        the population read); empty when no hand-off is due. A non-empty answer starts the
        next interval.

        A prior of one archetype is never handed to live agents: a live agent has its own
        evidence, and what a prior adds to it is which group it belongs to. One archetype
        says nothing about that; early in a cohort it is the pooled mean of groups the fit
        cannot tell apart yet, and handing it over once cost a cohort's workhorses 0.86 of
        the oracle in week 4 against 0.99 without that hand-off (life world, seed 3).
        """
        if event_ts is None or not self.due(event_ts) or len(prior.archetypes) < 2:
            return []
        agents = [a for a in pop.tables if pop.rewards(a) >= self.min_rewards]
        if agents:
            self.last = event_ts
        return agents

    def due(self, event_ts: float) -> bool:
        """Whether a hand-off may happen at event time ``event_ts``."""
        return self.every > 0 and (self.last is None or event_ts >= self.last + self.every)

    def record(self, version: int, keep: int = 2) -> None:
        """Remember that ``version`` was handed off (the newest ``keep`` are kept: agents'
        values blended with them must still be un-blended, :func:`~dataflows.population.
        own_table`)."""
        self.versions = [v for v in self.versions if v != version][-(keep - 1):] + [version]


def assignments(prior: PriorDocument, agents: Iterable[str], event_ts: float,
                topic: str) -> list[KafkaSinkMessage[bytes, bytes]]:
    """One ``PriorAssigned`` per agent, keyed by agent id, for the agents ``topic``.

    The ids are derived from (tenant, template, prior version, agent), so handing off the
    same version again (a replay of the population flow) gives duplicates the flow drops.

    >>> from schemas.events import parse_event
    >>> doc = PriorDocument(template="coach", version=7)
    >>> msgs = assignments(doc, ["a1", "a2"], 0.0, "rf.agents")
    >>> [m.key for m in msgs]
    [b'a1', b'a2']
    >>> ev = parse_event(msgs[0].value)
    >>> type(ev).__name__, ev.agent_id, ev.prior == doc, ev.ts.isoformat()
    ('PriorAssigned', 'a1', True, '1970-01-01T00:00:00+00:00')
    """
    # the prior is serialized once and embedded as is (thousands of agents per hand-off)
    raw = prior.model_dump_json().encode()
    ts = datetime.fromtimestamp(event_ts, UTC).isoformat()
    out: list[KafkaSinkMessage[bytes, bytes]] = []
    for agent_id in agents:
        head = orjson.dumps({
            "event_id": str(derived_id("prior", prior.tenant, prior.template, prior.version,
                                       agent_id)),
            "tenant": prior.tenant, "ts": ts, "schema_version": SCHEMA_VERSION,
            "type": "PriorAssigned", "agent_id": agent_id, "template": prior.template})
        out.append(KafkaSinkMessage(agent_id.encode(), b'%b,"prior":%b}' % (head[:-1], raw),
                                    topic))
    return out
