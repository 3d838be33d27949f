"""Peak memory and time of a meta-gradient with and without recomputation (not a test).

    .venv/bin/python tests/meta/bench_recompute.py sinusoid 20 4 10 None 5 4 2 1
    .venv/bin/python tests/meta/bench_recompute.py mnist 20 1 8 None 5 4

arguments: preset (sinusoid: 1-20-20-1 relu, stateful k 8 hidden 15; mnist: 144-50-10, stateful k 4
hidden 7, learners shared by kind), inner steps, tasks, shots, then the recompute_every values
(None: the whole unroll on one tape). Peak memory is traced by tracemalloc (numpy reports its
buffers to it) in a run of its own; time is the best of two untraced runs, float32 on one thread.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np


def setup(preset: str, steps: int, tasks: int, shots: int):
    from graphflow.engine import Engine
    from graphflow.interop.mplp import preset_protocol
    from graphflow.meta.metaloss import MetaBatch
    from graphflow.reference.random_graphs import random_data

    graph, protocol = preset_protocol(preset)
    rng = np.random.default_rng(0)
    xs, ys = random_data(graph, rng, steps, shots, tasks)
    xe, ye = random_data(graph, rng, 1, shots, tasks)
    first = lambda d: np.swapaxes(next(iter(d.values())), 0, 1)  # noqa: E731  [T, steps, B, n]
    batch = MetaBatch(first(xs), first(ys), next(iter(xe.values()))[0], next(iter(ye.values()))[0])
    init = dict(Engine(graph, protocol).init_network(rng, tasks).params)
    return graph, protocol, batch, init


def measure(graph, protocol, batch, init, every):
    from graphflow.meta.metaloss import MetaGradient

    mg = MetaGradient(graph, protocol, recompute_every=every)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        loss, _ = mg(protocol, batch, init)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    mg(protocol, batch, init)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return loss, min(times), peak


def main(argv):
    preset, steps, tasks, shots = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    everies = [None if a == "None" else int(a) for a in argv[4:]] or [None, 5]
    graph, protocol, batch, init = setup(preset, steps, tasks, shots)
    print(f"{preset}: {steps} inner steps x {tasks} task(s) x {shots} shots, float32")
    print(f"{'recompute_every':>16} {'meta-loss':>12} {'seconds':>8} {'peak MiB':>9}")
    for every in everies:
        loss, seconds, peak = measure(graph, protocol, batch, init, every)
        print(f"{str(every):>16} {loss:>12.7g} {seconds:>8.2f} {peak / 2**20:>9.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
