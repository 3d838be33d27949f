"""A PES population split over Ray actors: each worker keeps its members' persistent inner networks.

:class:`PesPopulation` is the pool: each worker a Ray actor with its own engine
(:class:`~graphflow.meta.estimators.EngineLoop`) and the inner networks of a fixed slice of the
population, whole antithetic pairs (:func:`graphflow.distributed.population.member_slices`),
kept across truncations. :class:`DistributedPes` is the estimator the trainer uses: the
one-process :class:`~graphflow.meta.estimators.PesEstimator` keeps the tasks (seeds, unroll
lengths, positions) and the accumulated perturbations Z on the driver and draws everything in
the one-process order; each outer step the driver sends every worker the step's noise seed, the
truncation's windows (the tasks' next K steps, put once) and, when tasks start or restart, their
fresh inner networks; a worker runs its members over the windows, keeps their new networks and
returns their losses per task; the driver reduces them with Z as the one-process estimator does.

The inner networks travel only to start tasks and when the driver asks for them: a checkpoint
(:meth:`DistributedPes.state_arrays`, which the trainer also calls for its rollback snapshot after
every meta-step) fetches every member's from the workers; a resume or a rollback
(:meth:`DistributedPes.load_state`) sends them back. A worker whose process dies takes its
members' networks with it: when the driver holds them from before the step or the step before
(it fetches them for the trainer's snapshot after every meta-step), the replacement gets its
members', replays the step it missed if need be, and recomputes its slice, with the same bits;
else the step fails with an error saying so, and ``--resume`` continues from the last checkpoint.
"""

from __future__ import annotations

import os
import time

import numpy as np

from graphflow.distributed.population import member_slices
from graphflow.distributed.sharded import ActorPool, CallStats, array_bytes
from graphflow.engine import NetState
from graphflow.errors import GraphflowError
from graphflow.meta.estimators import (EngineLoop, PesEstimator, TaskDraws, _copy, _member_params, _perturbed, _put_rows,
                                       _rows, _shapes, _stack_states, pair_noise)


class PesWorker:
    """What runs in each Ray actor: an engine, and the inner networks of the members it was given."""

    def __init__(self, graph, protocol, trainable, backend, dtype, weights, threads, pes: dict):
        loop = EngineLoop(graph, protocol, trainable, backend, dtype, weights, threads=threads)
        self.estimator = PesEstimator(loop, **pes)  # its settings and members_at_once; its states stay unused
        self.states: dict[int, NetState] = {}

    def pid(self) -> int:
        return os.getpid()

    def set_states(self, members: list[int], states: list[NetState] | None) -> None:
        """Take these members' inner networks (None: drop every network this worker holds)."""
        self.states = {}
        xp = self.estimator.loop.base.xp
        for member, state in zip(members, states or []):
            self.states[member] = _copy(_on(state, self.estimator.loop.base), xp)

    def get_states(self, members: list[int]) -> list[NetState]:
        """These members' inner networks (numpy), in the order asked."""
        self._check(members)
        return [_numpy(self.states[m], self.estimator.loop.base) for m in members]

    def _check(self, members) -> None:
        missing = [m for m in members if m not in self.states]
        if missing:
            raise GraphflowError(f"the Ray worker of PES members {members[0]}-{members[-1]} lost their inner networks "
                                 f"(its process was replaced); continue the run from its last checkpoint "
                                 f"(graphflow train --resume)")

    def step(self, protocol, seed: int, members: range, reset, windows: list, tasks: int):
        """(losses [members, tasks], (wall, CPU seconds)): every member of ``members`` over the
        ``windows`` (``[(slots, (batch, hint_scale, heldout))]``), from its inner networks, after
        ``reset``: None, ``(None, state)`` (all tasks start from ``state``) or ``(slots, fresh)``
        (those tasks restart)."""
        started, cpu = time.perf_counter(), time.process_time()
        est = self.estimator
        loop = est.loop
        be, xp = loop.base, loop.base.xp
        members = list(members)
        if reset is not None:
            slots, state = reset
            state = _on(state, be)
            if slots is None:
                self.states = {m: _copy(state, xp) for m in members}
            else:
                self._check(members)
                for m in members:
                    _put_rows(self.states[m], np.asarray(slots), state, xp)
        self._check(members)
        theta = loop.parameters(protocol)
        shapes = _shapes(theta)
        losses = np.empty((len(members), tasks))
        # as PesEstimator.estimate runs its members (chunks of members_at_once), for this slice
        chunk = est.members_at_once(max((w[0] for _, w in windows), key=lambda b: b.tasks), len(members))
        for lo in range(0, len(members), chunk):
            part = members[lo:lo + chunk]
            if chunk == 1:
                (member,) = part
                pair, sign = divmod(member, 2)
                params = _perturbed(theta, pair_noise(shapes, seed, pair), -est.sigma if sign else est.sigma, be)
                state = self.states[member]
                for slots, (batch, hint_scale, heldout) in windows:
                    end, terms = loop.run(params, _rows(state, slots), batch, hint_scale, heldout)
                    _put_rows(state, slots, end, xp)
                    losses[lo, slots] = be.to_numpy(terms)
                continue
            params = _member_params(theta, shapes, seed, part, est.sigma, be)
            for slots, (batch, hint_scale, heldout) in windows:
                together = _stack_states([_rows(self.states[m], slots) for m in part], xp)
                end, terms = loop.run_population(params, together, batch, hint_scale, heldout)
                per_member = be.to_numpy(terms)
                for i, member in enumerate(part):
                    _put_rows(self.states[member], slots, _rows(end, slice(i * len(slots), (i + 1) * len(slots))), xp)
                    losses[lo + i, slots] = per_member[i]
        return losses, (time.perf_counter() - started, time.process_time() - cpu)


def _on(state: NetState, be) -> NetState:
    return NetState({k: be.asarray(v) for k, v in state.params.items()},
                    {k: be.asarray(v) for k, v in state.carries.items()}, state.step)


def pes_build(estimator: PesEstimator, threads: int | None = None) -> tuple:
    """The arguments a :class:`PesWorker` needs: ``estimator``'s graph, protocol, trained entries,
    backend, dtype, weights, threads (default its engine's) and settings."""
    loop = estimator.loop
    pes = {"tasks": estimator.tasks.count, "unroll": estimator.tasks.unroll, "truncation": estimator.tasks.truncation,
           "population": estimator.population, "sigma": estimator.sigma, "stagger": estimator.tasks.stagger}
    for name in ("member_chunk", "memory_budget"):
        if hasattr(estimator, name):
            pes[name] = getattr(estimator, name)
    return (loop.graph, loop.engine.protocol, list(loop.trainable), loop.base.name, loop.base.dtype,
            (loop.hint_weight, loop.heldout_weight), threads or loop.engine.threads, pes)


class PersistentPool(ActorPool):
    """An :class:`ActorPool` whose workers keep inner networks across calls, a fixed slice each
    (:attr:`slices`, worker order): a replacement for a dead worker is brought to where that one
    was before it gets its call. Subclasses say how a step is sent (:meth:`_send_step`) and how a
    worker is given its slice of the driver's networks (:meth:`_send_networks`)."""

    slices: list[range]

    def __init__(self, actor, build: tuple, **options):
        super().__init__(actor, build, **options)
        self._last = None
        """The last step's arguments and the networks from before it (or None): what a replacement replays."""

    def _send_step(self, actor, k: int, args: tuple):
        """Send worker ``k`` the step of ``args`` (a subclass's); the answer's ref."""
        raise NotImplementedError

    def _send_networks(self, actor, k: int, networks) -> None:
        """Give worker ``k`` its slice of ``networks`` (every slot's or member's, the driver's)."""
        raise NotImplementedError

    def _calls(self, call, backup=None):
        """``call(actor, k)`` for every worker, in worker order; a replacement is first given its
        slice of ``backup`` (the networks from before this call), or without it brought to where
        the dead worker was (:meth:`_revive`)."""
        first: list = [None] * len(self.slices)

        def submit(actor, k):
            if first[k] is None:
                first[k] = actor
            elif backup is not None:
                self._send_networks(actor, k, backup)
            else:
                self._revive(actor, k)
            return call(actor, k)

        return self._gather(len(self.slices), submit)

    def _revive(self, actor, k: int) -> None:
        """Give a replacement worker ``k`` its slice's networks as the dead one had them after the
        last step: the networks from before it, when the driver had them, and the step again (an
        actor runs its calls in order). Without them, the worker's next call says they are lost."""
        if self._last is None:
            return
        args, backup = self._last
        if backup is not None:
            self._send_networks(actor, k, backup)
        self._send_step(actor, k, args)

    def _step(self, args: tuple, backup) -> list:
        """Every worker's answer to the step of ``args``, in worker order; ``backup``: the networks
        before this step, when the driver has them (what a replacement gets)."""
        results = self._calls(lambda actor, k: self._send_step(actor, k, args), backup)
        self._last = (args, backup)
        return results


class PesPopulation(PersistentPool):
    """Ray actors each keeping a fixed slice of a PES population's inner networks (see the module)."""

    def __init__(self, estimator: PesEstimator, *, threads: int | None = None, workers: int | None = None,
                 address: str | None = None, cpus_per_worker: float = 1, max_restarts: int = 3,
                 start_timeout: float = 120.0):
        super().__init__(PesWorker, pes_build(estimator, threads), workers=workers, address=address,
                         cpus_per_worker=cpus_per_worker, max_restarts=max_restarts, start_timeout=start_timeout)
        self.slices = member_slices(estimator.population, self.workers)

    def _send_step(self, actor, k: int, args: tuple):
        protocol_ref, seed, reset_ref, windows_ref, tasks = args
        return actor.step.remote(protocol_ref, seed, self.slices[k], reset_ref, windows_ref, tasks)

    def _send_networks(self, actor, k: int, networks: list[NetState]) -> None:
        actor.set_states.remote(list(self.slices[k]), [networks[m] for m in self.slices[k]])

    def step(self, protocol, seed: int, reset, windows: list, tasks: int,
             backup: list[NetState] | None = None) -> np.ndarray:
        """Every member's losses per task, [population, tasks], in member order. ``backup``: every
        member's networks before this step, when the driver has them. A worker that dies is
        replaced, given its members' networks (``backup``, or the last step replayed from the
        networks before it) and sent the step again; when neither is there, the new worker says
        that its members' networks are lost (unless the step starts every task)."""
        self._check_open()
        started = time.perf_counter()
        stats = self.stats = CallStats()
        protocol_ref = self.ray.put(protocol)
        windows_ref = self.ray.put(windows)
        reset_ref = self.ray.put(reset)
        stats.put_seconds = time.perf_counter() - started
        stats.protocol_bytes = array_bytes(protocol)
        stats.shard_bytes = [array_bytes([w[1][0] for w in windows])] * len(self.slices)
        results = self._step((protocol_ref, seed, reset_ref, windows_ref, tasks), backup)
        stats.shard_seconds = [s for _, (s, _) in results]
        stats.shard_cpu_seconds = [c for _, (_, c) in results]
        stats.result_bytes = [array_bytes(losses) for losses, _ in results]
        stats.seconds = time.perf_counter() - started
        return np.concatenate([losses for losses, _ in results])

    def get_states(self) -> list[NetState]:
        """Every member's inner networks, in member order (numpy)."""
        self._check_open()
        return [s for part in self._calls(lambda actor, k: actor.get_states.remote(list(self.slices[k]))) for s in part]

    def set_states(self, states: list[NetState] | None) -> None:
        """Give every worker its members' inner networks (None: the workers drop theirs)."""
        self._check_open()
        self._last = None  # the networks are these: nothing to replay
        self._gather(len(self.slices), lambda actor, k: actor.set_states.remote(
            list(self.slices[k]), None if states is None else [states[m] for m in self.slices[k]]))


class PersistentEstimator:
    """What a one-process estimator with persistent inner networks (``local``) needs when its
    networks live on a :class:`PersistentPool`: checkpoints fetch them from the workers
    (:meth:`_fetch`, a subclass's), a restore sends them back at the next estimate."""

    def __init__(self, local):
        self.local = local
        self._pushed = False  # whether the workers hold the networks of the local state
        self._current = False  # whether the local state's networks are the workers' (fetched since the last step)

    def _fetch(self) -> list[NetState]:
        """The local estimator's states, from the workers (on its backend)."""
        raise NotImplementedError

    # checkpoints: the networks fetched from the workers, sent back on a restore
    def state_arrays(self) -> dict[str, np.ndarray]:
        if self.local.tasks.started and self._pushed and not self._current:
            self.local.states = self._fetch()
            self._current = True
        return self.local.state_arrays()

    def state_meta(self) -> dict:
        return self.local.state_meta()

    def load_state(self, arrays: dict, meta: dict, source: str = "checkpoint", check: bool = True) -> None:
        self.local.load_state(arrays, meta, source, check)
        self._pushed = False  # the next estimate sends them to the workers (the first: nothing to send)
        self._current = True

    def abandon_tasks(self) -> None:
        self.local.abandon_tasks()
        self._pushed = self._current = False


class DistributedPes(PersistentEstimator):
    """A :class:`~graphflow.meta.estimators.PesEstimator` whose members run on a :class:`PesPopulation`:
    the same draws, tasks, accumulated perturbations and reduction as the one-process estimator
    (``estimator``, which keeps all but the inner networks), the networks on the workers."""

    kind = "pes"

    def __init__(self, estimator: PesEstimator, population: PesPopulation):
        super().__init__(estimator)
        self.population = population

    def _begin(self, theta: dict, draws: TaskDraws):
        """PesEstimator's start and restart of tasks, the networks sent to the workers: (slots restarted, reset)."""
        local, loop = self.local, self.local.loop
        tasks = local.tasks
        if not tasks.started:
            tasks.replace(range(tasks.count), draws)
            state = loop.fresh(tasks.initial(range(tasks.count), draws))
            offsets = tasks.offsets()
            for offset in sorted(set(offsets.tolist()) - {0}):  # reach the spread positions, no estimate
                slots = np.nonzero(offsets == offset)[0]
                batch, hint_scale, _ = tasks.window(slots, offset, draws, loop.base)
                end, _ = loop.run(theta, _rows(state, slots), batch, hint_scale, None)
                _put_rows(state, slots, end, loop.base.xp)
                tasks.advance(slots, offset)
            return list(range(tasks.count)), (None, _numpy(state, loop.base))
        if not self._pushed:
            self.population.set_states(self.local.states)
            self._pushed = True
        ended = tasks.ended()
        if ended:
            tasks.replace(ended, draws)
            return ended, (list(ended), _numpy(loop.fresh(tasks.initial(ended, draws)), loop.base))
        return ended, None

    def estimate(self, protocol, draws: TaskDraws):
        local, loop = self.local, self.local.loop
        theta = loop.parameters(protocol)
        restarted, reset = self._begin(theta, draws)
        seed, windows = local.prepare(_shapes(theta), restarted, draws)
        backup = [_numpy(st, loop.base) for st in local.states] if self._current and local.states else None
        losses = self.population.step(protocol, seed, reset, windows, local.tasks.count, backup)
        self._pushed, self._current = True, False
        local.states = []  # the workers hold them now
        return local.finish(losses, windows)

    def _fetch(self) -> list[NetState]:
        be = self.local.loop.base
        return [_on(s, be) for s in self.population.get_states()]


def _numpy(state: NetState, be) -> NetState:
    return NetState({k: be.to_numpy(v) for k, v in state.params.items()},
                    {k: be.to_numpy(v) for k, v in state.carries.items()}, state.step)
