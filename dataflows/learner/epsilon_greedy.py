"""Epsilon-greedy action values per context bucket, with River's running means."""

from __future__ import annotations

from dataflows.learner.base import PolicyLearner
from schemas.policy import epsilon_greedy


class EpsilonGreedyLearner(PolicyLearner):
    """Mean reward per (bucket, action) with ``river.stats.Mean``; epsilon-greedy over them.

    Every reward also updates the agent-wide bucket ``*``, which the gateway falls back to
    for a context bucket it has no values for yet. The document carries values and a
    per-bucket epsilon (decaying with the bucket's evidence to a floor) and, per bucket, the
    distribution ``probs`` the gateway samples from, so the logged propensity is exact.

    Without a population prior, ``probs`` is epsilon-greedy over *optimistic initial
    values*: every action starts from ``initial_strength`` pseudo-rewards of
    ``initial_value`` (:meth:`optimistic_values`), so an untried action reads
    ``initial_value`` (+0.5, i.e. accepted 75% of the time) and the greedy choice keeps
    trying untried actions until a tried one has shown, with some evidence, a mean above
    that, instead of settling on the first action whose mean is positive. ``1 - epsilon``
    goes to that choice (ties shared), ``epsilon`` is spread evenly, and the initial
    pseudo-rewards count toward epsilon's decay as a population prior's do
    (:meth:`pseudo_evidence`): the greedy choice now does the trying, so less uniform
    exploration is needed. The published ``values`` stay the plain running means (they
    lead the explanations and feed the population fit).

    With a population prior the exploration follows the prior instead:
    the bucket publishes ``probs`` = ``1 - epsilon`` on the greedy action, ``epsilon_floor``
    spread evenly (every action stays reachable), and the rest of epsilon on the actions
    that are best for an archetype drawn from the posterior
    (:meth:`~dataflows.learner.archetypes.PriorState.archetype_choice`); the prior's
    pseudo-rewards also count toward epsilon's decay.

    Parameters
    ----------
    initial_value, initial_strength
        Without a population prior: the mean reward every action starts from, and how
        many pseudo-rewards of it (default: the class attributes, +0.5 and 4, the
        population prior's default strength). Other parameters: :class:`PolicyLearner`.

    >>> from schemas.agent import AgentSpec
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b"], context_keys=["slot"])
    >>> lrn = EpsilonGreedyLearner("agent-1", spec=spec)
    >>> lrn.update("slot=am", "b", 1.0, ts=0.0)
    >>> doc = lrn.maybe_publish()
    >>> doc["version"], doc["buckets"]["slot=am"]["values"], doc["explanation"]
    (1, {'b': 1.0}, 'b now leads in slot=am: mean reward +1.00 over 1 rewards.')
    >>> doc["buckets"]["slot=am"]["epsilon"], doc["buckets"]["slot=am"]["probs"]
    (0.068966, {'a': 0.034483, 'b': 0.965517})
    >>> lrn.maybe_publish() is None
    True

    An action ignored once reads ``(-1 + 4 * 0.5) / 5 = 0.2``: the untried one goes first.

    >>> lrn.update("slot=pm", "a", -1.0, ts=1.0)
    >>> lrn.maybe_publish()["buckets"]["slot=pm"]["probs"]
    {'a': 0.034483, 'b': 0.965517}

    With a prior (two archetypes; the first reward says "archetype B"):

    >>> from schemas.priors import Archetype, PriorDocument
    >>> prior = PriorDocument(template="t", actions=["a", "b", "c"], archetypes=[
    ...     Archetype(name="A", size=1, values={"*": {"a": 0.8, "b": -0.5, "c": 0.0}}),
    ...     Archetype(name="B", size=1, values={"*": {"a": -0.6, "b": 0.8, "c": 0.0}})])
    >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b", "c"], template="t",
    ...                  epsilon=0.2)
    >>> lrn = EpsilonGreedyLearner("agent-2", spec=spec, prior=prior)
    >>> lrn.update("*", "a", -1.0, ts=0.0)
    >>> bp = lrn.maybe_publish()["buckets"]["*"]
    >>> max(bp["probs"], key=bp["probs"].get), bp["epsilon"], round(sum(bp["probs"].values()), 6)
    ('b', 0.121212, 1.0)
    """

    algorithm = "epsilon_greedy"
    #: Without a population prior: the mean reward in [-1, 1] every action starts from
    #: (chosen on the life world's sweeps: 0.3-0.5 do about equally well, 0.7 and 1 worse)
    #: and how many pseudo-rewards of it (the population prior's default strength).
    initial_value = 0.5
    initial_strength = 4.0

    def __init__(self, *args: object, initial_value: float | None = None,
                 initial_strength: float | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if initial_value is not None:
            self.initial_value = initial_value
        if initial_strength is not None:
            self.initial_strength = initial_strength

    def pseudo_evidence(self, bucket: str) -> float:
        """The prior's pseudo-rewards in ``bucket``; without a prior, the initial values'
        (``initial_strength`` per action).

        >>> from schemas.agent import AgentSpec
        >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b", "c"])
        >>> EpsilonGreedyLearner("ag", spec=spec).pseudo_evidence("*")
        12.0
        """
        if self.prior_w:
            return self.prior_evidence(bucket)
        return self.initial_strength * len(self._actions(bucket))

    def optimistic_values(
        self, bucket: str, values: dict[str, float], counts: dict[str, int]
    ) -> dict[str, float]:
        """Each action's mean blended with ``initial_strength`` rewards of ``initial_value``:
        ``(n * mean + m0 * q0) / (n + m0)``; an untried action reads ``q0``.

        >>> from schemas.agent import AgentSpec
        >>> spec = AgentSpec(persona={"name": "x"}, actions=["a", "b", "c"])
        >>> lrn = EpsilonGreedyLearner("ag", spec=spec)
        >>> opt = lrn.optimistic_values("*", {"a": 1.0, "b": -1.0}, {"a": 4, "b": 1})
        >>> {a: round(v, 6) for a, v in opt.items()}
        {'a': 0.75, 'b': 0.2, 'c': 0.5}
        """
        q0, m0 = self.initial_value, self.initial_strength
        prior = m0 * q0
        out: dict[str, float] = {}
        for a in self._actions(bucket):
            v = values.get(a)
            n = counts.get(a, 0) if v is not None else 0
            out[a] = q0 if n + m0 <= 0 or v is None else (n * v + prior) / (n + m0)
        return out

    def greedy_values(
        self, bucket: str, values: dict[str, float], counts: dict[str, int]
    ) -> dict[str, float]:
        """Linear scoring's ``base``: the values with a prior, else :meth:`optimistic_values`."""
        return values if self.prior_w else self.optimistic_values(bucket, values, counts)

    def bucket_distribution(
        self, bucket: str, values: dict[str, float], counts: dict[str, int], epsilon: float
    ) -> dict[str, float] | None:
        choice = self.archetype_choice(bucket)
        if not choice or not values:
            return self._optimistic_distribution(bucket, values, counts, epsilon)
        actions = self._actions(bucket)
        k = len(actions)
        greedy = self._greedy(values)
        spread = min(epsilon, self.epsilon_floor)
        led = epsilon - spread
        mass = sum(choice.values())
        probs = {a: spread / k + (led * choice[a] / mass if mass > 0 else 0.0) for a in actions}
        rest = 1.0 - epsilon + (0.0 if mass > 0 else led)
        if greedy in probs:
            probs[greedy] += rest
        else:  # the greedy action is no longer declared: spread its share
            probs = {a: p + rest / k for a, p in probs.items()}
        return {a: round(p, 6) for a, p in probs.items()}

    def _optimistic_distribution(
        self, bucket: str, values: dict[str, float], counts: dict[str, int], epsilon: float
    ) -> dict[str, float] | None:
        """Epsilon-greedy over :meth:`optimistic_values`, ties shared evenly."""
        opt = self.optimistic_values(bucket, values, counts)
        if not opt:
            return None  # no declared actions: the gateway's epsilon-greedy over the values
        return {a: round(p, 6) for a, p in epsilon_greedy(opt, epsilon, tol=1e-12).items()}
