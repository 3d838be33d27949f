"""Plots of evaluation curves and of the README demo (matplotlib on the Agg canvas).

Legends sit beside the axes, never over the curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graphflow.viz import figures
from graphflow.viz.figures import legend_beside

COLORS = {"graphflow": "#1f77b4", "adam": "#d62728", "sgd": "#7f7f7f"}
FORMATS = ("png", "svg", "pdf")


def eval_title(curves: dict, protocol: str = "") -> str:
    """What an eval plot shows: the protocol, the metric per inner step, over how many tasks.

    >>> from graphflow.evaluation import EvalCurve
    >>> eval_title({"graphflow": EvalCurve("l2", [0, 1], [0.1, 0.05], [0.0, 0.0], 100)}, "sinusoid_demo.npz")
    'sinusoid_demo.npz: eval l2 loss after each inner step\\nmean ± std over 100 fresh tasks'
    """
    first = next(iter(curves.values()))
    metric = f"{first.metric} loss" if first.metric in ("l1", "l2", "ce") else first.metric
    versus = ", against the baselines" if len(curves) > 1 else ""
    return (f"{protocol + ': ' if protocol else ''}eval {metric} after each inner step\n"
            f"mean ± std over {first.tasks} fresh tasks{versus}")


def plot_eval_curves(curves: dict, path: str | Path, title: str | None = None, protocol: str = "") -> Path:
    """Mean ± std of each learner's eval metric against the inner step.

    ``title`` replaces the default one, :func:`eval_title` of ``protocol`` (its name or file).

    >>> import tempfile
    >>> from graphflow.evaluation import EvalCurve
    >>> curves = {"graphflow": EvalCurve("l2", [0, 1], [0.1, 0.05], [0.01, 0.01], 10)}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_eval_curves(curves, f"{tmp}/e.png", protocol="demo").stat().st_size > 0
    True
    """
    fig = figures.figure(6.8, 3.8, dpi=120)
    ax = fig.add_subplot()
    first = next(iter(curves.values()))
    log = first.metric == "l2"
    # on the log scale mean - std is often below zero: the band stops at a quarter of the lowest mean
    floor = min(min(c.mean) for c in curves.values()) / 4 if log else -np.inf
    for name, c in curves.items():
        mean, std = np.asarray(c.mean), np.asarray(c.std)
        ax.plot(c.steps, mean, marker="o", label=name, color=COLORS.get(name))
        ax.fill_between(c.steps, np.maximum(mean - std, floor), mean + std, alpha=0.15, color=COLORS.get(name))
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    ax.set_xlabel("inner step")
    ax.set_ylabel(f"eval {first.metric} ({first.tasks} tasks)")
    ax.set_title(title if title is not None else eval_title(curves, protocol), fontsize=10)
    legend_beside(ax, fontsize=8, title="mean (line), ± std (band)" + ("\ncut at the plot's bottom" if log else ""),
                  title_fontsize=7)
    return figures.save(fig, path, dpi=120, formats=FORMATS)


def plot_demo(grid, truth, traces: dict, x, y, curves: dict, path: str | Path, meta: dict) -> Path:
    """Left: one task, the network after each inner step (learned protocol) and Adam's last step.
    Right: eval loss per step over many fresh tasks."""
    from matplotlib import colormaps

    fig = figures.figure(12.5, 4.2, dpi=110)
    ax, bx = fig.subplots(1, 2, width_ratios=(1.35, 1))
    ax.plot(grid, truth, color="black", lw=2, label="target sine")
    steps = len(traces["graphflow"])
    for k, pred in enumerate(traces["graphflow"]):
        ax.plot(grid, pred, color=colormaps["Blues"](0.3 + 0.7 * k / (steps - 1)), lw=1.5,
                label=f"graphflow MPLP, step 0..{steps - 1}\n(light to dark)" if k == steps - 1 else None)
    ax.plot(grid, traces["adam"][-1], color=COLORS["adam"], ls="--", label=f"Adam lr 0.01, step {steps - 1}")
    ax.scatter(x, y, s=12, color="orange", zorder=3, label=f"the {len(x)} training points")
    ax.set_title(f"a fresh network learning a sine in {steps - 1} steps")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    legend_beside(ax, fontsize=8)
    for name, c in curves.items():
        bx.plot(c.steps, c.mean, marker="o", color=COLORS.get(name), label=name)
    bx.set_yscale("log")
    bx.set_xlabel("inner step")
    bx.set_ylabel(f"eval L2 loss, mean of {next(iter(curves.values())).tasks} tasks")
    trained = meta.get("trained_steps")
    bx.set_title("learned protocol vs Adam" + (f"\n(the protocol meta-trained {trained} steps)" if trained else ""))
    legend_beside(bx, fontsize=8)
    return figures.save(fig, path, dpi=110, formats=FORMATS)
