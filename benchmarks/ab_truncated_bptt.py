"""A/B in one process: a truncated-backprop meta-step of K inner steps against a bptt meta-step of
the same K steps (sinusoid workload, 4 tasks, synthetic data), so that the cost of truncation's
bookkeeping shows apart from the machine's load. Asserts nothing; prints the medians.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ab_truncated_bptt.py [--steps 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from graphflow.bench import workloads as W
from graphflow.bench.estimators import SyntheticDraws
from graphflow.meta.estimators import make_estimator
from graphflow.spec import MetaTrainingSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    graph, protocol = W.graph_and_protocol("sinusoid")
    trainable = protocol.trainable()
    kinds = {"bptt": {"kind": "bptt"},
             "truncated": {"kind": "truncated", "unroll": 2 * args.steps, "truncation": args.steps, "stagger": False}}
    estimators = {}
    for name, data in kinds.items():
        meta = MetaTrainingSpec(outer_batch=4, inner_steps=args.steps, estimator=data)
        estimators[name] = (make_estimator(meta.estimator, graph, protocol, trainable, meta, "numpy"),
                            SyntheticDraws(graph, protocol, 10, 10))
        estimators[name][0].estimate(protocol, estimators[name][1])  # warm-up
    times = {name: [] for name in kinds}
    for _ in range(args.rounds):  # alternating, so that both see the same machine
        for name, (estimator, draws) in estimators.items():
            start = time.perf_counter()
            estimator.estimate(protocol, draws)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:>10}: {statistics.median(values):.3f} s per meta-step of {args.steps} inner steps "
              f"(min {min(values):.3f}, max {max(values):.3f})")


if __name__ == "__main__":
    main()
