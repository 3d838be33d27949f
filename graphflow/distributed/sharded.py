"""The meta-gradient of an outer batch, its tasks sharded over Ray actors.

A :class:`ShardedMetaGradient` is called like :class:`graphflow.meta.metaloss.MetaGradient` and
returns the same ``(meta-loss, {protocol key: gradient})``. What runs where:

- the **driver** (the process that calls it) keeps the protocol; per call it puts the protocol
  in Ray's object store once (``ray.put``), sends each worker its slice of the tasks
  (:meth:`graphflow.meta.metaloss.MetaBatch.select`, and that slice of the initial networks),
  and reduces the answers in a fixed order: the sum over workers, in worker order, of each
  shard's meta-loss and gradients weighted by its share of the tasks (in float64). The meta-loss
  is a mean over tasks, so this is the single-process result up to float32 summation order.
- each **worker** is a Ray actor that builds the graph's engine and its ``MetaGradient`` once,
  when it starts, and then computes one shard per call.

When a worker's process dies (killed, out of memory, its machine gone), the driver sees Ray's
actor error (or Ray's out-of-memory kill), starts a fresh actor in its place and sends it the same shard: a shard depends only
on what the driver sends, so the result is the same as if nothing had happened. That part,
starting, replacing and stopping actors and gathering their answers in worker order, is
:class:`ActorPool`, which :class:`graphflow.distributed.population.EsPopulation` shares.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from graphflow.distributed.cluster import cluster_cpus, connect, describe_address, require_ray, shutdown_if_started
from graphflow.errors import GraphflowError
from graphflow.meta.metaloss import MetaBatch, MetaGradient


class WorkerLostError(GraphflowError):
    """A worker kept dying: its shard could not be computed within the restarts allowed."""


class ShardWorker:
    """What runs in each Ray actor: one ``MetaGradient``, built once, computing shards."""

    def __init__(self, graph, protocol, backend, dtype, trainable, options: dict):
        self.metagrad = MetaGradient(graph, protocol, backend, dtype, trainable=trainable, **options)

    def pid(self) -> int:
        """This worker's process id (what a fault test kills)."""
        return os.getpid()

    def compute(self, protocol, batch: MetaBatch, init: dict, hint_weight, heldout_weight, init_trainable):
        """(meta-loss, gradients, (wall seconds, CPU seconds of this process)) of one shard."""
        started, cpu = time.perf_counter(), time.process_time()
        loss, grads = self.metagrad(protocol, batch, init, hint_weight, heldout_weight, init_trainable=init_trainable)
        return loss, grads, (time.perf_counter() - started, time.process_time() - cpu)


@dataclass
class CallStats:
    """Where the time and the bytes of the last call went (what ``docs/distributed.md`` measures)."""

    seconds: float = 0.0
    """Wall time of the whole call, on the driver."""
    put_seconds: float = 0.0
    """Putting the protocol in the object store."""
    shard_seconds: list[float] = field(default_factory=list)
    """Each worker's own time for its shard (inside the actor), in worker order."""
    shard_cpu_seconds: list[float] = field(default_factory=list)
    """The CPU time each worker's process spent on its shard: what the shard costs on a machine
    with a free core for every worker (on a busy machine the wall time is longer)."""
    reduce_seconds: float = 0.0
    protocol_bytes: int = 0
    """The protocol's arrays, put in the object store once per call."""
    shard_bytes: list[int] = field(default_factory=list)
    """The arrays sent to each worker besides the protocol (its tasks' data and initial networks)."""
    result_bytes: list[int] = field(default_factory=list)
    """The gradient arrays each worker sends back."""
    restarts: int = 0
    """Workers replaced during this call."""


def array_bytes(obj) -> int:
    """Bytes of the numpy arrays inside ``obj`` (dicts, lists, tuples, a MetaBatch or a Protocol).

    >>> array_bytes({"a": np.zeros(3, np.float32), "b": [np.zeros((2, 2)), 1.0]})
    44
    """
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(array_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(array_bytes(v) for v in obj)
    if isinstance(obj, MetaBatch):
        return sum(array_bytes(getattr(obj, name)) for name in ("x", "y", "xe", "ye"))
    if hasattr(obj, "flat") and callable(obj.flat):  # a Protocol
        return array_bytes(obj.flat())
    return 0


def shard_slices(tasks: int, workers: int) -> list[slice]:
    """Contiguous slices of ``tasks`` tasks over at most ``workers`` workers, as even as can be
    (``numpy.array_split``); no empty shard.

    >>> shard_slices(5, 2), shard_slices(1, 3)
    ([slice(0, 3, None), slice(3, 5, None)], [slice(0, 1, None)])
    """
    bounds = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(tasks), min(workers, tasks))])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def reduce_shards(results: list[tuple[float, dict]], weights: list[float]) -> tuple[float, dict]:
    """The weighted sum of shard meta-losses and gradients, in the order given, accumulated in float64.

    >>> reduce_shards([(1.0, {"g": np.ones(2, np.float32)}), (3.0, {"g": np.zeros(2, np.float32)})], [0.75, 0.25])
    (1.5, {'g': array([0.75, 0.75], dtype=float32)})
    """
    loss = 0.0
    for w, (part, _) in zip(weights, results):
        loss += w * float(part)
    grads = {}
    for key, first in results[0][1].items():
        total = np.zeros(np.shape(first), np.float64)
        for w, (_, part) in zip(weights, results):
            total += w * np.asarray(part[key], np.float64)
        grads[key] = total.astype(np.asarray(first).dtype, copy=False)
    return loss, grads


class ActorPool:
    """``workers`` Ray actors of one class, started once, and what keeps them alive: a worker whose
    process dies is replaced by a fresh actor (built with the same arguments) and its part of the
    call sent again, up to ``max_restarts`` times per part and call.

    ``workers`` defaults to one per ``cpus_per_worker`` CPUs of the Ray instance; ``address`` is
    :func:`graphflow.distributed.cluster.connect`'s. The actor class must have ``pid()``. Use it as
    a context manager, or call :meth:`close`, to stop the actors (and the local Ray instance it
    started).
    """

    def __init__(self, actor, build: tuple, *, workers: int | None = None, address: str | None = None,
                 cpus_per_worker: float = 1, max_restarts: int = 3, start_timeout: float = 120.0):
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise GraphflowError(f"workers: expected a whole number of at least 1, not {workers!r}")
        if max_restarts < 0:
            raise GraphflowError(f"max_restarts: expected at least 0, not {max_restarts!r}")
        self.ray = require_ray()
        self.address = address
        self.started_ray = connect(address)
        self.cpus_per_worker = cpus_per_worker
        self.workers = workers or max(1, int(cluster_cpus() // cpus_per_worker))
        self.max_restarts = max_restarts
        self.start_timeout = start_timeout
        self._build = build
        self.restarts = 0
        """Workers replaced since the start."""
        self.events: list[dict] = []
        """One entry per replaced worker: which, its old pid, why."""
        self.stats = CallStats()
        self._actor_class = self.ray.remote(actor).options(num_cpus=cpus_per_worker, max_restarts=0,
                                                           max_task_retries=0)
        self._actors: list = [None] * self.workers
        self._pids: list[int | None] = [None] * self.workers
        try:
            self._start(list(range(self.workers)))
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ workers
    def _start(self, which: list[int]) -> None:
        """Start the actors ``which`` (fresh ones) and wait until each has built its engine."""
        for k in which:
            self._actors[k] = self._actor_class.remote(*self._build)
        refs = [self._actors[k].pid.remote() for k in which]
        ready, waiting = self.ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout)
        if waiting:
            have = cluster_cpus()
            raise GraphflowError(f"{len(waiting)} of {len(which)} Ray workers did not start within "
                                 f"{self.start_timeout:g} s: {self.workers} workers of {self.cpus_per_worker:g} CPU(s) "
                                 f"each need {self.workers * self.cpus_per_worker:g} CPUs, and "
                                 f"{describe_address(self.address)} has {have}")
        for k, ref in zip(which, refs):
            self._pids[k] = self._get(ref, f"worker {k}")

    def _get(self, ref, what: str):
        """``ray.get``, with a worker's own error (a GraphflowError, a ValueError, ...) raised as itself."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise GraphflowError(f"{what} failed: {err}") from None

    def _replace(self, k: int, err: BaseException) -> None:
        self.events.append({"worker": k, "pid": self._pids[k], "error": type(err).__name__})
        try:
            self.ray.kill(self._actors[k], no_restart=True)
        except Exception:  # already gone
            pass
        self.restarts += 1
        self.stats.restarts += 1
        self._start([k])

    def worker_pids(self) -> list[int | None]:
        """The process id of every worker, in worker order (asked of the actors when they started)."""
        return list(self._pids)

    def close(self) -> None:
        """Stop the workers, and the Ray instance when this object started it."""
        for k, actor in enumerate(getattr(self, "_actors", [])):
            if actor is not None:
                try:
                    self.ray.kill(actor, no_restart=True)
                except Exception:
                    pass
                self._actors[k] = None
        shutdown_if_started(getattr(self, "started_ray", False))
        self.started_ray = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if any(actor is None for actor in self._actors):
            raise GraphflowError(f"this {type(self).__name__} is closed")

    def _gather(self, parts: int, submit) -> list:
        """The answers of ``submit(actor, k)`` for parts ``k = 0 .. parts - 1`` (part k on worker k),
        in part order: the order a reduction sees does not depend on who finishes first."""
        refs = [submit(self._actors[k], k) for k in range(parts)]
        return [self._collect(k, refs[k], submit) for k in range(parts)]

    def _collect(self, k: int, ref, submit):
        """Part ``k``'s answer; a dead worker is replaced and the part sent again."""
        lost = (self.ray.exceptions.RayActorError,) + tuple(
            getattr(self.ray.exceptions, name) for name in ("ActorUnavailableError", "WorkerCrashedError",
                                                            "OutOfMemoryError")
            if hasattr(self.ray.exceptions, name))
        for attempt in range(self.max_restarts + 1):
            try:
                return self._get(ref, f"worker {k}")
            except lost as err:
                if attempt == self.max_restarts:
                    raise WorkerLostError(f"worker {k} died {attempt + 1} times computing its shard "
                                          f"(last: {type(err).__name__}); giving up after {self.max_restarts} "
                                          f"restarts") from None
                self._replace(k, err)
                ref = submit(self._actors[k], k)
        raise AssertionError("unreachable")


class ShardedMetaGradient(ActorPool):
    """A drop-in :class:`~graphflow.meta.metaloss.MetaGradient` whose outer batch is split over Ray actors.

    ``workers`` actors (default: one per ``cpus_per_worker`` CPUs of the Ray instance) each build
    ``MetaGradient(graph, protocol, backend, dtype, trainable, **options)`` once; ``options`` are
    MetaGradient's (``recompute_every``, ``threads`` (default ``cpus_per_worker``),
    ``remat_cells``, ...). ``address``: None starts a local Ray instance sized to the machine,
    ``"auto"`` or ``"ray://host:port"`` joins a cluster (see :func:`graphflow.distributed.cluster.connect`).
    A worker that dies is replaced and its shard recomputed, up to ``max_restarts`` times per shard
    and call (:class:`ActorPool`). :attr:`stats` says where the last call's time and bytes went.

    Use it as a context manager, or call :meth:`close`, to stop the actors (and the local Ray
    instance it started).
    """

    def __init__(self, graph, protocol, backend="numpy", dtype=np.float32, trainable: list[str] | None = None, *,
                 workers: int | None = None, address: str | None = None, cpus_per_worker: float = 1,
                 max_restarts: int = 3, start_timeout: float = 120.0, **options):
        self.trainable = trainable if trainable is not None else protocol.trainable()
        options.setdefault("threads", max(1, int(cpus_per_worker)))
        # Which initial networks are shared by all tasks (MAML) and which per task: as MetaGradient decides.
        from graphflow.engine import Engine

        self._shapes = Engine(graph, protocol).parameter_shapes()
        super().__init__(ShardWorker, (graph, protocol, backend, dtype, self.trainable, options), workers=workers,
                         address=address, cpus_per_worker=cpus_per_worker, max_restarts=max_restarts,
                         start_timeout=start_timeout)

    def __enter__(self) -> "ShardedMetaGradient":
        return self

    # ------------------------------------------------------------------ one call
    def __call__(self, protocol, batch: MetaBatch, init: dict, hint_weight=0.7, heldout_weight=0.3,
                 init_trainable: bool = False):
        """(meta-loss float, {name: gradient numpy array}) for ``protocol`` on ``batch``, as MetaGradient's."""
        self._check_open()
        started = time.perf_counter()
        stats = self.stats = CallStats()
        slices = shard_slices(batch.tasks, self.workers)
        put_started = time.perf_counter()
        protocol_ref = self.ray.put(protocol)
        stats.put_seconds = time.perf_counter() - put_started
        stats.protocol_bytes = array_bytes(protocol)
        shared = {key: tuple(np.shape(v)) == self._shapes.get(key) for key, v in init.items()}
        shards = [(batch.select(part), {key: v if shared[key] else v[part] for key, v in init.items()})
                  for part in slices]
        stats.shard_bytes = [array_bytes(shard) for shard in shards]

        def submit(actor, k):
            return actor.compute.remote(protocol_ref, *shards[k], hint_weight, heldout_weight, init_trainable)

        results = self._gather(len(shards), submit)
        reduce_started = time.perf_counter()
        stats.shard_seconds = [seconds for _, _, (seconds, _) in results]
        stats.shard_cpu_seconds = [cpu for _, _, (_, cpu) in results]
        stats.result_bytes = [array_bytes(grads) for _, grads, _ in results]
        weights = [(part.stop - part.start) / batch.tasks for part in slices]
        loss, grads = reduce_shards([(loss, grads) for loss, grads, _ in results], weights)
        stats.reduce_seconds = time.perf_counter() - reduce_started
        stats.seconds = time.perf_counter() - started
        return loss, grads
