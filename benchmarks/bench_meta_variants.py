"""Meta-gradient time of the benchmark workloads with either learner kind, and how the engine splits
its work: what the ``sinusoid-meta`` and ``mnist-meta`` cases of ``graphflow bench`` time (without
the Adam update), for stateful (published sizes) and stateless learners (message 4, MLPs 80/40).

Prints the median seconds of each variant; asserts nothing (timings depend on the machine). Run it
with::

    .venv/bin/python benchmarks/bench_meta_variants.py [--repeats 5] [--kinds stateful,stateless]
        [--workloads sinusoid,mnist] [--threads 1,2] [--block-rows 4096] [--min-block-rows 0,1024] [--split]

``--threads``, ``--block-rows`` and ``--min-block-rows`` are passed to ``MetaGradient`` (left out:
the defaults; the variants of a list alternate, ``--rounds`` times, so that a drifting machine
touches them alike). ``--split`` also reports how much of a meta-step the engine spent in learner
calls split into several blocks (the parallel part) and the rest (the serial part). Set
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


def _split_timer(engine):
    """Wrap the engine's block dispatcher to add up the time of multi-block and one-block calls."""
    inner = engine._node_blocks
    spent = {"blocks": 0.0, "one piece": 0.0}

    def timed(fn, shape):
        t0 = time.perf_counter()
        out = inner(fn, shape)
        spent["blocks" if len(out) > 1 else "one piece"] += time.perf_counter() - t0
        return out

    engine._node_blocks = timed
    return spent


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--kinds", default="stateful,stateless")
    ap.add_argument("--workloads", default="sinusoid,mnist")
    ap.add_argument("--threads", default="", help="comma-separated engine thread counts (default: the engine's)")
    ap.add_argument("--block-rows", type=int, default=None)
    ap.add_argument("--min-block-rows", default="", help="comma-separated values (default: the engine's)")
    ap.add_argument("--split", action="store_true", help="report the time in multi-block learner calls and the rest")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t] or [None]
    min_rows = [int(t) for t in args.min_block_rows.split(",") if t] or [None]
    for workload in args.workloads.split(","):
        for kind in args.kinds.split(","):
            graph, protocol, batch, init = setup(workload, kind)
            variants = []
            for t in threads:
                for m in min_rows:
                    options = {k: v for k, v in (("threads", t), ("block_rows", args.block_rows), ("min_block_rows", m))
                               if v is not None}
                    metagrad = MetaGradient(graph, protocol, **options)
                    spent = _split_timer(metagrad.engine) if args.split else None
                    metagrad(protocol, batch, init)  # warm-up: allocations, thread pool
                    variants.append((options, metagrad, spent, []))
            for _ in range(args.rounds):
                for options, metagrad, spent, times in variants:
                    if spent is not None:
                        spent.update({k: 0.0 for k in spent})
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        metagrad(protocol, batch, init)
                        times.append(time.perf_counter() - t0)
            for options, metagrad, spent, times in variants:
                label = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
                line = (f"{workload}-meta {kind:9s} ({label}): median {statistics.median(times):.3f} s, "
                        f"best {min(times):.3f} s over {len(times)}")
                if spent is not None:  # the last round's split, per meta-step
                    per = {k: v / args.repeats for k, v in spent.items()}
                    rest = statistics.median(times[-args.repeats:]) - sum(per.values())
                    line += (f"; per meta-step: multi-block calls {per['blocks']:.3f} s, one-piece calls "
                             f"{per['one piece']:.3f} s, the rest {rest:.3f} s")
                print(line)


if __name__ == "__main__":
    main()
