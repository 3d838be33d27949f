"""Truncated backprop split over Ray actors: each worker keeps its task slots' persistent inner networks.

:class:`TruncatedShards` is the pool: each worker a Ray actor with its own engine
(:class:`~graphflow.meta.estimators.EngineLoop`) and the inner networks of a fixed, contiguous
slice of the outer batch's task slots (:func:`graphflow.distributed.sharded.shard_slices`), kept
across truncations. :class:`DistributedTruncated` is the estimator the trainer uses: the
one-process :class:`~graphflow.meta.estimators.TruncatedEstimator` keeps the tasks (seeds, unroll
lengths, positions) on the driver and draws everything in the one-process order (task
replacements, then the truncation length from the step's noise seed); each outer step the driver
sends every worker its slots' windows (their next K steps, grouped by window length as the
one-process estimator groups them) and, when tasks start or restart, their fresh inner networks; a
worker runs each window under its own tape, differentiates its share of the meta-loss, keeps the
networks the windows end with and returns its meta-loss share and gradient sum. The driver sums
them in slot order (worker order), in float64: the one-process estimate up to float32 summation
order (the tape of one slot group is split over the workers).

The inner networks travel as a PES population's do (:mod:`graphflow.distributed.persistent`): a
checkpoint (:meth:`DistributedTruncated.state_arrays`, which the trainer also calls for its
rollback snapshot after every meta-step) fetches every slot's from the workers; a resume or a
rollback (:meth:`DistributedTruncated.load_state`) sends them back. A worker whose process dies is
replaced and given its slots' networks from before the step (or those before the step before,
and that step replayed), and recomputes its slice; without them the step fails saying so, and
``--resume`` continues from the last checkpoint.
"""

from __future__ import annotations

import os
import time

import numpy as np

from graphflow.autodiff import Tape, Var, grad
from graphflow.distributed.persistent import PersistentEstimator, PersistentPool, _numpy, _on
from graphflow.distributed.sharded import CallStats, array_bytes, shard_slices
from graphflow.engine import NetState
from graphflow.errors import GraphflowError
from graphflow.meta.estimators import (EngineLoop, TaskDraws, TruncatedEstimator, _copy, _plain, _put_rows, _rows,
                                       _shapes, _stack_states)


class TruncatedWorker:
    """What runs in each Ray actor: an engine, and the inner networks of the task slots it was given."""

    def __init__(self, graph, protocol, trainable, backend, dtype, weights, threads, count: int):
        self.loop = EngineLoop(graph, protocol, trainable, backend, dtype, weights, threads=threads)
        self.count = count  # the outer batch: each window's meta-loss is its tasks' sum over this
        self.state: NetState | None = None  # the rows of this worker's slots, in slot order

    def pid(self) -> int:
        return os.getpid()

    def set_state(self, state: NetState | None) -> None:
        """Take these slots' inner networks (None: drop this worker's)."""
        self.state = None if state is None else _copy(_on(state, self.loop.base), self.loop.base.xp)

    def get_state(self, slots: range) -> NetState:
        """This worker's slots' inner networks (numpy)."""
        self._check(slots)
        return _numpy(self.state, self.loop.base)

    def _check(self, slots: range) -> None:
        if self.state is None:
            which = (f"slots {slots.start}-{slots.stop - 1} lost their inner networks" if len(slots) > 1 else
                     f"slot {slots.start} lost its inner network")
            raise GraphflowError(f"the Ray worker of truncated-backprop task {which} (its "
                                 f"process was replaced); continue the run from its last checkpoint "
                                 f"(graphflow train --resume)")

    def step(self, protocol, slots: range, reset, windows: list):
        """(meta-loss share, {key: gradient sum}, (wall, CPU seconds)): every window of ``windows``
        (``[(slots, (batch, hint_scale, heldout))]``, slots of ``slots``) under a tape, from these
        slots' networks, after ``reset``: None, ``(None, state)`` (every slot starts from
        ``state``) or ``(restarted, fresh)`` (those slots restart)."""
        started, cpu = time.perf_counter(), time.process_time()
        loop = self.loop
        be, xp = loop.base, loop.base.xp
        if reset is not None:
            restarted, state = reset
            if restarted is None:
                self.state = _copy(_on(state, be), xp)  # what Ray hands over is read-only
            else:
                self._check(slots)
                _put_rows(self.state, np.asarray(restarted) - slots.start, _on(state, be), xp)
        self._check(slots)
        theta = loop.parameters(protocol)
        total, grads = 0.0, {key: None for key in theta}
        # as TruncatedEstimator.estimate runs its slot groups, for this worker's part of each
        for part, (batch, hint_scale, heldout) in windows:
            rows = np.asarray(part) - slots.start
            with Tape(be) as tape:
                leaves = {key: tape.var(v) for key, v in theta.items()}
                end, terms = loop.run(leaves, _rows(self.state, rows), batch, hint_scale, heldout, tape=tape)
                share = terms.sum() * (1.0 / self.count)
            gs = grad(tape, share, list(leaves.values())) if isinstance(share, Var) else [None] * len(leaves)
            for key, g in zip(theta, gs):
                if g is not None:
                    grads[key] = g if grads[key] is None else grads[key] + g
            total += float(be.to_numpy(share.value if isinstance(share, Var) else share))
            _put_rows(self.state, rows, _plain(end), xp)
        out = {key: be.to_numpy(g) for key, g in grads.items() if g is not None}
        return total, out, (time.perf_counter() - started, time.process_time() - cpu)


def truncated_build(estimator: TruncatedEstimator, threads: int | None = None) -> tuple:
    """The arguments a :class:`TruncatedWorker` needs: ``estimator``'s graph, protocol, trained
    entries, backend, dtype, weights, threads (default its engine's) and outer batch."""
    loop = estimator.loop
    return (loop.graph, loop.engine.protocol, list(loop.trainable), loop.base.name, loop.base.dtype,
            (loop.hint_weight, loop.heldout_weight), threads or loop.engine.threads, estimator.tasks.count)


class TruncatedShards(PersistentPool):
    """Ray actors each keeping a fixed slice of a truncated estimator's task slots (see the module)."""

    def __init__(self, estimator: TruncatedEstimator, *, threads: int | None = None, workers: int | None = None,
                 address: str | None = None, cpus_per_worker: float = 1, max_restarts: int = 3,
                 start_timeout: float = 120.0):
        super().__init__(TruncatedWorker, truncated_build(estimator, threads), workers=workers, address=address,
                         cpus_per_worker=cpus_per_worker, max_restarts=max_restarts, start_timeout=start_timeout)
        self.slices = [range(s.start, s.stop) for s in shard_slices(estimator.tasks.count, self.workers)]

    def _rows(self, state: NetState, k: int) -> NetState:
        return _rows(state, slice(self.slices[k].start, self.slices[k].stop))

    def _send_step(self, actor, k: int, args: tuple):
        protocol_ref, resets, windows = args
        return actor.step.remote(protocol_ref, self.slices[k], resets[k], windows[k])

    def _send_networks(self, actor, k: int, networks: NetState) -> None:
        actor.set_state.remote(self._rows(networks, k))

    def step(self, protocol, resets: list, windows: list[list], backup: NetState | None = None) -> tuple[float, dict]:
        """(meta-loss, {key: gradient}) of every worker's windows (``windows[k]``, after
        ``resets[k]``), summed in worker order (slot order) in float64; keys no window reaches are
        missing. ``backup``: every slot's networks before this step, when the driver has them. A
        worker that dies is replaced, given its slots' networks (``backup``, or the last step
        replayed from the networks before it) and sent the step again; when neither is there, the
        new worker says that its slots' networks are lost (unless the step starts every task)."""
        self._check_open()
        started = time.perf_counter()
        stats = self.stats = CallStats()
        protocol_ref = self.ray.put(protocol)
        stats.put_seconds = time.perf_counter() - started
        stats.protocol_bytes = array_bytes(protocol)
        stats.shard_bytes = [array_bytes([w[1][0] for w in ws]) + (array_bytes(r[1].params) + array_bytes(r[1].carries)
                                                                   if r is not None else 0)
                             for ws, r in zip(windows, resets)]
        results = self._step((protocol_ref, resets, windows), backup)
        reduce_started = time.perf_counter()
        stats.shard_seconds = [s for _, _, (s, _) in results]
        stats.shard_cpu_seconds = [c for _, _, (_, c) in results]
        stats.result_bytes = [array_bytes(g) for _, g, _ in results]
        loss, grads = 0.0, {}
        for part, part_grads, _ in results:
            loss += part
            for key, g in part_grads.items():
                grads[key] = grads.get(key, 0.0) + np.asarray(g, np.float64)
        stats.reduce_seconds = time.perf_counter() - reduce_started
        stats.seconds = time.perf_counter() - started
        return loss, grads

    def get_state(self) -> list[NetState]:
        """Every worker's slots' inner networks, in worker (slot) order (numpy)."""
        self._check_open()
        return self._calls(lambda actor, k: actor.get_state.remote(self.slices[k]))

    def set_state(self, state: NetState | None) -> None:
        """Give every worker its slots' rows of ``state`` (None: the workers drop theirs)."""
        self._check_open()
        self._last = None  # the networks are these: nothing to replay
        self._gather(len(self.slices),
                     lambda actor, k: actor.set_state.remote(None if state is None else self._rows(state, k)))


class DistributedTruncated(PersistentEstimator):
    """A :class:`~graphflow.meta.estimators.TruncatedEstimator` whose task slots run on
    :class:`TruncatedShards`: the same tasks and draws as the one-process estimator
    (``estimator``, which keeps all but the inner networks), the networks and tapes on the workers."""

    kind = "truncated"

    def __init__(self, estimator: TruncatedEstimator, shards: TruncatedShards):
        super().__init__(estimator)
        self.shards = shards

    def _begin(self, theta: dict, draws: TaskDraws) -> list:
        """TruncatedEstimator's start and restart of tasks: what each worker resets (None, or its
        restarted slots and their fresh networks, numpy)."""
        local, loop = self.local, self.local.loop
        tasks, slices = local.tasks, self.shards.slices
        if not tasks.started:  # the staggered start on the driver (no estimate), as _Truncated._begin
            local._begin(theta, draws)
            state = _numpy(local.states[0], loop.base)
            local.states = []
            return [(None, self.shards._rows(state, k)) for k in range(len(slices))]
        if not self._pushed:
            self.shards.set_state(local.states[0])
            self._pushed = True
        ended = tasks.ended()
        if not ended:
            return [None] * len(slices)
        tasks.replace(ended, draws)
        fresh = _numpy(loop.fresh(tasks.initial(ended, draws)), loop.base)
        resets = []
        for part in slices:
            mine = [i for i, t in enumerate(ended) if t in part]
            resets.append((np.array([ended[i] for i in mine]), _rows(fresh, np.array(mine))) if mine else None)
        return resets

    def estimate(self, protocol, draws: TaskDraws):
        local, loop = self.local, self.local.loop
        tasks = local.tasks
        theta = loop.parameters(protocol)  # on the driver for the staggered start and the shapes
        resets = self._begin(theta, draws)
        k = tasks.truncation_length(draws.noise_seed())
        windows = [[(slots, tasks.window(slots, steps, draws, loop.base)) for slots, steps in tasks.groups(k, part)]
                   for part in self.shards.slices]
        backup = _numpy(local.states[0], loop.base) if self._current and local.states else None
        loss, grads = self.shards.step(protocol, resets, windows, backup)
        self._pushed, self._current = True, False
        local.states = []  # the workers hold them now
        for part in windows:
            for slots, (batch, _, _) in part:
                tasks.advance(slots, batch.steps)
        dtype = loop.base.dtype
        return loss, {key: grads[key].astype(dtype) if key in grads else np.zeros(shape, dtype)
                      for key, shape in _shapes(theta).items()}

    def _fetch(self) -> list[NetState]:
        be = self.local.loop.base
        return [_stack_states([_on(s, be) for s in self.shards.get_state()], be.xp)]
