"""Meta-gradient time of the benchmark workloads with either learner kind, and how the engine splits
its work: what the ``sinusoid-meta`` and ``mnist-meta`` cases of ``graphflow bench`` time (without
the Adam update), for stateful (published sizes) and stateless learners (message 4, MLPs 80/40).

Prints the median seconds of each variant; asserts nothing (timings depend on the machine). Run it
with::

    .venv/bin/python benchmarks/bench_meta_variants.py [--repeats 5] [--kinds stateful,stateless]
        [--workloads sinusoid,mnist] [--threads 1,2] [--block-rows 4096]

``--threads``/``--block-rows`` are passed to ``MetaGradient`` (left out: the defaults). Set
``GRAPHFLOW_MALLOC=system`` in the environment to time with glibc's default handling of freed memory.
The learners are freshly initialized: a step's cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import graphflow as gf
from graphflow.bench import workloads as W
from graphflow.engine import Engine
from graphflow.learners.protocol import Protocol
from graphflow.meta.metaloss import MetaGradient


def setup(workload: str, kind: str):
    graph, protocol = W.graph_and_protocol(workload)
    if kind == "stateless":
        protocol = Protocol.init(graph, gf.LearnerSpec(kind="stateless", message_size=4), 0)
    rng = np.random.default_rng(0)
    batch = W.meta_batch(graph, W.WORKLOADS[workload], rng)
    init = {k: np.asarray(v) for k, v in Engine(graph, protocol).init_network(rng, batch.x.shape[0]).params.items()}
    return graph, protocol, batch, init


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kinds", default="stateful,stateless")
    ap.add_argument("--workloads", default="sinusoid,mnist")
    ap.add_argument("--threads", default="", help="comma-separated engine thread counts (default: the engine's)")
    ap.add_argument("--block-rows", type=int, default=None)
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t] or [None]
    for workload in args.workloads.split(","):
        for kind in args.kinds.split(","):
            graph, protocol, batch, init = setup(workload, kind)
            for t in threads:
                options = {k: v for k, v in (("threads", t), ("block_rows", args.block_rows)) if v is not None}
                metagrad = MetaGradient(graph, protocol, **options)
                metagrad(protocol, batch, init)  # warm-up: allocations, thread pool
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    metagrad(protocol, batch, init)
                    times.append(time.perf_counter() - t0)
                label = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
                print(f"{workload}-meta {kind:9s} ({label}): median {statistics.median(times):.3f} s, "
                      f"best {min(times):.3f} s over {args.repeats}")


if __name__ == "__main__":
    main()
