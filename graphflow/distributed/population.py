"""An ES population split over Ray actors: workers get seeds and member indices and return fitness values.

:class:`EsPopulation` is the pool of workers: each a Ray actor that builds the graph's engine and
an :class:`~graphflow.meta.estimators.EsEstimator` once. Per outer step the driver puts the
protocol and the outer batch (its tasks' data and initial networks, drawn by the driver exactly
as in one process) in Ray's object store once each, and sends each worker the step's noise seed
and its members: a contiguous run of antithetic pairs (:func:`member_slices`). A worker
regenerates its members' noise from the seed, runs them
(:meth:`~graphflow.meta.estimators.EsEstimator.member_losses`) and returns one float per member,
never a noise array. The driver concatenates the answers in member order and reduces them with
:meth:`~graphflow.meta.estimators.EsEstimator.combine`, as the one-process estimator does, so a
run with N workers logs the one-process meta-losses bit for bit (a member's loss depends only on
the protocol, the batch, the seed and its index; the engine on a worker runs with the driver's
threads).

:class:`DistributedEs` is the estimator the trainer uses: the one-process ``EsEstimator``'s draws,
checkpoint data (none) and reduction, with the population's losses from the workers.

A worker that dies is replaced and its members recomputed (:class:`~graphflow.distributed.sharded.ActorPool`).
"""

from __future__ import annotations

import os
import time

import numpy as np

from graphflow.distributed.sharded import ActorPool, CallStats, array_bytes, shard_slices
from graphflow.meta.estimators import EngineLoop, EsEstimator, TaskDraws
from graphflow.meta.metaloss import MetaBatch


def member_slices(population: int, workers: int) -> list[range]:
    """The population's members over at most ``workers`` workers: contiguous runs of whole
    antithetic pairs (members ``2j`` and ``2j + 1`` share their noise), as even as can be.

    >>> member_slices(8, 3)
    [range(0, 4), range(4, 6), range(6, 8)]
    >>> member_slices(2, 4)
    [range(0, 2)]
    """
    return [range(2 * part.start, 2 * part.stop) for part in shard_slices(population // 2, workers)]


class EsWorker:
    """What runs in each Ray actor: an ``EsEstimator`` over its own engine, built once."""

    def __init__(self, graph, protocol, trainable, backend, dtype, weights, threads, es: dict):
        loop = EngineLoop(graph, protocol, trainable, backend, dtype, weights, threads=threads)
        self.estimator = EsEstimator(loop, **es)

    def pid(self) -> int:
        """This worker's process id (what a fault test kills)."""
        return os.getpid()

    def losses(self, protocol, task: tuple[MetaBatch, dict], seed: int, members: range):
        """(the meta-losses of ``members``, (wall seconds, CPU seconds of this process))."""
        started, cpu = time.perf_counter(), time.process_time()
        batch, init = task
        theta = self.estimator.loop.parameters(protocol)
        losses = self.estimator.member_losses(theta, batch, init, seed, members)
        return np.asarray(losses, np.float64), (time.perf_counter() - started, time.process_time() - cpu)


def es_build(estimator: EsEstimator, threads: int | None = None) -> tuple:
    """The arguments an :class:`EsWorker` needs to build ``estimator``'s twin: its graph, protocol,
    trained entries, backend, dtype, meta-loss weights, threads (default: the estimator's engine's)
    and population settings."""
    loop = estimator.loop
    es = {"tasks": estimator.tasks, "steps": estimator.steps, "population": estimator.population,
          "sigma": estimator.sigma, "fitness_shaping": estimator.fitness_shaping}
    for name in ("member_chunk", "memory_budget"):  # how many members run as one engine run, where it says
        if hasattr(estimator, name):
            es[name] = getattr(estimator, name)
    return (loop.graph, loop.engine.protocol, list(loop.trainable), loop.base.name, loop.base.dtype,
            (loop.hint_weight, loop.heldout_weight), threads or loop.engine.threads, es)


class EsPopulation(ActorPool):
    """Ray actors computing slices of an ES population (see the module's docstring).

    ``estimator`` is the one-process :class:`~graphflow.meta.estimators.EsEstimator` whose
    population this splits; each worker builds its twin (:func:`es_build`; ``threads``: the
    engine's threads on a worker, default the estimator's, which keeps the losses bit for bit).
    The other arguments are :class:`~graphflow.distributed.sharded.ActorPool`'s. :attr:`stats`
    says where the last call's time and bytes went (``shard_bytes`` is the outer batch, put once
    and fetched by every worker; ``result_bytes`` the losses each worker returns).
    """

    def __init__(self, estimator: EsEstimator, *, threads: int | None = None, workers: int | None = None,
                 address: str | None = None, cpus_per_worker: float = 1, max_restarts: int = 3,
                 start_timeout: float = 120.0):
        self.population = estimator.population
        super().__init__(EsWorker, es_build(estimator, threads), workers=workers, address=address,
                         cpus_per_worker=cpus_per_worker, max_restarts=max_restarts, start_timeout=start_timeout)

    def losses(self, protocol, batch: MetaBatch, init: dict, seed: int) -> np.ndarray:
        """Every member's meta-loss on ``batch`` from ``init`` with the noise of ``seed``, in member order."""
        self._check_open()
        started = time.perf_counter()
        stats = self.stats = CallStats()
        slices = member_slices(self.population, self.workers)
        put_started = time.perf_counter()
        protocol_ref = self.ray.put(protocol)
        task_ref = self.ray.put((batch, init))
        stats.put_seconds = time.perf_counter() - put_started
        stats.protocol_bytes = array_bytes(protocol)
        stats.shard_bytes = [array_bytes((batch, init))] * len(slices)

        def submit(actor, k):
            return actor.losses.remote(protocol_ref, task_ref, seed, slices[k])

        results = self._gather(len(slices), submit)
        reduce_started = time.perf_counter()
        stats.shard_seconds = [seconds for _, (seconds, _) in results]
        stats.shard_cpu_seconds = [cpu for _, (_, cpu) in results]
        stats.result_bytes = [array_bytes(losses) for losses, _ in results]
        losses = np.concatenate([losses for losses, _ in results])
        stats.reduce_seconds = time.perf_counter() - reduce_started
        stats.seconds = time.perf_counter() - started
        return losses


class DistributedEs:
    """An :class:`~graphflow.meta.estimators.EsEstimator` whose population's losses come from an
    :class:`EsPopulation`: the same draws (the outer batch, then the noise seed), the same
    reduction (``combine``, on the driver, in member order), the same checkpoint data (none)."""

    kind = "es"

    def __init__(self, estimator: EsEstimator, population: EsPopulation):
        self.local, self.population = estimator, population

    def estimate(self, protocol, draws: TaskDraws):
        local = self.local
        batch, init = draws.batch(local.tasks, local.steps)
        return self.gradient(protocol, batch, init, draws.noise_seed())

    def gradient(self, protocol, batch: MetaBatch, init: dict, seed: int):
        """Meta-loss and ES estimate of one outer batch, as ``EsEstimator.gradient``, its members on the workers."""
        theta = self.local.loop.parameters(protocol)  # on the driver only for the shapes (and the entries' check)
        losses = self.population.losses(protocol, batch, init, seed)
        return self.local.combine({k: tuple(v.shape) for k, v in theta.items()}, losses, seed)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return self.local.state_arrays()

    def state_meta(self) -> dict:
        return self.local.state_meta()

    def load_state(self, arrays: dict, meta: dict, source: str = "checkpoint", check: bool = True) -> None:
        self.local.load_state(arrays, meta, source, check)

    def abandon_tasks(self) -> None:
        self.local.abandon_tasks()
