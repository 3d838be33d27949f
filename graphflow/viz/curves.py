"""Plots of evaluation curves and of the README demo (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = {"graphflow": "#1f77b4", "adam": "#d62728", "sgd": "#7f7f7f"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_eval_curves(curves: dict, path: str | Path, title: str = "") -> Path:
    """Mean ± std of each learner's eval metric against the inner step."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, c in curves.items():
        mean, std = np.asarray(c.mean), np.asarray(c.std)
        ax.plot(c.steps, mean, marker="o", label=name, color=COLORS.get(name))
        ax.fill_between(c.steps, np.maximum(mean - std, 1e-6) if c.metric == "l2" else mean - std, mean + std,
                        alpha=0.15, color=COLORS.get(name))
    first = next(iter(curves.values()))
    if first.metric == "l2":
        ax.set_yscale("log")
    ax.set_xlabel("inner step")
    ax.set_ylabel(f"eval {first.metric} ({first.tasks} tasks)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_demo(grid, truth, traces: dict, x, y, curves: dict, path: str | Path, meta: dict) -> Path:
    """Left: one task, the network after each inner step (learned protocol) and Adam's last step.
    Right: eval loss per step over many fresh tasks."""
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot(grid, truth, color="black", lw=2, label="target sine")
    steps = len(traces["graphflow"])
    for k, pred in enumerate(traces["graphflow"]):
        ax.plot(grid, pred, color=plt.cm.Blues(0.3 + 0.7 * k / (steps - 1)), lw=1.5,
                label="graphflow MPLP, step 0..5" if k == steps - 1 else None)
    ax.plot(grid, traces["adam"][-1], color=COLORS["adam"], ls="--", label="Adam lr 0.01, step 5")
    ax.scatter(x, y, s=12, color="orange", zorder=3, label="the 50 training points")
    ax.set_title("a fresh network learning a sine in 5 steps")
    ax.legend(fontsize=8, loc="lower left")
    for name, c in curves.items():
        bx.plot(c.steps, c.mean, marker="o", color=COLORS.get(name), label=name)
    bx.set_yscale("log")
    bx.set_xlabel("inner step")
    bx.set_ylabel(f"eval L2 loss, mean of {next(iter(curves.values())).tasks} tasks")
    trained = meta.get("trained_steps")
    bx.set_title("learned protocol vs Adam" + (f"\n(the protocol meta-trained {trained} steps)" if trained else ""))
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
