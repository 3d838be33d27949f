"""Where a meta-step's time goes: every matrix product of the learner cells timed by shape, in
one process. For a bench workload's meta-gradient (the bench's ``_meta_setup``: its tasks, inner
steps and protocol sizes), prints the wall time of a meta-step, the time its learner matmuls took
(summed over the engine's threads), and per shape the calls, milliseconds and GFLOP/s, beside
the machine's single-thread float32 matmul peak measured in the same run. Asserts nothing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/matmul_share.py [--workload mnist] [--rounds 2] [--top 12]

What it answers: whether a faster cell can come from the matmuls (they run far below the peak)
or only from what lies between them (they run near it).
"""

from __future__ import annotations

import argparse
import collections
import threading
import time

import graphflow.learners.cells as cells
from graphflow.bench import workloads as W
from graphflow.bench.machine import matmul_gflops
from graphflow.bench.runner import _meta_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="mnist", choices=sorted(W.WORKLOADS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    _, protocol, batch, init, metagrad = _meta_setup(W.WORKLOADS[args.workload], "numpy")
    metagrad(protocol, batch, init)  # warm-up: kernels compiled, memory touched

    stats: dict = collections.defaultdict(lambda: [0, 0.0])
    lock = threading.Lock()
    plain = cells.linear

    def timed(a, w):
        start = time.perf_counter()
        out = plain(a, w)
        seconds = time.perf_counter() - start
        rows = out.size // out.shape[-1]
        with lock:
            entry = stats[(rows, a.shape[-1], w.shape[-1])]
            entry[0] += 1
            entry[1] += seconds
        return out

    cells.linear = timed
    try:
        walls = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            metagrad(protocol, batch, init)
            walls.append(time.perf_counter() - start)
    finally:
        cells.linear = plain
    peak = matmul_gflops(threads=1) * 1e9
    wall = sum(walls) / len(walls)
    in_matmuls = sum(s for _, s in stats.values()) / args.rounds
    print(f"{args.workload} meta-step: {wall * 1e3:.0f} ms wall (mean of {args.rounds}); learner matmuls "
          f"{in_matmuls * 1e3:.0f} ms summed over the engine's threads; single-thread float32 matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s")
    print(f"{'rows':>7} {'in':>4} {'out':>4} {'calls':>6} {'ms':>8} {'GFLOP/s':>8} {'of peak':>8}")
    for (rows, k, n), (calls, seconds) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:args.top]:
        rate = 2.0 * rows * k * n * calls / seconds
        print(f"{rows:>7} {k:>4} {n:>4} {calls // args.rounds:>6} {seconds / args.rounds * 1e3:>8.1f} "
              f"{rate / 1e9:>8.1f} {rate / peak:>8.0%}")


if __name__ == "__main__":
    main()
