"""Learning benchmark report: plots and the ratio table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from simulator.metrics import TARGET, WINDOW

OUT = Path(__file__).parent / "out"


# -- report -------------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def plot(report: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    paths = []
    life = report["life"]["policies"]
    archetypes = list(next(iter(life.values()))["acceptance_per_week"])
    fig, axes = plt.subplots(1, len(archetypes), figsize=(5 * len(archetypes), 4), sharey=True)
    for ax, arch in zip(np.atleast_1d(axes), archetypes, strict=True):
        for name, d in life.items():
            ys = d["acceptance_per_week"][arch]
            ax.plot(range(1, len(ys) + 1), ys, marker="o", label=name)
        oracle = life["oracle"]["acceptance_per_week"][arch]
        ax.plot(range(1, len(oracle) + 1), [0.9 * o for o in oracle], ":", color="grey",
                label="90% of oracle")
        ax.set_title(f"life world: {arch}")
        ax.set_xlabel("week")
        ax.set_ylabel("expected acceptance")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    p = OUT / "learning_life.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, d in life.items():
        ratio = [e / o for e, o in zip(d["first_56_expected"], d["first_56_oracle"], strict=True)]
        k = WINDOW
        roll = [float(np.mean(ratio[max(0, i - k + 1):i + 1])) for i in range(len(ratio))]
        ax.plot(range(1, len(roll) + 1), roll, label=name)
    ax.axhline(TARGET, color="grey", ls=":")
    ax.axvline(8, color="grey", ls="--")
    ax.set_xlabel("interaction of a new person")
    ax.set_ylabel(f"rolling ({WINDOW}) expected acceptance / oracle")
    ax.set_title("a new person: how fast each policy reads them")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = OUT / "learning_new_person.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    compw = report["companion"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, d in compw.items():
        a1.plot(d["reward_per_block"], marker=".", label=name)
        if d.get("trait_distance_curve"):
            a2.plot(d["trait_distance_curve"], marker=".", label=name)
    a1.set_title("companion world: mean reward per block")
    a1.set_xlabel(f"block of {report['config']['companion_block']} messages")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.set_title("distance of learned traits to the hidden taste")
    a2.set_xlabel("block")
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    p = OUT / "learning_companion.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths


def table(report: dict[str, Any], main: str, prior_name: str) -> str:
    lines = []
    life = report["life"]["policies"]
    vw, orc, rnd = life["vw"], life["oracle"], life["random"]
    lines.append("LIFE WORLD (cumulative reward = accepts - ignores; expected acceptance)")
    lines.append(f"{'policy':28s} {'cum.reward':>10s} {'accept':>7s} {'/vw':>6s} {'/oracle':>7s} "
                 f"{'/random':>7s} {'wk4/orc(min arch)':>17s} {'t80 med':>7s} {'<=8':>5s} "
                 f"{'updates/s':>10s}")
    for name, d in life.items():
        wk4 = min(r[3] for r in d["ratio_to_oracle_per_week"].values() if len(r) > 3) \
            if all(len(r) > 3 for r in d["ratio_to_oracle_per_week"].values()) else float("nan")
        hits = d["interactions_to_80pct_oracle"]
        ups = d["updates_per_second"]
        lines.append(
            f"{name:28s} {d['cumulative_reward']:10.0f} {d['acceptance']:7.3f} "
            f"{_fmt(_ratio(d['acceptance'], vw['acceptance']))} "
            f"{_fmt(_ratio(d['acceptance'], orc['acceptance']), 7)} "
            f"{_fmt(_ratio(d['acceptance'], rnd['acceptance']), 7)} {wk4:17.3f} "
            f"{hits['median']:7.1f} {hits['within_8']:5.2f} "
            f"{(f'{ups:10.0f}' if ups else '         -')}")
    lines.append("")
    lines.append("COMPANION WORLD (reward model over implicit signals + sparse thumbs)")
    cw = report["companion"]
    lines.append(f"{'policy':28s} {'cum.reward':>10s} {'mean r':>7s} {'/vw':>6s} {'/oracle':>7s} "
                 f"{'/random':>7s} {'satisf.':>7s} {'dist 0->end':>13s} {'viol':>4s} "
                 f"{'updates/s':>10s}")
    for name, d in cw.items():
        dist = (f"{d['trait_distance_start']:.3f}->{d['trait_distance_end']:.3f}"
                if d.get("trait_distance_start") is not None else "-")
        ups = d["updates_per_second"]
        lines.append(
            f"{name:28s} {d['cumulative_reward']:10.0f} {d['mean_reward']:7.3f} "
            f"{_fmt(_ratio(d['cumulative_reward'], cw['vw']['cumulative_reward']))} "
            f"{_fmt(_ratio(d['cumulative_reward'], cw['oracle']['cumulative_reward']), 7)} "
            f"{_fmt(_ratio(d['cumulative_reward'], cw['random']['cumulative_reward']), 7)} "
            f"{d['mean_satisfaction']:7.3f} {dist:>13s} {int(d['bound_violations']):4d} "
            f"{(f'{ups:10.0f}' if ups else '         -')}")
    lines.append("")
    lines.append(f"main learner: {main}; with population prior: {prior_name}")
    return "\n".join(lines)


def _fmt(x: float | None, w: int = 6) -> str:
    return f"{x:{w}.3f}" if x is not None else " " * (w - 1) + "-"
