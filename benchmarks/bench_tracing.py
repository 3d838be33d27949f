"""How much recording costs: one inner step with no recorder, with a recorder of a few nodes, with a
recorder of every node (and the same through an Inspector), on the sinusoid and MNIST graphs.

Prints the best (least disturbed by other work on the machine) and the median time of each variant
and their ratios to the unrecorded step; asserts nothing (timings depend on the machine). Run it with::

    .venv/bin/python benchmarks/bench_tracing.py [--repeats 30] [--tasks 1]

The learners are freshly initialized (no reference files needed): the cost of a step does not
depend on the learner's values.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from graphflow.engine import Engine
from graphflow.engine.record import Recorder
from graphflow.graph.ids import split_patterns
from graphflow.interop.mplp import preset_protocol
from graphflow.recording import Inspector

CASES = {
    # preset: (few nodes, batch, input width, target width)
    "sinusoid": ("dense4/w[*,0],dense4/b[0]", 10, 1, 1),
    "mnist": ("dense2/w[*,0],dense2/b[0]", 8, 144, 10),
}


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench(preset: str, repeats: int, tasks: int) -> list[tuple[str, float, float]]:
    few, batch, n_in, n_out = CASES[preset]
    graph, protocol = preset_protocol(preset)
    engine = Engine(graph, protocol)
    rng = np.random.default_rng(0)
    state = engine.init_network(rng, tasks)
    x = rng.normal(size=(tasks, batch, n_in)).astype(np.float32)
    y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, (tasks, batch))] if n_out > 1 else np.sin(x)
    variants = {
        "no recorder": lambda: engine.step(state, x, y),
        f"Recorder, few nodes ({few})": lambda: engine.step(state, x, y, Recorder(graph, split_patterns(few))),
        "Recorder, all nodes (*/*)": lambda: engine.step(state, x, y, Recorder(graph, ["*/*"])),
        "Inspector, few nodes": lambda: Inspector(engine, few).step(state, x, y),
        "Inspector, few nodes + gradients": lambda: Inspector(engine, few, gradients=True).step(state, x, y),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm up
    for _ in range(repeats):  # interleaved, so that a busy moment of the machine hits every variant alike
        for name, fn in variants.items():
            times[name] += _time(fn, 1)
    return [(name, min(t), statistics.median(t)) for name, t in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=1)
    args = parser.parse_args()
    for preset in CASES:
        rows = bench(preset, args.repeats, args.tasks)
        best0, median0 = rows[0][1], rows[0][2]
        graph, _ = preset_protocol(preset)
        print(f"\n{preset}: {graph.stats()['total_nodes']} nodes, {args.tasks} task(s), {args.repeats} steps each")
        print(f"  {'variant':<52} {'best ms':>8} {'ratio':>6} {'median ms':>10} {'ratio':>6}")
        for name, best, median in rows:
            print(f"  {name:<52} {1000 * best:>8.2f} {best / best0:>6.2f} {1000 * median:>10.2f} {median / median0:>6.2f}")


if __name__ == "__main__":
    main()
