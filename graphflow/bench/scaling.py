"""Linearity of inner-step time in the number of weight nodes: the fit and the plot.

The fit is ``seconds = intercept + slope * nodes``, least squares in relative error (each point
weighted by 1/seconds^2, so that small networks count as much as large ones); the deviation of a
point is ``max(measured / fitted, fitted / measured)``, and the sweep is linear "within 1.2x" when
every point's deviation is at most 1.2.

>>> fit = linear_fit([1e4, 1e5, 1e6], [0.011, 0.101, 1.001])
>>> round(fit["seconds_per_weight_node"] * 1e6, 3), fit["max_deviation"] < 1.01
(1.0, True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def linear_fit(nodes, seconds) -> dict:
    """Intercept (s), slope (s per weight node) and the largest ratio between measured and fitted."""
    n = np.asarray(nodes, np.float64)
    t = np.asarray(seconds, np.float64)
    if len(n) < 2:
        return {"intercept_seconds": None, "seconds_per_weight_node": None, "max_deviation": None, "points": len(n)}
    design = np.stack([np.ones_like(n), n], axis=1) / t[:, None]
    (intercept, slope), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    if intercept < 0:  # a negative overhead is not physical: fit a line through the origin
        intercept, slope = 0.0, float(np.sum(n / t) / np.sum((n / t) ** 2))
    fitted = intercept + slope * n
    deviation = np.maximum(t / fitted, fitted / t)
    return {"intercept_seconds": float(intercept), "seconds_per_weight_node": float(slope),
            "max_deviation": float(deviation.max()), "deviations": [float(d) for d in deviation], "points": len(n)}


def plot_scaling(points: list[dict], fit: dict, path: str | Path, dense_fit: dict | None = None, title: str = "") -> Path:
    """Log-log plot of inner-step time against weight nodes (graphflow, dense baseline, fitted line)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    measured = [p for p in points if p.get("seconds") is not None]
    fig, (ax, per_node) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, marker in (("seconds", "graphflow", "o"), ("dense_seconds", "dense numpy baseline", "s")):
        xs = [p["weight_nodes"] for p in measured if p.get(key) is not None]
        ys = [p[key] for p in measured if p.get(key) is not None]
        if xs:
            ax.loglog(xs, ys, marker=marker, linestyle="none", label=label)
            per_node.semilogx(xs, [1e9 * y / x for x, y in zip(xs, ys)], marker=marker, label=label)
    for f, label, style in ((fit, "graphflow linear fit", "-"), (dense_fit, "dense linear fit", "--")):
        if f and f.get("seconds_per_weight_node") is not None and measured:
            grid = np.geomspace(min(p["weight_nodes"] for p in measured), max(p["weight_nodes"] for p in measured), 50)
            ax.loglog(grid, f["intercept_seconds"] + f["seconds_per_weight_node"] * grid, style, color="gray",
                      label=f"{label} (max deviation {f['max_deviation']:.2f}x)")
    ax.set_xlabel("weight nodes")
    ax.set_ylabel("seconds per inner step")
    ax.set_title(title or "inner-step time")
    ax.legend(fontsize=8)
    per_node.set_xlabel("weight nodes")
    per_node.set_ylabel("ns per weight node per step")
    per_node.set_title("time per weight node")
    per_node.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["linear_fit", "plot_scaling"]
