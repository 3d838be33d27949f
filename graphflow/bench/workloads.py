"""The benchmark workloads: which graph, protocol sizes, tasks, batch and steps each case runs, and which
case of the reference implementation's timing script each timed case is compared with.

Data are synthetic (standard-normal inputs; one-hot targets for classifiers, sinusoid-range targets
for regression): step time does not depend on the values, and the benchmarks must not need the
MNIST files. Protocols are random (``Protocol.init``) at the published sizes.

>>> [name for name, case in TIMED_CASES.items() if case.reference != name]
['sinusoid-meta-64']
>>> TIMED_CASES["sinusoid-inner"].workload.tasks, TIMED_CASES["sinusoid-inner-4"].workload.tasks
(1, 4)
>>> graph, protocol = graph_and_protocol("mnist784")
>>> graph.inputs[0].size, protocol.spec.message_size, protocol.spec.hidden, sorted(graph.groups)[:2]
(784, 4, 7, ['W', 'b'])
>>> weight_nodes(scaling_graph(126)[0])
100044
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One protocol's benchmark sizes (MPLP_SPEC.md, "The published runs")."""

    protocol: str
    """``sinusoid``, ``mnist`` (144-50-10) or ``mnist784`` (784-100-10 with the MNIST protocol sizes)."""
    tasks: int
    batch: int
    steps: int
    """Inner steps of one meta-training step."""
    heldout: int = 10


WORKLOADS = {
    "sinusoid": Workload("sinusoid", tasks=4, batch=10, steps=5),
    "mnist": Workload("mnist", tasks=1, batch=8, steps=20),
    "mnist784": Workload("mnist784", tasks=1, batch=8, steps=20),
}
"""The published sizes of each protocol (the memory case and the scaling sweep start from them)."""


@dataclass(frozen=True)
class TimedCase:
    """One timed case of ``graphflow bench``: what graphflow runs, and what it is compared with."""

    kind: str
    """``inner-step`` or ``meta-step``."""
    workload: Workload
    reference: str | None
    """The case of the reference's timing script doing the same work; where its number of tasks
    differs (``sinusoid-meta-64`` against the 4-task ``sinusoid-meta``), the two compare per task."""


TIMED_CASES = {
    "sinusoid-inner": TimedCase("inner-step", replace(WORKLOADS["sinusoid"], tasks=1), "sinusoid-inner"),
    "sinusoid-inner-4": TimedCase("inner-step", WORKLOADS["sinusoid"], "sinusoid-inner-4"),
    "sinusoid-meta": TimedCase("meta-step", WORKLOADS["sinusoid"], "sinusoid-meta"),
    "sinusoid-meta-64": TimedCase("meta-step", replace(WORKLOADS["sinusoid"], tasks=64), "sinusoid-meta"),
    "mnist-inner": TimedCase("inner-step", WORKLOADS["mnist"], "mnist-inner"),
    "mnist-meta": TimedCase("meta-step", WORKLOADS["mnist"], "mnist-meta"),
    "mnist784-inner": TimedCase("inner-step", WORKLOADS["mnist784"], "mnist784-inner"),
}
"""The inner- and meta-step cases, in the order the bench runs them."""

REFERENCE_CASES = ("sinusoid-inner", "sinusoid-inner-4", "sinusoid-meta", "mnist-inner", "mnist-meta", "mnist784-inner")
"""The cases of the reference's timing script (``shared/reference/tf/timing.py``), named as there; each
is the graphflow case of the same name, same sizes and number of tasks."""

SCALING_WEIGHT_NODES = (10_000, 30_000, 100_000, 300_000, 1_000_000, 2_000_000)
"""Weight-node counts of the inner-step scaling sweep (784 -> h -> 10 stacks, h = n / 794)."""

QUICK_SCALING_WEIGHT_NODES = (10_000, 20_000, 40_000)
"""The small sweep of ``--quick`` (it checks the machinery, not the linearity of large networks)."""

BUILD_STACKS = ((144, 50, 10), (784, 100, 10), (784, 1000, 10), (784, 1000, 1000, 10))


def _mnist_learner():
    from graphflow.interop.mplp import PROTOCOL_PRESETS

    return PROTOCOL_PRESETS["mnist"][1]


def graph_and_protocol(name: str, seed: int = 0):
    """(graph, random protocol) of a workload's protocol name."""
    from graphflow.graph import build
    from graphflow.interop.mplp import preset_protocol
    from graphflow.learners.protocol import Protocol
    from graphflow.presets import PRESETS

    if name == "mnist784":
        graph = build(PRESETS["mnist-784"]())
        return graph, Protocol.init(graph, _mnist_learner(), seed)
    return preset_protocol(name, seed)


def scaling_graph(hidden: int, seed: int = 0):
    """784 -> hidden sigmoid -> 10 softmax, cross-entropy, with the MNIST protocol sizes and sharing."""
    from graphflow.dsl.layers import CrossEntropy, Dense, Sigmoid, Softmax, stack
    from graphflow.graph import build
    from graphflow.learners.protocol import Protocol

    graph = build(stack(784, Dense(hidden), Sigmoid(), Dense(10), Softmax(), CrossEntropy(), sharing="kind"))
    return graph, Protocol.init(graph, _mnist_learner(), seed)


def scaling_hidden(weight_nodes_wanted: int) -> int:
    """Hidden width h of a 784-h-10 stack with about that many weight nodes (794 per hidden unit)."""
    return max(1, round(weight_nodes_wanted / (784 + 10)))


def weight_nodes(graph) -> int:
    return sum(w.size for w in graph.weights.values())


def inner_data(graph, tasks: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x [T, B, n_in] and y [T, B, n_out] (one-hot for a cross-entropy loss)."""
    n_in, n_out = graph.inputs[0].size, graph.targets[0].size
    x = rng.standard_normal((tasks, batch, n_in)).astype(np.float32)
    if graph.losses[0].fn == "ce":
        y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, size=(tasks, batch))]
    else:
        y = rng.uniform(-0.5, 0.5, size=(tasks, batch, n_out)).astype(np.float32)
    return x, y


def meta_batch(graph, workload: Workload, rng: np.random.Generator, tasks: int | None = None, steps: int | None = None):
    """A :class:`~graphflow.meta.metaloss.MetaBatch` of synthetic data of the workload's sizes."""
    from graphflow.meta.metaloss import MetaBatch

    tasks = tasks or workload.tasks
    steps = steps or workload.steps
    xs, ys = zip(*[inner_data(graph, tasks, workload.batch, rng) for _ in range(steps)])
    xe, ye = inner_data(graph, tasks, workload.heldout, rng)
    return MetaBatch(np.stack(xs, axis=1), np.stack(ys, axis=1), xe, ye)


__all__ = ["BUILD_STACKS", "QUICK_SCALING_WEIGHT_NODES", "REFERENCE_CASES", "SCALING_WEIGHT_NODES", "TIMED_CASES", "TimedCase",
           "WORKLOADS", "Workload",
           "graph_and_protocol", "inner_data", "meta_batch", "scaling_graph", "scaling_hidden", "weight_nodes"]
