"""Bias and variance of the meta-gradient estimators: the two plots of docs/estimators.md.

- ``docs/estimators_population.png``: ES and PES against their population, on the small float64
  case of tests/meta/test_estimators.py (1-3-1 tanh, a stateful learner, nine trained entries:
  four update scales and one GRU bias; ES over a 3-step unroll, PES over 4 steps in truncations
  of 2, sigma 1e-3), against the exact gradient (bptt, float64). Over ``--seeds`` noise seeds
  per population: the bias |mean of the estimates - exact| / |exact| beside the level a zero bias
  would show with that many seeds (sqrt(variance / seeds) / |exact|), and the variance
  E|g - mean|^2 / |exact|^2 beside antithetic ES's theory (d + 1) / pairs.
- ``docs/estimators_truncation.png``: truncated backprop and PES (one pair, sigma 1e-3) against
  the truncation length K, on the scalar toy where truncation bias is real (``ScalarToy`` of
  tests/meta/test_estimators.py: SGD on a noisy target, its learning rate the meta-parameter,
  T = 100, 8 tasks per seed): over ``--toy-seeds`` seeds (fresh tasks and noise each), the mean
  difference of the whole unroll's estimate (the sum of its T / K truncations) to the exact
  whole-unroll gradient with its standard error, and the variance of the estimates over seeds
  beside the exact gradient's own variance over seeds (the tasks').

Run from the repository root::

    python benchmarks/estimator_plots.py [--seeds 16] [--toy-seeds 200] [--out docs]

It prints every plotted number. The toy and the small case come from the tests (one definition).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POPULATIONS = (4, 8, 16, 32, 64, 128, 256)
TRUNCATIONS = (1, 2, 5, 10, 20, 50, 100)


def _flat(grads: dict, keys: list[str]) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(grads[k], np.float64)) for k in keys])


def population_sweep(seeds: int, populations=POPULATIONS) -> dict:
    """Per estimator and population: relative bias, its zero-bias level and relative variance."""
    from graphflow.meta.estimators import make_estimator
    from graphflow.spec import MetaTrainingSpec
    from tests.meta.test_estimators import TRAINED, FixedDraws, small_case

    out = {}
    for kind, steps, estimator in (("es", 3, {"kind": "es", "sigma": 1e-3}),
                                   ("pes", 4, {"kind": "pes", "unroll": 4, "truncation": 2, "stagger": False,
                                               "sigma": 1e-3})):
        graph, protocol, batch, init, (_, exact) = small_case(steps)
        want = _flat(exact, TRAINED)
        out["trained"] = len(want)
        rows = []
        for population in populations:
            meta = MetaTrainingSpec(outer_batch=batch.tasks, inner_steps=steps,
                                    estimator={**estimator, "population": population})
            estimates = []
            for seed in range(seeds):
                est = make_estimator(meta.estimator, graph, protocol, TRAINED, meta, dtype=np.float64)
                if kind == "es":
                    grads = est.gradient(protocol, batch, init, seed)[1]
                else:  # a whole unroll: the sum of its two truncations, each scaled back by K / T
                    draws = FixedDraws(batch, init, noise=1000 * seed)
                    parts = [est.estimate(protocol, draws)[1] for _ in range(2)]
                    grads = {k: 0.5 * (parts[0][k] + parts[1][k]) for k in parts[0]}
                estimates.append(_flat(grads, TRAINED))
            e = np.array(estimates)
            scale = np.sum(want ** 2)
            variance = np.mean(np.sum((e - e.mean(0)) ** 2, axis=1)) * seeds / (seeds - 1)
            rows.append({"population": population, "bias": float(np.linalg.norm(e.mean(0) - want) / np.sqrt(scale)),
                         "zero_bias_level": float(np.sqrt(variance / seeds / scale)),
                         "variance": float(variance / scale)})
            print(f"{kind} P={population}: {rows[-1]}", flush=True)
        out[kind] = rows
    return out


def truncation_sweep(seeds: int, truncations=TRUNCATIONS) -> dict:
    """Per estimator and truncation: mean difference to the whole-unroll gradient (with its standard
    error) and the variance of the estimates over seeds; the exact gradient's mean and variance."""
    from graphflow.meta.estimators import PesEstimator, TruncatedEstimator
    from tests.meta.test_estimators import T, TOY_TASKS, ScalarToy, toy_estimate

    full = np.array([toy_estimate(TruncatedEstimator(ScalarToy(), TOY_TASKS, T, T, stagger=False), s)[1]
                     for s in range(seeds)])
    out = {"unroll": T, "tasks": TOY_TASKS, "seeds": seeds, "full_mean": float(full.mean()),
           "full_variance": float(full.var(ddof=1))}
    for kind in ("truncated", "pes"):
        rows = []
        for k in truncations:
            def make():
                if kind == "truncated":
                    return TruncatedEstimator(ScalarToy(), TOY_TASKS, T, k, stagger=False)
                return PesEstimator(ScalarToy(), TOY_TASKS, T, k, 2, 1e-3, stagger=False)

            g = np.array([toy_estimate(make(), s)[1] for s in range(seeds)])
            d = g - full
            rows.append({"truncation": k, "bias": float(d.mean()), "bias_se": float(d.std(ddof=1) / np.sqrt(seeds)),
                         "variance": float(g.var(ddof=1))})
            print(f"{kind} K={k}: {rows[-1]}", flush=True)
        out[kind] = rows
    print(f"exact whole-unroll gradient: mean {out['full_mean']:.4f}, variance over seeds {out['full_variance']:.4f}")
    return out


COLORS = {"es": "tab:blue", "pes": "tab:orange", "truncated": "tab:green"}
LABELS = {"es": "ES (antithetic)", "pes": "PES", "truncated": "truncated backprop"}


def _figure():
    """A figure of two panels side by side (matplotlib, no display): (figure, (left, right))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(11, 5.0))


def _finish(fig, panels: list, title: str, path: Path) -> Path:
    """Label the panels (``[(axes, y label, title)]``), put their legends below them, title the
    figure and write it to ``path``."""
    import matplotlib.pyplot as plt

    for ax, ylabel, panel_title in panels:
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title)
    for ax, _, _ in panels:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_population(data: dict, path: Path) -> Path:
    fig, (left, right) = _figure()
    for kind in ("es", "pes"):
        rows = data[kind]
        p = [r["population"] for r in rows]
        left.plot(p, [r["bias"] for r in rows], "o-", color=COLORS[kind], label=f"{LABELS[kind]}: bias")
        left.plot(p, [r["zero_bias_level"] for r in rows], ":", color=COLORS[kind],
                  label=f"{LABELS[kind]}: what zero bias shows")
        right.plot(p, [r["variance"] for r in rows], "o-", color=COLORS[kind], label=LABELS[kind])
    p = np.array(POPULATIONS, float)
    right.plot(p, (data["trained"] + 1) / (p / 2), "k--", lw=1, label=f"ES theory (d + 1) / pairs, d = {data['trained']}")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("population (members; pairs = population / 2)")
        ax.set_xticks(POPULATIONS, [str(v) for v in POPULATIONS])
        ax.grid(True, which="major", alpha=0.3)
    return _finish(fig, [(left, "|mean estimate - exact| / |exact|", "bias (mean over the seeds' estimates)"),
                         (right, "E |estimate - mean|² / |exact|²", "variance of one estimate")],
                   f"ES and PES against the exact gradient: 1-3-1 tanh, {data['trained']} trained entries, "
                   f"float64, sigma 1e-3, {data['seeds']} seeds per point", path)


def plot_truncation(data: dict, path: Path) -> Path:
    fig, (left, right) = _figure()
    for kind in ("truncated", "pes"):
        rows = data[kind]
        k = [r["truncation"] for r in rows]
        left.errorbar(k, [r["bias"] for r in rows], yerr=[r["bias_se"] for r in rows], fmt="o-", capsize=3,
                      color=COLORS[kind], label=LABELS[kind])
        right.plot(k, [r["variance"] for r in rows], "o-", color=COLORS[kind], label=LABELS[kind])
    left.axhline(0.0, color="k", lw=0.8)
    left.axhline(-data["full_mean"], color="gray", ls="--", lw=1,
                 label=f"an estimate of 0 (bias = -mean exact = {-data['full_mean']:.2f})")
    right.axhline(data["full_variance"], color="k", ls="--", lw=1, label="exact gradient (the tasks' own variance)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(TRUNCATIONS, [str(v) for v in TRUNCATIONS])
        ax.set_xlabel(f"truncation length K (of T = {data['unroll']})")
        ax.grid(True, which="major", alpha=0.3)
    right.set_yscale("log")
    return _finish(fig, [(left, "mean (estimate - exact), ± standard error", "bias of the whole unroll's estimate"),
                         (right, "variance over seeds", "variance of the whole unroll's estimate")],
                   f"Truncation on the scalar toy (SGD learning rate 0.03, T = {data['unroll']}, {data['tasks']} "
                   f"tasks per seed, {data['seeds']} seeds; PES: one pair, sigma 1e-3)", path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16, help="noise seeds per population (default 16)")
    parser.add_argument("--toy-seeds", type=int, default=200, help="seeds of the truncation toy (default 200)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="the folder of the two PNGs (default docs)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    truncation = truncation_sweep(args.toy_seeds)
    print("wrote", plot_truncation(truncation, args.out / "estimators_truncation.png"))
    population = population_sweep(args.seeds)
    population["seeds"] = args.seeds
    print("wrote", plot_population(population, args.out / "estimators_population.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
