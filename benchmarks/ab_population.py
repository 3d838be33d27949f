"""A/B of an ES meta-step in one process: the population as one more batch axis of the engine
(every member in one engine run of P x tasks inner loops) against the members run one after
another (one engine run of the tasks each), alternating (the order flipping every round), medians.

    .venv/bin/python benchmarks/ab_population.py                          # examples/sinusoid_5x10.json, P 16 and 64
    .venv/bin/python benchmarks/ab_population.py --populations 16,64,256 --rounds 5 --threads 1
    .venv/bin/python benchmarks/ab_population.py --one-piece   # learner calls whole, as on a GPU

The workload is the experiment's own: its graph and learner, ``meta.outer_batch`` tasks of
``meta.inner_steps`` steps with ``meta.shots`` examples, the ES meta-loss of every member of the
population (``EsEstimator.gradient``: perturbations, the forward unrolls, the antithetic sum),
all trained entries perturbed. Prints, per population, each mode's median seconds per ES
meta-step (min-max over rounds), their ratio, how far the two modes' meta-losses and ES gradients
are apart, and how many learner-cell invocations one meta-step makes in each mode (each a chain
of array operations: on the CPU large calls run in cache-sized blocks, on a GPU every call is
one invocation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def workload(config: Path):
    """(graph, protocol, trained entries, outer batch, initial networks, spec) of ``config``."""
    import graphflow as gf
    from graphflow.engine import Engine
    from graphflow.learners import Protocol
    from graphflow.meta.trainer import TaskSource
    from graphflow.spec import parse_experiment_spec

    exp = parse_experiment_spec(json.loads(config.read_text()))
    graph = gf.build(exp.graph)
    protocol = Protocol.init(graph, exp.learner, exp.seed)
    meta = exp.meta
    rng = np.random.default_rng(0)
    batch = TaskSource(exp, graph).sample(rng, meta.outer_batch, meta.inner_steps)
    init = dict(Engine(graph, protocol).init_network(rng, meta.outer_batch).params)
    return graph, protocol, protocol.trainable(), batch, init, exp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "examples" / "sinusoid_5x10.json")
    parser.add_argument("--populations", default="16,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sigma", type=float, default=0.01)
    parser.add_argument("--chunk", type=int, default=None,
                        help="members per engine run in the batched mode (default: the whole population)")
    parser.add_argument("--one-piece", action="store_true", help="no cache blocking: each learner call in one piece")
    args = parser.parse_args()
    from graphflow.meta.estimators import EngineLoop, EsEstimator

    graph, protocol, trained, batch, init, exp = workload(args.config)
    loop = EngineLoop(graph, protocol, trained, threads=args.threads)
    if args.one_piece:
        from dataclasses import replace

        loop.engine.be = replace(loop.engine.be, cache_blocking=False)
    print(f"{exp.name}: {batch.tasks} tasks x {batch.steps} inner steps, {len(trained)} trained entries "
          f"({sum(int(np.prod(a.shape)) for k, a in protocol.flat().items() if k in trained)} numbers), "
          f"{args.threads} thread(s), {loop.member_bytes(batch) / 2**20:.2f} MiB per member (estimate)"
          + (", learner calls in one piece" if args.one_piece else ""))
    for population in (int(p) for p in args.populations.split(",")):
        chunk = args.chunk or population
        print(f"population {population}: batched mode {chunk} member(s) per engine run; EsEstimator's default here "
              f"{EsEstimator(loop, batch.tasks, batch.steps, population, args.sigma).members_at_once(batch, population)}")
        modes = (("batched", EsEstimator(loop, batch.tasks, batch.steps, population, args.sigma, member_chunk=chunk)),
                 ("one-by-one", EsEstimator(loop, batch.tasks, batch.steps, population, args.sigma, member_chunk=1)))
        seconds = {label: [] for label, _ in modes}
        results, cells = {}, {}
        for r in range(args.rounds + 1):  # round 0 warms up (numba compiles, caches fill) and counts
            for label, estimator in (modes if r % 2 else modes[::-1]):
                counter = count_cells(loop.engine) if r == 0 else None
                start = time.perf_counter()
                results[label] = estimator.gradient(protocol, batch, init, seed=r)
                if r:
                    seconds[label].append(time.perf_counter() - start)
                else:
                    cells[label] = counter()
        medians = {label: statistics.median(v) for label, v in seconds.items()}
        (a, _), (b, _) = modes
        grads_a, grads_b = results[a][1], results[b][1]
        worst = max(float(np.abs(grads_a[k] - grads_b[k]).max() / (np.abs(grads_b[k]).max() + 1e-30)) for k in grads_b)
        spread = {label: f"{min(v):.3f}-{max(v):.3f}" for label, v in seconds.items()}
        print(f"population {population}: {a} {medians[a]:.3f} s ({spread[a]}), {b} {medians[b]:.3f} s "
              f"({spread[b]}) per ES meta-step, {args.rounds} rounds; {b} / {a} = {medians[b] / medians[a]:.2f}x; "
              f"meta-loss {results[a][0]:.7g} vs {results[b][0]:.7g}; gradients differ by at most {worst:.1e} "
              f"(relative to each entry's largest); learner-cell invocations per meta-step {cells[a]} vs {cells[b]}")


def count_cells(engine):
    """Count the learner-cell invocations (blocks) of ``engine`` from now on; returns the reader."""
    count = [0]
    run_blocks = type(engine)._run_blocks

    def counting(self, fn, blocks):
        count[0] += len(blocks)
        return run_blocks(self, fn, blocks)

    engine._run_blocks = counting.__get__(engine)

    def read():
        del engine._run_blocks
        return count[0]

    return read


if __name__ == "__main__":
    main()
