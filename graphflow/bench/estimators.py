"""The ``estimators`` case group of ``graphflow bench``: each meta-gradient estimator's cost and accuracy.

For every estimator (``bptt``, ``truncated``, ``es``, ``pes``, ``nres``) and unroll T, at the same number of
tasks, on the same tasks (synthetic data of the sinusoid workload's sizes): the seconds and the
peak host memory (tracemalloc) of one meta-step, i.e. one ``estimate`` call of the estimator
(no protocol update), and the cosine of its estimate to the exact gradient of the whole unroll
(bptt through all T steps) on the same batch.

- ``bptt`` and ``es`` estimate a whole unroll in one meta-step.
- ``truncated``, ``pes`` and ``nres`` run K steps per meta-step: their estimate of the whole unroll is the
  sum of the T / K meta-steps that walk the tasks through it (all tasks start together, the
  protocol held fixed), each scaled back by K / T (docs/estimators.md); the cosine is that sum's,
  ``seconds`` the median of those meta-steps.

``peak_bytes`` is that of one more meta-step after the timed ones, under tracemalloc (a separate
call: tracing slows it down), on the warm estimator (for the truncated kinds, a meta-step
that restarts its tasks). The exact gradient comes from an untimed bptt call before the timed
one, which makes it again: bptt's cosine checks that the estimate is deterministic (1 up to
rounding).

>>> import graphflow as gf
>>> from graphflow.learners import Protocol
>>> g = gf.build(gf.stack(1, gf.Dense(3), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
>>> p = Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4)))
>>> sizes = EstimatorSizes(tasks=2, batch=4, heldout=4, unrolls=(4,), truncation=2, population=2)
>>> [c["estimator"] for c in estimator_cases(sizes, graph=g, protocol=p)]
['bptt', 'truncated', 'es', 'pes', 'nres']
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from graphflow.bench import workloads as W
from graphflow.bench.timing import peak_bytes, synchronize
from graphflow.spec.experiment import ESTIMATOR_KINDS, POPULATION_KINDS, TRUNCATED_KINDS

KINDS = ESTIMATOR_KINDS


@dataclass(frozen=True)
class EstimatorSizes:
    """Tasks, batches, unrolls and estimator options of the estimators cases."""

    tasks: int
    batch: int
    heldout: int
    unrolls: tuple[int, ...]
    """The unrolls T compared (each a multiple of ``truncation``)."""
    truncation: int
    """K of ``truncated``, ``pes`` and ``nres``."""
    population: int
    """Of ``es``, ``pes`` and ``nres`` (even)."""
    sigma: float = 0.01

    @classmethod
    def make(cls, quick: bool) -> "EstimatorSizes":
        sinusoid = W.WORKLOADS["sinusoid"]
        if quick:
            return cls(tasks=2, batch=sinusoid.batch, heldout=sinusoid.heldout, unrolls=(4, 8), truncation=2, population=2)
        return cls(tasks=sinusoid.tasks, batch=sinusoid.batch, heldout=sinusoid.heldout, unrolls=(20, 100),
                   truncation=10, population=8)


class SyntheticDraws:
    """:class:`~graphflow.meta.estimators.TaskDraws` of synthetic tasks in a fixed order: task seeds
    0, 1, 2, ... (``task_seed``), ``batch(n, steps)`` the tasks of seeds 0..n-1, so that a fresh
    truncated estimator starts on the very tasks an outer batch holds; noise seeds count up from
    ``noise`` (default 1000)."""

    def __init__(self, graph, protocol, batch: int, heldout: int, noise: int = 1000):
        from graphflow.engine import Engine

        self.graph, self.batch_size, self.heldout = graph, batch, heldout
        self.engine = Engine(graph, protocol)
        self._tasks, self._noise = 0, noise

    def task(self, seed: int, steps: int):
        from graphflow.meta.metaloss import MetaBatch

        rng = np.random.default_rng([seed, 11])
        xs, ys = zip(*[W.inner_data(self.graph, 1, self.batch_size, rng) for _ in range(steps)])
        xe, ye = W.inner_data(self.graph, 1, self.heldout, rng)
        init = {k: np.asarray(v) for k, v in self.engine.init_network(rng, 1).params.items()}
        return MetaBatch(np.stack(xs, axis=1), np.stack(ys, axis=1), xe, ye), init

    def batch(self, tasks: int, steps: int):
        from graphflow.meta.metaloss import MetaBatch

        parts = [self.task(seed, steps) for seed in range(tasks)]
        batch = MetaBatch(*(np.concatenate([getattr(b, f) for b, _ in parts]) for f in ("x", "y", "xe", "ye")))
        return batch, {k: np.concatenate([i[k] for _, i in parts]) for k in parts[0][1]}

    def task_seed(self) -> int:
        self._tasks += 1
        return self._tasks - 1

    def noise_seed(self) -> int:
        self._noise += 1
        return self._noise


def _estimator_data(kind: str, sizes: EstimatorSizes, unroll: int) -> dict:
    data = {"kind": kind}
    if kind in TRUNCATED_KINDS:
        data.update(unroll=unroll, truncation=sizes.truncation, stagger=False)
    if kind in POPULATION_KINDS:
        data.update(population=sizes.population, sigma=sizes.sigma)
    return data


def _cosine(a: dict, b: dict) -> float:
    u = np.concatenate([np.asarray(a[k], np.float64).ravel() for k in sorted(b)])
    v = np.concatenate([np.asarray(b[k], np.float64).ravel() for k in sorted(b)])
    denominator = np.linalg.norm(u) * np.linalg.norm(v)
    return float(np.clip(u @ v / denominator, -1.0, 1.0)) if denominator > 0 else 0.0


def estimator_cases(sizes: EstimatorSizes, backend: str = "numpy", progress=None, graph=None, protocol=None) -> list[dict]:
    """One record per estimator and unroll (``kind`` ``estimator``); the sinusoid workload's graph
    and a random protocol of its sizes unless ``graph`` and ``protocol`` are given."""
    from graphflow.meta.estimators import make_estimator
    from graphflow.spec import MetaTrainingSpec

    if graph is None:
        graph, protocol = W.graph_and_protocol("sinusoid")
    trainable = protocol.trainable()
    entries = int(sum(np.size(v) for k, v in protocol.flat().items() if k in trainable))
    records = []
    for unroll in sizes.unrolls:
        if unroll % sizes.truncation:
            raise ValueError(f"unroll {unroll} is not a multiple of the truncation {sizes.truncation}")
        exact = None
        for kind in KINDS:
            data = _estimator_data(kind, sizes, unroll)
            meta = MetaTrainingSpec(outer_batch=sizes.tasks, inner_steps=unroll, estimator=data)

            if progress is not None:
                progress(f"estimators: {kind}, T = {unroll} ({sizes.tasks} tasks)")
            estimator = make_estimator(meta.estimator, graph, protocol, trainable, meta, backend)
            draws = SyntheticDraws(graph, protocol, sizes.batch, sizes.heldout)
            if kind == "bptt":  # the exact gradient, and the warm-up of the tape's engine
                exact = estimator.estimate(protocol, draws)[1]
            steps_per_unroll = unroll // sizes.truncation if kind in TRUNCATED_KINDS else 1
            seconds, losses, total = [], [], None
            for _ in range(steps_per_unroll):
                t0 = time.perf_counter()
                loss, grads = estimator.estimate(protocol, draws)
                synchronize(backend)
                seconds.append(time.perf_counter() - t0)
                losses.append(loss / steps_per_unroll)
                scaled = {k: np.asarray(g, np.float64) / steps_per_unroll for k, g in grads.items()}
                total = scaled if total is None else {k: total[k] + scaled[k] for k in total}
            # one more meta-step, traced: warm (tape engines built), a truncated one restarting its tasks
            peak = peak_bytes(lambda: estimator.estimate(protocol, draws))
            records.append({
                "name": f"estimators-{kind}-T{unroll}", "kind": "estimator", "backend": backend, "estimator": kind,
                "spec": data, "tasks": sizes.tasks, "batch": sizes.batch, "heldout": sizes.heldout, "unroll": unroll,
                "truncation": sizes.truncation if kind in TRUNCATED_KINDS else None,
                "population": sizes.population if kind in POPULATION_KINDS else None,
                "trained_entries": entries, "weight_nodes": W.weight_nodes(graph),
                "seconds": statistics.median(seconds), "seconds_samples": seconds, "meta_steps_per_unroll": steps_per_unroll,
                "peak_bytes": peak, "meta_loss": float(sum(losses)), "cosine": _cosine(total, exact),
                "what": (f"one meta-step's estimate (no protocol update) of {sizes.tasks} task(s), unroll {unroll}; "
                         "cosine of the whole unroll's estimate to the exact bptt gradient on the same tasks"
                         + (f" (the sum of {steps_per_unroll} truncations of {sizes.truncation})"
                            if steps_per_unroll > 1 else "")),
            })
    return records


__all__ = ["EstimatorSizes", "KINDS", "SyntheticDraws", "estimator_cases"]
