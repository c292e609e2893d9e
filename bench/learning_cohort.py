"""A life-world cohort that starts together without a prior, with live prior hand-offs.

What the population process does for a template's live agents (:mod:`dataflows.
prior_handoff`), in-process: after each simulated round, when a hand-off is due at that
round's event time (:class:`~dataflows.prior_handoff.Handoff`: at most once per
``RF_POPULATION_HANDOFF_SECONDS``, to agents with ``RF_POPULATION_HANDOFF_MIN_REWARDS`` own
rewards), the template's population is built from every agent's current document (values
blended with an earlier hand-off un-blended first, :meth:`~dataflows.population.Population.
observe_policy`), fitted as the population flow fits (:meth:`~dataflows.population.
Population.fit_with`), and each target agent's learner takes the prior as
the main flow applies ``PriorAssigned`` (:meth:`~dataflows.learner.archetypes.PriorState.
assign_prior`), its new version going to the gateway at once.

The population flow fits more often than it hands off (every few seconds of wall time); here
the fit runs only when a hand-off is due, which hands off the same prior.
"""

from __future__ import annotations

from typing import Any

from bench.learning import rewardflow_backend
from dataflows.learner.base import PolicyLearner
from dataflows.population import Population
from dataflows.prior_handoff import Handoff
from schemas.priors import PriorDocument
from schemas.settings import Settings
from simulator.life import Person
from simulator.runner import RunResult, life_agent_spec, run_life, slot_time

TEMPLATE = "life-coach"


def run_cohort(people: list[Person], seed: int, algorithm: str, weeks: int,
               settings: Settings | None = None) -> tuple[RunResult, list[dict[str, Any]]]:
    """Play ``people`` together from a cold start with live hand-offs; returns the run and
    one row per hand-off (slot, prior version, archetypes, agents handed)."""
    s = settings or Settings()
    learners: dict[str, PolicyLearner] = {}
    be = rewardflow_backend(seed, algorithm, learners=learners)
    be.name = f"rewardflow-{algorithm}+cohort"
    handoff = Handoff(s.population_handoff_seconds, s.population_handoff_min_rewards)
    priors: dict[int, PriorDocument] = {}
    actions = list(life_agent_spec()["actions"])
    observed = 0
    log: list[dict[str, Any]] = []

    def on_round(slot: int, _records: list[dict[str, Any]]) -> None:
        nonlocal observed
        event_ts = slot_time(slot).timestamp()
        if not handoff.due(event_ts):
            return
        pop = Population("default", TEMPLATE, actions=actions,
                         min_rewards=s.population_min_rewards)
        for agent_id, lrn in learners.items():
            doc = lrn.policy_dict()
            pop.observe_policy(agent_id, doc["buckets"], doc["evidence"], priors)
        observed += len(learners)
        pop.observed = observed  # versions grow as the flow's do
        prior = pop.fit_with(s)
        targets = handoff.targets(pop, event_ts, prior)
        if not targets:
            return
        handoff.record(prior.version)
        priors[prior.version] = prior
        for agent_id in targets:
            learners[agent_id].assign_prior(prior)
            be.republish(agent_id)  # type: ignore[attr-defined]
        log.append({"slot": slot, "version": prior.version,
                    "archetypes": [a.size for a in prior.archetypes], "agents": len(targets)})

    res = run_life(people, be, weeks=weeks, seed=seed, run_id=f"c{seed}", progress=False,
                   on_round=on_round)
    return res, log
