"""A/B of two engine settings in one process: the meta-gradient of the sinusoid and MNIST presets,
the two settings alternating (the order flipping every round), medians over rounds.

    .venv/bin/python benchmarks/ab_engine_options.py kernels       # numba kernels against the array kernels
    .venv/bin/python benchmarks/ab_engine_options.py tape          # one tape entry per stage against one per operation
    .venv/bin/python benchmarks/ab_engine_options.py kernels --workloads mnist --rounds 6 --threads 2

Prints, per workload, each setting's median seconds per meta-step, their ratio, and how far the
two meta-gradients are apart (the worst relative difference over the protocol's arrays).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

SIZES = {"sinusoid": dict(tasks=4, steps=5, batch=10), "mnist": dict(tasks=1, steps=20, batch=8)}


def meta_batch(graph, tasks: int, steps: int, batch: int, rng):
    from graphflow.meta.metaloss import MetaBatch

    n_in, n_out = graph.inputs[0].size, graph.targets[0].size

    def data(n):
        x = rng.standard_normal((tasks, n, n_in)).astype(np.float32)
        if graph.losses[0].fn == "ce":
            y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, (tasks, n))]
        else:
            y = rng.uniform(-0.5, 0.5, (tasks, n, n_out)).astype(np.float32)
        return x, y

    xs, ys = zip(*[data(batch) for _ in range(steps)])
    xe, ye = data(10)
    return MetaBatch(np.stack(xs, 1), np.stack(ys, 1), xe, ye)


@contextmanager
def kernels(name: str):
    """Engines made inside use these learner-cell kernels."""
    import graphflow.backend as backend
    from graphflow.kernels import choose_kernels

    saved = backend.BACKENDS["numpy"]
    backend.BACKENDS["numpy"] = lambda dtype: backend.Backend("numpy", np, dtype,
                                                              kernels=choose_kernels("numpy", np, dtype, name))
    try:
        yield
    finally:
        backend.BACKENDS["numpy"] = saved


@contextmanager
def tape(per: str):
    """``stage``: today's tape, one entry per stage; ``operation``: every stage kind's VJP removed."""
    import graphflow.engine.stages as stages

    saved = dict(stages.STAGE_KINDS)
    if per == "operation":
        stages.STAGE_KINDS.update({k: replace(v, vjp=None) for k, v in saved.items()})
    try:
        yield
    finally:
        stages.STAGE_KINDS.clear()
        stages.STAGE_KINDS.update(saved)


SETTINGS = {"kernels": (("numba", lambda: kernels("numba")), ("numpy", lambda: kernels("numpy"))),
            "tape": (("per-stage", lambda: tape("stage")), ("per-operation", lambda: tape("operation")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compare", choices=sorted(SETTINGS))
    parser.add_argument("--workloads", default="sinusoid,mnist")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from graphflow.engine import Engine
    from graphflow.interop.mplp import preset_protocol
    from graphflow.meta.metaloss import MetaGradient

    for name in args.workloads.split(","):
        graph, protocol = preset_protocol(name, 0)
        batch = meta_batch(graph, **SIZES[name], rng=np.random.default_rng(0))
        init = dict(Engine(graph, protocol).init_network(np.random.default_rng(1), tasks=batch.tasks).params)
        settings = SETTINGS[args.compare]
        seconds = {label: [] for label, _ in settings}
        results = {}
        for r in range(args.rounds + 1):  # round 0 warms up (numba compiles, caches fill)
            for label, setting in (settings if r % 2 else settings[::-1]):
                with setting():
                    metagrad = MetaGradient(graph, protocol, threads=args.threads)
                    start = time.perf_counter()
                    results[label] = metagrad(protocol, batch, init)
                    if r:
                        seconds[label].append(time.perf_counter() - start)
        (a, _), (b, _) = settings
        medians = {label: statistics.median(v) for label, v in seconds.items()}
        worst = max(float(np.abs(results[a][1][k] - results[b][1][k]).max() / (np.abs(results[b][1][k]).max() + 1e-30))
                    for k in results[b][1])
        print(f"{name}: {a} {medians[a]:.3f} s, {b} {medians[b]:.3f} s per meta-step ({args.rounds} rounds, "
              f"{args.threads} thread(s)); {b} / {a} = {medians[b] / medians[a]:.2f}x; meta-loss {results[a][0]:.6g} vs "
              f"{results[b][0]:.6g}; gradients differ by at most {worst:.1e} (relative)")


if __name__ == "__main__":
    main()
