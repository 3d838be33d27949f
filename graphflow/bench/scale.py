"""The scale case: MNIST 784-1000-1000-10 (1.8M weight nodes) with the MNIST protocol's sizes.

One inner step (1 task x 8 examples), then one meta-step of 20 inner steps with recomputation
(``recompute_every=4``: the tape holds four inner steps, and the states at the start of the five
segments are kept; each state holds the learners' carries, 0.7 GB here) and recomputed learner
cells (``remat_cells``: no cell residuals on the tape), each with its wall time and peak host
memory (tracemalloc). ``quick``: 784-100-100-10 and 2 inner steps, to check the machinery.

>>> case = scale_case(quick=True)
>>> case["name"], case["layers"], case["meta_inner_steps"], case["meta_peak_bytes"] > 0
('scale-784-100-100-10', [784, 100, 100, 10], 2, True)
"""

from __future__ import annotations

import time

import numpy as np

from graphflow.bench.timing import peak_bytes


def scale_graph(hidden: int = 1000):
    """784 -> hidden sigmoid -> hidden sigmoid -> 10 softmax, cross-entropy, learners shared by kind."""
    from graphflow.bench.workloads import _mnist_learner
    from graphflow.dsl.layers import CrossEntropy, Dense, Sigmoid, Softmax, stack
    from graphflow.graph import build
    from graphflow.learners.protocol import Protocol

    graph = build(stack(784, Dense(hidden), Sigmoid(), Dense(hidden), Sigmoid(), Dense(10), Softmax(), CrossEntropy(),
                        sharing="kind"))
    return graph, Protocol.init(graph, _mnist_learner(), 0)


def _timed_peak(fn) -> tuple[float, int, object]:
    out = []
    start = time.perf_counter()
    peak = peak_bytes(lambda: out.append(fn()))
    return time.perf_counter() - start, peak, out[0]


def scale_case(backend: str = "numpy", quick: bool = False, progress=None) -> dict:
    """Seconds and peak memory of one inner step and one 20-step meta-step of 784-1000-1000-10
    (recomputation every round(sqrt(steps)) inner steps)."""
    from graphflow.bench.workloads import inner_data, meta_batch, Workload, weight_nodes
    from graphflow.engine import Engine
    from graphflow.meta.metaloss import MetaGradient

    hidden, steps = (100, 2) if quick else (1000, 20)
    graph, protocol = scale_graph(hidden)
    name = f"scale-784-{hidden}-{hidden}-10"
    say = progress or (lambda message: None)
    rng = np.random.default_rng(0)
    engine = Engine(graph, protocol, backend)
    x, y = (engine.be.asarray(a) for a in inner_data(graph, 1, 8, rng))
    state = engine.init_network(rng, 1)
    say(f"{name}: one inner step ({weight_nodes(graph):,} weight nodes)")
    engine.step(state, x, y)  # compiles the kernels, fills the carries
    inner_seconds, inner_peak, _ = _timed_peak(lambda: engine.step(state, x, y))
    batch = meta_batch(graph, Workload("mnist", tasks=1, batch=8, steps=steps), rng)
    init = {k: engine.be.to_numpy(v) for k, v in engine.init_network(rng, 1).params.items()}
    every = max(1, round(steps ** 0.5))
    metagrad = MetaGradient(graph, protocol, backend, recompute_every=every, remat_cells=True)
    say(f"{name}: one meta-step of {steps} inner steps (recompute_every={every}, remat_cells)")
    meta_seconds, meta_peak, (loss, _) = _timed_peak(lambda: metagrad(protocol, batch, init))
    return {"name": name, "kind": "scale", "backend": engine.be.name, "seconds": None,
            "layers": [784, hidden, hidden, 10], "weight_nodes": weight_nodes(graph), "tasks": 1, "batch": 8,
            "inner_seconds": inner_seconds, "inner_peak_bytes": inner_peak,
            "meta_inner_steps": steps, "meta_seconds": meta_seconds, "meta_peak_bytes": meta_peak,
            "meta_loss": float(loss), "recompute_every": every, "remat_cells": True,
            "what": "one inner step, and one meta-step with recomputation, peak host memory by tracemalloc"}


__all__ = ["scale_case", "scale_graph"]
