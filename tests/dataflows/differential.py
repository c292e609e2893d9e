"""The differential harness: two implementations of an agent's join, fed the same
activations, compared output by output as bytes.

An implementation is a factory of :class:`~dataflows.join_types.AgentCore`. The harness
drives its cores as the Bytewax glue does (:class:`dataflows.agent_step.AgentLogic`): each
batch's events go to their agent's core in one :meth:`~AgentCore.on_events` call, the tick
watermark and the wall clock move, agents are woken (:meth:`~AgentCore.advance`), their
documents are written with the policy versions not yet written, some cores are pickled and
restored between batches as an epoch end and a recovery would, and at the end every core
drains. Every answer goes into a *transcript*, a list of byte strings: the
:class:`~dataflows.join_types.Emitted` of each call (reward and policy JSON, dead letters,
counts), each document as JSON, each ``next_due`` and ``notify_at``, and every call the core
made on its learner with its arguments (:class:`RecordingLearner`). The random choices come
from one seeded RNG, so the same seed drives two implementations through the same calls,
and their transcripts are equal exactly when they behaved the same.

``docs/agent-core.md`` ("How it is proven equal") is what this is for: a compiled core is
compared with :class:`dataflows.agent_state.AgentState` here.
"""

from __future__ import annotations

import heapq
import pickle
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage

from dataflows.join_types import AgentCore, Emitted, JoinConfig
from dataflows.learner import make_learner
from dataflows.source import ShardCache, parse_and_clock
from schemas.agent import AgentSpec
from schemas.events import AgentUpserted, PolicyRollbackRequested, PriorAssigned, dump_event
from schemas.priors import Archetype, PriorDocument
from schemas.topics import Topics
from tests.dataflows.streams import keyed_messages

Factory = Callable[[str, str, JoinConfig], AgentCore]

ACTIONS = ["a", "b", "c", "d"]  # those of tests.dataflows.mixed_stream
PRIOR = PriorDocument(template="coach", version=3, actions=ACTIONS, archetypes=[
    Archetype(name="keen", size=5, values={"*": {"a": 0.7, "b": -0.4, "c": 0.1, "d": -0.2}}),
    Archetype(name="calm", size=3, values={"*": {"a": -0.5, "b": 0.6, "c": 0.0, "d": 0.2}})])


class RecordingLearner:
    """A learner that writes down every call the join makes on it (name and arguments,
    then the answer), and otherwise is the learner it wraps."""

    def __init__(self, inner: Any, calls: list[bytes]) -> None:
        self.__dict__["_inner"], self.__dict__["_calls"] = inner, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.__dict__["_inner"], name)
        if not callable(attr):
            return attr
        calls = self.__dict__["_calls"]

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = attr(*args, **kwargs)
            calls.append(f"learner.{name}{_show(args)}{_show(kwargs)} -> "
                         f"{_show(answer)}".encode())
            return answer

        return call

    def __reduce__(self) -> tuple[Any, ...]:  # a restored core gets its plain learner back
        return (_unwrapped, (self.__dict__["_inner"],))


def _unwrapped(inner: Any) -> Any:
    return inner


def _text(x: Any) -> str:
    """Bytes in a document (the JSON of policy versions and history) as their text."""
    if isinstance(x, bytes):
        return x.decode()
    raise TypeError(type(x))


def _show(x: Any) -> str:
    """A stable text of call arguments and answers: models as their JSON, the rest (tuples
    of floats, dicts in their order) as ``repr``, exact for floats."""
    if hasattr(x, "model_dump_json"):
        return str(x.model_dump_json())
    if isinstance(x, tuple | list):
        return "(" + ", ".join(_show(v) for v in x) + ")"
    return repr(x)


def control_events(topics: Topics, agents: int, t0: float, span: float, seed: int
                   ) -> list[tuple[float, str, bytes]]:
    """Registrations (traits, features, templates, an algorithm switch), population priors
    and rollbacks for ``agents`` agents over ``[t0, t0 + span)``: ``(ts, topic, JSON)``."""
    rng = random.Random(seed)
    out: list[tuple[float, str, bytes]] = []

    def spec(agent: str, **extra: Any) -> AgentSpec:
        return AgentSpec.model_validate({
            "persona": {"name": agent}, "actions": ACTIONS, "context_keys": ["slot"],
            "traits": {"humor": 0.5}, "template": "coach", **extra})

    def at(x: float) -> datetime:
        return datetime.fromtimestamp(x, UTC)

    for i in range(agents):
        agent = f"ag{i}"
        first = spec(agent, features=["energy"] if i % 3 == 0 else [])
        events: list[Any] = [AgentUpserted(agent_id=agent, spec=first, ts=at(t0 - 1.0),
                                           prior=PRIOR if i % 2 == 0 else None)]
        t = t0 + rng.uniform(0.2, 0.5) * span
        algorithm = rng.choice(["ucb", "thompson", "epsilon_greedy"])
        events.append(AgentUpserted(agent_id=agent, ts=at(t), spec=spec(
            agent, algorithm=algorithm, traits={"humor": 0.3, "warmth": 0.6})))
        t = t0 + rng.uniform(0.5, 0.8) * span
        events.append(PriorAssigned(agent_id=agent, template="coach", ts=at(t),
                                    prior=PRIOR.model_copy(update={"version": 4})))
        t = t0 + rng.uniform(0.6, 0.9) * span
        old = make_learner(agent, "default", first).policy()
        events.append(PolicyRollbackRequested(agent_id=agent, ts=at(t), target_version=0,
                                              policy=old))
        for e in events:  # ids from the seed, so the same seed makes the same events
            e = e.model_copy(update={"event_id": uuid.UUID(int=rng.getrandbits(128),
                                                            version=4)})
            out.append((e.ts.timestamp(), topics.agents, dump_event(e)))
    return out


def with_control(stream: list[tuple[str, bytes]], control: list[tuple[float, str, bytes]]
                 ) -> list[tuple[str, bytes]]:
    """``stream`` with the control events produced among it by event time (an item without
    a readable ts, garbage, keeps its place after the one before it)."""
    timed, last = [], float("-inf")
    for topic, raw in stream:
        try:
            last = datetime.fromisoformat(orjson.loads(raw)["ts"]).timestamp()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            pass
        timed.append((last, topic, raw))
    return [(topic, raw) for _, topic, raw in heapq.merge(timed, sorted(control),
                                                          key=lambda x: x[0])]


def _emitted(out: Emitted) -> bytes:
    return orjson.dumps({
        "rewards": out.rewards, "policies": out.policies,
        "dead": [dump_event(d).decode() for d in out.dead],
        "late": out.late, "duplicates": out.duplicates, "joined": out.joined})


def parsed(stream: list[tuple[str, bytes]]) -> list[Any]:
    """The flow's input step over ``stream`` (two partitions a topic, keyed by agent): the
    valid events as :class:`dataflows.source.Parsed` items, in arrival order."""
    msgs = keyed_messages(stream, {})
    return [item for _, item in parse_and_clock(msgs, {}, "dlq", ShardCache(64))
            if item.__class__ is not KafkaSinkMessage]


class Driver:
    """Runs one implementation over the items of a stream and keeps its transcript."""

    def __init__(self, factory: Factory, cfg: JoinConfig, seed: int) -> None:
        self.factory, self.cfg = factory, cfg
        self.rng = random.Random(seed)
        self.cores: dict[str, AgentCore] = {}
        self.unsent: dict[str, list[tuple[dict[str, Any], bytes]]] = {}
        self.transcript: list[bytes] = []
        self.tally = {"rewards": 0, "policies": 0, "dead": 0, "documents": 0,
                      "restores": 0, "wakeups": 0, "learner_calls": 0}

    def _record(self, what: str, name: str, out: Emitted) -> None:
        self.transcript.append(f"{what} {name} ".encode() + _emitted(out))
        self.tally["rewards"] += len(out.rewards)
        self.tally["dead"] += len(out.dead)
        self.tally["policies"] += len(out.policies)
        self.unsent.setdefault(name, []).extend((p, orjson.dumps(p)) for p in out.policies)

    def _new(self, name: str, tenant: str, agent_id: str) -> AgentCore:
        core = self.cores[name] = self.factory(tenant, agent_id, self.cfg)
        self._wrap(core)
        return core

    def _wrap(self, core: AgentCore) -> None:
        # the learner is the implementation's; both keep it as ``learner`` (AgentCore's
        # contract with the glue does not name it, so a core without it fails here)
        core.learner = RecordingLearner(core.learner, self.transcript)  # type: ignore[attr-defined]

    def _document(self, name: str) -> None:
        full = self.rng.random() < 0.5
        doc = self.cores[name].document(self.unsent.pop(name, []), full=full)
        self.transcript.append(f"document {name} ".encode() + orjson.dumps(
            doc, default=_text, option=orjson.OPT_NON_STR_KEYS))
        self.tally["documents"] += 1

    def run(self, items: list[Any]) -> list[bytes]:
        rng, cfg = self.rng, self.cfg
        now, floor, newest = 1_000.0, float("-inf"), {}
        i = 0
        while i < len(items):
            batch = items[i:i + rng.randint(1, 80)]
            i += len(batch)
            now += rng.uniform(0.01, 0.3)
            groups: dict[str, list[Any]] = {}
            for item in batch:  # as ShardLogic._events groups a shard's batch
                groups.setdefault(item[0], []).append(item)
                meta = item[2]
                newest[meta[:2]] = max(newest.get(meta[:2], float("-inf")),
                                       item[1].ts.timestamp())
            for name, evs in groups.items():
                core = self.cores.get(name) or self._new(name, evs[0][1].tenant,
                                                         evs[0][1].agent_id)
                self._record("on_events", name, core.on_events(evs, now, now, floor))
            if rng.random() < 0.5:  # a tick: the partitions' clocks as far as read
                floor = max(floor, min(newest.values()) - cfg.lateness)
            if rng.random() < 0.05:  # the input goes quiet: the idle fallback's time
                now += rng.uniform(0.5, 3.0)
            for name in sorted(self.cores):
                core = self.cores[name]
                due = core.next_due()
                self.transcript.append(
                    f"due {name} {due!r} {core.notify_at(now, due)!r}".encode())
                if name in groups or rng.random() < 0.3:
                    self._record("advance", name, core.advance(now, now - 0.1, floor))
                    self.tally["wakeups"] += 1
                if rng.random() < 0.2:
                    self._document(name)
            if rng.random() < 0.05:  # an epoch end, and a restore from it
                for name in rng.sample(sorted(self.cores), k=min(3, len(self.cores))):
                    core = pickle.loads(pickle.dumps(self.cores[name]))  # noqa: S301
                    core.cfg = cfg
                    self._wrap(core)
                    self.cores[name] = core
                    self.tally["restores"] += 1
        for name in sorted(self.cores):
            self._record("drain", name, self.cores[name].drain())
            self._document(name)
        self.tally["learner_calls"] = sum(1 for t in self.transcript
                                          if t.startswith(b"learner."))
        return self.transcript


def first_difference(a: list[bytes], b: list[bytes]) -> str | None:
    """Where two transcripts part (``None`` when equal), with the two entries."""
    for n, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"entry {n}:\n  {x[:400]!r}\n  {y[:400]!r}"
    if len(a) != len(b):
        return f"lengths {len(a)} and {len(b)}"
    return None
