"""Drive rewardflow's trait tuning with simulated companion-world people over HTTP.

Run against the stack of ``make run`` (``make companion-demo``)::

    python -m simulator.companion_demo --base-url http://127.0.0.1:8000 \\
        [--people 6 --interactions 1500 --seed 0 --out simulator/out]

Every simulated person (:mod:`simulator.companion`: a hidden trait taste that shifts with the
room, implicit signals, sparse thumbs) gets their own companion agent with trait bounds
[0.05, 0.95] and half of its decisions probing a trait. For each message the driver asks the
gateway to decide (the room as context), shows the person the traits the gateway sent (probe
included) and posts what the person did: reply latency, message length, sentiment,
abandonment, re-invitation and the occasional thumbs, all tied to the decision, then a
``session_end`` (weight 0 in the reward model: it only closes the decision, as the end of a
chat turn does). The dataflow turns them into rewards, the learner compares probe outcomes
and moves traits; the driver never waits for it (decisions use whatever policy is current,
so rewards arrive some decisions late, as they do in production). Event times are the
gateway's clock, so the demo can run again, or beside ``make demo``, on the same stack.
People play in rounds, one message each per round, concurrently (one thread each).

It prints, per person, the distance of the agent's traits from the person's room-shifted
taste (:func:`simulator.companion.room_trait_distance`) at the start and at the end, the
traits beside the taste, and every trait value the gateway sent outside the bounds (there
must be none); writes ``companion_demo.json`` and ``companion_traits.png`` (distance over
messages, one line per person) to ``--out``. PASS when nothing left its bounds and at least
two thirds of the people end closer to their taste; else it exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from simulator import companion as comp

BOUNDS = (0.05, 0.95)
MIN_SHARE_CLOSER = 2 / 3


def agent_spec() -> dict[str, Any]:
    """The companion agent each person gets: neutral traits, bounds, half the decisions
    probing (the in-process benchmark's spec, ``bench.learning_companion.companion_spec``)."""
    spec = comp.companion_agent_spec()
    spec["trait_bounds"] = {t: list(BOUNDS) for t in comp.TRAITS}
    spec["probe_share"] = 0.5
    return spec


def outside_bounds(traits: dict[str, float]) -> list[str]:
    """``trait=value`` for every trait outside :data:`BOUNDS`.

    >>> outside_bounds({"humor": 0.97, "empathy": 0.5})
    ['humor=0.97']
    """
    lo, hi = BOUNDS
    return [f"{t}={v}" for t, v in traits.items() if not lo - 1e-9 <= v <= hi + 1e-9]


def base_traits(body: dict[str, Any]) -> dict[str, float]:
    """The policy's traits behind a decision: what was sent, without its probe.

    >>> base_traits({"traits": {"humor": 0.6, "empathy": 0.5},
    ...              "probe": {"trait": "humor", "delta": 0.1}})
    {'humor': 0.5, 'empathy': 0.5}
    """
    traits = {t: float(v) for t, v in body["traits"].items()}
    probe = body.get("probe")
    if probe:
        traits[probe["trait"]] = round(traits[probe["trait"]] - probe["delta"], 6)
    return traits


class Player:
    """One person and their agent; :meth:`message` plays one message."""

    def __init__(self, client: Any, agent_id: str, person: comp.CompanionPerson,
                 seed: int) -> None:
        self.client, self.agent_id, self.person = client, agent_id, person
        self.world = comp.CompanionWorld(person, seed)
        self.start = dict(agent_spec()["traits"])
        self.curve = [self.world.trait_distance(self.start)]
        self.violations: list[str] = []
        self.last: dict[str, Any] | None = None

    def message(self, t: int) -> None:
        ctx = self.world.context()
        body = self.client.decide(self.agent_id, self.person.person_id, ctx)
        sent = body["traits"]
        self.violations += [f"message {t}: {v}" for v in outside_bounds(sent)]
        out = self.world.respond(sent, ctx, decision_id=body["decision_id"],
                                 agent_id=self.agent_id)
        if out["signals"]:
            self.client.signals(out["signals"])
        for f in out["feedback"]:
            self.client.feedback(f["decision_id"], self.agent_id, f["user_id"], f["kind"],
                                 f["value"])
        self.client.signals([{"decision_id": body["decision_id"], "agent_id": self.agent_id,
                              "user_id": self.person.person_id, "kind": "session_end",
                              "value": 1.0}])
        self.last = body


def policy_rewards(policy: dict[str, Any]) -> int:
    """How many rewards a policy document has learned from (its ``evidence``)."""
    return int(policy.get("evidence", {}).get("rewards", 0))


def settle(client: Any, agent_ids: Sequence[str], rewards: int, timeout: float) -> bool:
    """Wait until every agent's policy counts ``rewards`` rewards (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(policy_rewards(client.policy(a)) >= rewards for a in agent_ids):
            return True
        time.sleep(0.2)
    return False


def report(runs: list[Player], policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for r in runs:
        pol = policies[r.agent_id]
        end = {**r.start, **pol["traits"]}
        d0, d1 = r.world.trait_distance(r.start), r.world.trait_distance(end)
        out_of_bounds = [f"policy {v}" for v in outside_bounds(pol["traits"])]
        rows.append({"agent_id": r.agent_id, "start": d0, "end": d1, "closer": d1 < d0,
                     "traits": end, "taste": dict(r.person.taste),
                     "violations": r.violations + out_of_bounds,
                     "policy_version": pol["version"], "explanation": pol["explanation"],
                     "rewards": policy_rewards(pol),
                     "curve": r.curve + [d1]})
    closer = sum(row["closer"] for row in rows)
    violations = sum(len(row["violations"]) for row in rows)
    ok = violations == 0 and closer >= MIN_SHARE_CLOSER * len(rows)
    return {"people": rows, "closer": closer, "violations": violations, "pass": ok}


def plot(rows: list[dict[str, Any]], block: int, interactions: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row in rows:
        n = len(row["curve"])
        xs = [0] + [block * (i + 1) for i in range(n - 2)] + [interactions]  # last: the end
        ax.plot(xs, row["curve"], label=row["agent_id"].rsplit("-", 1)[-1])
    ax.set_xlabel("messages")
    ax.set_ylabel("distance to the room-shifted taste")
    ax.set_title("Companion world over HTTP: the agent's traits vs each person's taste")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(client: Any, people: int, interactions: int, seed: int, block: int,
        run_id: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Register one agent per person, play them in rounds (one message each, concurrently),
    wait for the last rewards and return :func:`report`'s summary (``settled``: every
    reward arrived within ``timeout``)."""
    run_id = run_id or uuid.uuid4().hex[:8]
    crowd = comp.make_companion_people(people, seed=seed)
    ids = [f"comp-{run_id}-{p.person_id}" for p in crowd]
    for agent_id in ids:
        client.upsert_agent(agent_id, agent_spec())
    players = [Player(client, a, p, seed) for a, p in zip(ids, crowd, strict=True)]
    # Rounds keep the people in step (each curve point is the same message count for all).
    with ThreadPoolExecutor(max_workers=len(players)) as pool:
        for t in range(interactions):
            list(pool.map(lambda p: p.message(t), players))  # noqa: B023 - consumed here
            if t % block == block - 1:
                for p in players:
                    if p.last is not None:
                        p.curve.append(p.world.trait_distance(base_traits(p.last)))
    settled = settle(client, ids, interactions, timeout)
    out = report(players, {a: client.policy(a) for a in ids})
    out["settled"] = settled
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m simulator.companion_demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--people", type=int, default=6)
    ap.add_argument("--interactions", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block", type=int, default=50, help="messages per point of the curve")
    ap.add_argument("--out", default="simulator/out")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from gateway.client import RewardflowClient

    t0 = time.monotonic()
    with RewardflowClient(args.base_url, api_key=args.api_key, timeout=10.0) as client:
        res = run(client, args.people, args.interactions, args.seed, args.block)
    seconds = time.monotonic() - t0
    for row in res["people"]:
        print(f"{row['agent_id']}: distance {row['start']:.3f} -> {row['end']:.3f} "
              f"({'closer' if row['closer'] else 'NOT closer'}), policy v{row['policy_version']}"
              f", {len(row['violations'])} out of bounds")
        print("   trait    " + "  ".join(f"{t[:6]:>6s}" for t in comp.TRAITS))
        print("   agent    " + "  ".join(f"{row['traits'][t]:6.3f}" for t in comp.TRAITS))
        print("   taste    " + "  ".join(f"{row['taste'][t]:6.3f}" for t in comp.TRAITS))
        for v in row["violations"][:5]:
            print(f"   OUT OF BOUNDS: {v}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(res["people"], args.block, args.interactions, out / "companion_traits.png")
    (out / "companion_demo.json").write_text(json.dumps(
        res | {"seconds": round(seconds, 1)}, indent=1, default=str))
    n = len(res["people"])
    print(f"\n{res['closer']}/{n} people closer to their taste, {res['violations']} trait values "
          f"out of bounds, {args.people * args.interactions} messages in {seconds:.0f} s"
          + ("" if res["settled"] else " (some rewards had not arrived when it stopped)"))
    print(f"wrote {out / 'companion_traits.png'} and {out / 'companion_demo.json'}")
    print("PASS" if res["pass"] else "FAIL")
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
