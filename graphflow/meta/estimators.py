"""Estimators of the meta-gradient: exact and truncated backprop, antithetic ES, persistent ES.

Every estimator answers one question, ``estimate(protocol, draws) -> (meta-loss, {protocol key:
gradient})``, for the trained entries of the protocol (the keys of
:meth:`~graphflow.learners.protocol.Protocol.flat`). What it carries from one outer step to the
next is checkpoint data: ``state_arrays()`` (arrays), ``state_meta()`` (JSON) and
``load_state(arrays, meta)``, so that a resumed run continues exactly.

- :class:`BpttEstimator`: exact reverse mode through whole unrolls (:class:`~graphflow.meta.metaloss.MetaGradient`).
- :class:`TruncatedEstimator`: reverse mode through the next K steps of persistent inner loops.
- :class:`EsEstimator`: antithetic evolution strategies over whole unrolls, forward passes only.
- :class:`PesEstimator`: persistent ES over truncations, forward passes only, unbiased.
- :class:`NresEstimator`: noise-reuse ES over truncations: each task's noise fixed for its unroll, unbiased.

Tasks come from a :class:`TaskDraws` (the trainer's random generator and task family); inner
loops run on an :class:`EngineLoop` (a graph, a protocol, a backend) or on any object with its
members (the tests use a scalar toy). Noise is never stored: the perturbation of antithetic pair
``j`` at an outer step is regenerated from that step's seed and ``j`` (NRES: from the seed its
task drew when it started, and ``j``).

The truncated estimators (``truncated``, ``pes``, ``nres``) walk every task through its unroll of T inner
steps, K steps per outer step, and report the truncation's share of the task's meta-loss scaled
by T / K (so that, with tasks spread over their unrolls, it is on the scale of a whole unroll's
meta-loss): ``hint_weight`` times the mean hint loss of the K steps, plus ``heldout_weight * T / K``
times the held-out loss when the truncation ends the unroll. Summed over a task's truncations and
each scaled back by K / T, the shares are the meta-loss of the whole unroll.

This module never knows which task family it runs, nor how the protocol is then updated.
"""

from __future__ import annotations

import math
from typing import Protocol as Interface

import numpy as np

from graphflow.autodiff import Tape, Var, grad, traced_backend
from graphflow.backend import get_backend
from graphflow.engine import Engine, NetState
from graphflow.errors import GraphflowError
from graphflow.learners.protocol import ParamKey
from graphflow.meta.metaloss import MetaBatch, MetaGradient, weighted_unroll


class TaskDraws(Interface):
    """What an estimator asks of the run: tasks, initial networks and seeds."""

    def batch(self, tasks: int, steps: int) -> tuple[MetaBatch, dict]:
        """Fresh tasks of ``steps`` inner steps and their initial networks, from the run's generator."""

    def task(self, seed: int, steps: int) -> tuple[MetaBatch, dict]:
        """The one task of ``seed`` (a batch of one task) and its initial network: the same every time."""

    def task_seed(self) -> int:
        """A seed for a new persistent task, from the run's generator."""

    def noise_seed(self) -> int:
        """The seed of one outer step's perturbations (and truncation length), from the run's generator."""


# ----------------------------------------------------------------------------------------------
# the inner loop the ES-type and truncated estimators run


class EngineLoop:
    """The inner loop of a graph under a protocol whose trained entries an estimator sets.

    ``parameters(protocol)`` gives the trained entries (``trainable``) as backend arrays and makes
    the other entries of ``protocol`` the ones later runs use; ``run(params, state, batch,
    hint_scale, heldout_scale, tape)`` runs every step of ``batch`` from ``state`` with the trained
    entries ``params`` (leaves of ``tape`` when given, for reverse mode) and returns the state
    after them and the per-task terms of :func:`~graphflow.meta.metaloss.weighted_unroll`;
    ``fresh(init)`` is the state of initial networks (``"<block>/w"`` -> [T, ...]) and
    ``parameter_shapes()`` their per-task shapes.

    ``run_population(members, state, batch, hint_scale, heldout_scale)`` runs P members of a
    population at once, forward only: ``members`` holds each trained entry for every member
    ([P, *shape]), ``state`` P x T tasks, member-major (``fresh(init, P)``: each member starts
    from the same networks), and the terms come back per member and task, [P, T]: the population
    is one more batch axis of the engine (:meth:`~graphflow.engine.Engine.set_member_parameters`).

    >>> import graphflow as gf
    >>> from graphflow.learners import Protocol
    >>> g = gf.build(gf.stack(1, gf.Dense(3), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    >>> protocol = Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4)))
    >>> loop = EngineLoop(g, protocol, ["norm::dense0/w::out_scale"])
    >>> list(loop.parameters(protocol))
    ['norm::dense0/w::out_scale']
    """

    def __init__(self, graph, protocol, trainable: list[str], backend="numpy", dtype=np.float32,
                 weights: tuple[float, float] = (0.7, 0.3), threads: int | None = None):
        self.base = get_backend(backend, dtype)
        self.graph = graph
        self.engine = Engine(graph, protocol, self.base, threads=threads)
        self.trainable = list(trainable)
        self.hint_weight, self.heldout_weight = weights
        self._traced: Engine | None = None
        self._tables = (self.engine.learner_params, self.engine.norm_params)

    def parameters(self, protocol) -> dict:
        self.engine.set_protocol(protocol)
        self._tables = (self.engine.learner_params, self.engine.norm_params)
        flat = protocol.flat()
        unknown = [k for k in self.trainable if k not in flat]
        if unknown:
            raise GraphflowError(f"the protocol has no entry {unknown[0]} to estimate a gradient for")
        return {k: self.base.asarray(flat[k]) for k in self.trainable}

    def run(self, params: dict, state: NetState, batch: MetaBatch, hint_scale, heldout_scale, tape: Tape | None = None):
        eng = self.engine if tape is None else self._traced_engine()
        learners, norms = self._tables
        eng.population = None
        eng.learner_params = {g: dict(p) for g, p in learners.items()}
        eng.norm_params = {g: dict(p) for g, p in norms.items()}
        for text, value in params.items():
            key = ParamKey.parse(text)
            (eng.learner_params if key.table == "learner" else eng.norm_params)[key.group][key.name] = value
        heldout = None if heldout_scale is None else heldout_scale * self.heldout_weight
        with self.base.compute():
            return weighted_unroll(eng, state, batch, 0, batch.steps, hint_scale, self.hint_weight, heldout)

    def run_population(self, members: dict, state: NetState, batch: MetaBatch, hint_scale, heldout_scale):
        sizes = {int(v.shape[0]) for v in members.values()}
        if len(sizes) != 1:
            raise ValueError(f"population members: the trained entries disagree on the number of members "
                             f"{sorted(sizes)}")
        (count,) = sizes
        tables: dict = {"learner": {}, "norm": {}}
        for text, value in members.items():
            key = ParamKey.parse(text)
            tables[key.table].setdefault(key.group, {})[key.name] = value
        eng, xp = self.engine, self.base.xp
        learners, norms = self._tables
        eng.set_member_parameters(tables["learner"], tables["norm"], count)

        def every_member(scale):  # a per-task weight [T] holds for each member's tasks
            return scale if scale is None or not getattr(scale, "ndim", 0) else xp.concatenate([scale] * count)

        heldout = None if heldout_scale is None else every_member(heldout_scale) * self.heldout_weight
        try:
            with self.base.compute():
                end, terms = weighted_unroll(eng, state, batch, 0, batch.steps, every_member(hint_scale),
                                             self.hint_weight, heldout)
        finally:
            eng.population = None
            eng.learner_params, eng.norm_params = learners, norms
        return end, terms.reshape(count, -1)

    def member_bytes(self, batch: MetaBatch) -> int:
        """About the memory one population member's tasks take in :meth:`run_population`: per task
        and example, every learner call's carry (old and new), input streams and first hidden
        layers, and the network's parameters; an overestimate on the CPU, where large calls run in
        blocks, about right on a GPU, where they run whole."""
        spec = self.engine.protocol.spec
        examples = int(np.shape(next(iter(batch.x.values())) if isinstance(batch.x, dict) else batch.x)[2])
        per_node = 0
        for key, slot in self.graph.slots.items():
            layout = self.engine.layouts[key]
            per_node += slot.size * (2 * layout.carry + layout.input_width + sum(spec.mlp_hidden) + layout.message)
        params = sum(int(np.prod(s)) for s in self.engine.parameter_shapes().values())
        return batch.tasks * (examples * per_node + params) * np.dtype(self.base.dtype).itemsize

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.engine.parameter_shapes()

    def fresh(self, init: dict, members: int = 1) -> NetState:
        """Initial networks from ``init`` (``"<block>/w"`` -> [T, ...]); with ``members``, the same
        networks for each of that many population members, member-major ([members x T, ...])."""
        shapes = self.engine.parameter_shapes()
        if set(init) != set(shapes):
            raise ValueError(f"initial network: missing {sorted(set(shapes) - set(init))}, "
                             f"unknown {sorted(set(init) - set(shapes))}")
        xp = self.base.xp
        if members > 1:
            return NetState({k: xp.concatenate([self.base.asarray(v)] * members) for k, v in init.items()})
        # copies: persistent states are written row by row, never into the run's pool of networks
        return NetState({k: xp.array(self.base.asarray(v), copy=True) for k, v in init.items()})

    def _traced_engine(self) -> Engine:
        if self._traced is None:
            self._traced = Engine(self.graph, self.engine.protocol, traced_backend(self.base),
                                  threads=self.engine.threads)
        return self._traced


# ----------------------------------------------------------------------------------------------
# exact backprop


class _Memoryless:
    """What an estimator that keeps nothing between outer steps checkpoints: its kind only."""

    kind: str

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def state_meta(self) -> dict:
        return {"kind": self.kind}

    def load_state(self, arrays: dict, meta: dict, source: str = "checkpoint", check: bool = True) -> None:
        _check_kind(self.kind, arrays, meta, source, check)

    def abandon_tasks(self) -> None:
        """Nothing persists between outer steps."""


class BpttEstimator(_Memoryless):
    """Exact reverse mode through whole unrolls of ``steps`` inner steps: the outer batch's tasks
    are split into ``shards`` whose :class:`MetaGradient`\\ s run in parallel threads (each
    splitting its large learner calls over ``threads_per_shard``). Carries nothing between steps."""

    kind = "bptt"

    def __init__(self, graph, protocol, trainable: list[str], tasks: int, steps: int, weights=(0.7, 0.3),
                 backend="numpy", recompute_every: int | None = None, init_trainable: bool = False,
                 shards: int = 1, threads_per_shard: int | None = None):
        self.tasks, self.steps, self.weights, self.init_trainable = tasks, steps, weights, init_trainable
        self.metagrads = [MetaGradient(graph, protocol, backend, trainable=trainable, recompute_every=recompute_every,
                                       threads=threads_per_shard) for _ in range(shards)]

    def estimate(self, protocol, draws: TaskDraws):
        batch, init = draws.batch(self.tasks, self.steps)
        return self.gradient(protocol, batch, init)

    def gradient(self, protocol, batch: MetaBatch, init: dict):
        """Meta-loss and gradient of one outer batch, its tasks split over the shards' threads."""
        shards = np.array_split(np.arange(batch.tasks), len(self.metagrads))

        def run(k):
            idx = shards[k]
            part_init = init if self.init_trainable else {key: v[idx] for key, v in init.items()}
            return self.metagrads[k](protocol, batch.select(idx), part_init, *self.weights,
                                     init_trainable=self.init_trainable)

        if len(shards) == 1:
            return run(0)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(shards)) as pool:
            results = list(pool.map(run, range(len(shards))))
        weights = [len(s) / batch.tasks for s in shards]
        loss = sum(w * r[0] for w, r in zip(weights, results))
        grads = {key: sum(w * r[1][key] for w, r in zip(weights, results)) for key in results[0][1]}
        return loss, grads


# ----------------------------------------------------------------------------------------------
# evolution strategies: noise, shaping, the antithetic sum


def pair_noise(shapes: dict[str, tuple], seed: int, pair: int) -> dict[str, np.ndarray]:
    """The standard normal perturbation of antithetic pair ``pair`` at the outer step of ``seed``
    (float64, one array per trained entry): regenerated, never stored.

    >>> a = pair_noise({"w": (2,)}, 7, 0)
    >>> bool(np.array_equal(a["w"], pair_noise({"w": (2,)}, 7, 0)["w"])), a["w"].shape
    (True, (2,))
    """
    rng = np.random.default_rng([seed, 2, pair])
    return {key: rng.standard_normal(shape) for key, shape in shapes.items()}


def centered_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` scaled to [-0.5, 0.5] (the smallest -0.5): fitness shaping.

    >>> centered_ranks(np.array([3.0, -1.0, 10.0])).tolist()
    [0.0, -0.5, 0.5]
    """
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks / max(len(values) - 1, 1) - 0.5


def _perturbed(theta: dict, noise: dict, scale: float, be) -> dict:
    return {k: theta[k] + be.asarray(scale * noise[k]) for k in theta}


def _member_params(theta: dict, shapes: dict, seed: int, members, sigma: float, be) -> dict:
    """The trained entries of population ``members`` stacked, [len(members), *shape]: member ``2j``
    theta + sigma eps_j, ``2j + 1`` theta - sigma eps_j, each row what :func:`_perturbed` gives."""
    noises: dict = {}
    steps = {k: [] for k in theta}
    for member in members:
        pair, sign = divmod(member, 2)
        if pair not in noises:
            noises = {pair: pair_noise(shapes, seed, pair)}  # pairs come in order: keep the last one
        scale = -sigma if sign else sigma
        for k in theta:
            steps[k].append(scale * noises[pair][k])
    return {k: theta[k][None] + be.asarray(np.stack(steps[k])) for k in theta}


def _shapes(theta: dict) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in theta.items()}


CACHE_BUDGET = 32 * 2**20
"""Bytes of members run at once on a CPU: about a last-level cache (32 MiB on the machines this
was measured on). On the CPU a whole population in one engine run measured no faster than member
by member (0.74x to 1.32x on the sinusoid 5x10 at population 64, docs/estimators.md): the large
learner calls run in the same blocks either way, and the population's arrays fall out of the
cache between stages; within a cache's worth of members their small calls are still batched."""

DEVICE_BUDGET = 2**30
"""Bytes of members run at once where learner calls run whole (a GPU): every member's call is
one invocation of each array operation."""


class EsEstimator(_Memoryless):
    """Antithetic ES over whole unrolls of ``steps`` inner steps: ``population`` perturbed
    protocols theta +- sigma * eps_j (pairs j), each run forward over the same outer batch, and

        g = sum_j eps_j (L(theta + sigma eps_j) - L(theta - sigma eps_j)) / (population * sigma),

    an unbiased estimate of the gradient of the Gaussian-smoothed meta-loss (the exact gradient up
    to O(sigma^2)). ``centered_rank`` shaping replaces the losses by their centred ranks. No tape:
    memory does not grow with the unroll.

    The population is one more batch axis of the engine: the members a call is given run as one
    engine run of members x tasks inner loops (:meth:`EngineLoop.run_population`), in chunks of
    :meth:`members_at_once` members (``member_chunk``, or as many as ``memory_budget`` bytes hold
    by :meth:`EngineLoop.member_bytes`; by default :data:`CACHE_BUDGET` on a CPU backend,
    :data:`DEVICE_BUDGET` on a GPU). ``member_chunk=1``, or a loop without ``run_population``,
    runs the members one after another, each as one run over all tasks.
    """

    kind = "es"

    def __init__(self, loop, tasks: int, steps: int, population: int, sigma: float, fitness_shaping: str = "none",
                 member_chunk: int | None = None, memory_budget: int | None = None):
        if population < 2 or population % 2:
            raise ValueError(f"population {population}: antithetic pairs need an even population of at least 2")
        if member_chunk is not None and member_chunk < 1:
            raise ValueError(f"member_chunk {member_chunk}: at least one member at a time")
        self.loop, self.tasks, self.steps = loop, tasks, steps
        self.population, self.sigma, self.fitness_shaping = population, sigma, fitness_shaping
        self.member_chunk, self.memory_budget = member_chunk, memory_budget

    def members_at_once(self, batch: MetaBatch, members: int) -> int:
        """How many of ``members`` members run as one engine run: ``member_chunk`` when given, else
        as many as ``memory_budget`` bytes hold (at least one; default :data:`CACHE_BUDGET` where
        the backend blocks for caches, the CPU, else :data:`DEVICE_BUDGET`); 1 for a loop that
        runs one protocol."""
        if not hasattr(self.loop, "run_population"):
            return 1
        if self.member_chunk is not None:
            return min(self.member_chunk, members)
        budget = self.memory_budget
        if budget is None:
            budget = CACHE_BUDGET if self.loop.base.cache_blocking else DEVICE_BUDGET
        return max(1, min(members, budget // max(1, self.loop.member_bytes(batch))))

    def estimate(self, protocol, draws: TaskDraws):
        batch, init = draws.batch(self.tasks, self.steps)
        return self.gradient(protocol, batch, init, draws.noise_seed())

    def gradient(self, protocol, batch: MetaBatch, init: dict, seed: int):
        """Meta-loss (the population's mean) and the ES estimate on one outer batch, with the noise of ``seed``."""
        theta = self.loop.parameters(protocol)
        losses = self.member_losses(theta, batch, init, seed, range(self.population))
        return self.combine(_shapes(theta), losses, seed)

    def member_losses(self, theta: dict, batch: MetaBatch, init: dict, seed: int, members) -> np.ndarray:
        """The meta-losses of the population ``members`` (indices; member ``2j`` is theta + sigma eps_j,
        ``2j + 1`` theta - sigma eps_j) on ``batch`` from the initial networks ``init``: what a
        worker computes for its slice of the population (the noise is regenerated from ``seed``)."""
        loop = self.loop
        shapes = _shapes(theta)
        members = list(members)
        losses = np.empty(len(members))
        chunk = self.members_at_once(batch, len(members))
        if chunk == 1:
            for i, member in enumerate(members):
                pair, sign = divmod(member, 2)
                params = _perturbed(theta, pair_noise(shapes, seed, pair), -self.sigma if sign else self.sigma,
                                    loop.base)
                _, terms = loop.run(params, loop.fresh(init), batch, 1.0 / batch.steps, 1.0)
                losses[i] = float(loop.base.to_numpy(terms).mean())
            return losses
        for lo in range(0, len(members), chunk):
            part = members[lo:lo + chunk]
            params = _member_params(theta, shapes, seed, part, self.sigma, loop.base)
            _, terms = loop.run_population(params, loop.fresh(init, len(part)), batch, 1.0 / batch.steps, 1.0)
            per_member = loop.base.to_numpy(terms)
            for i, row in enumerate(per_member):
                losses[lo + i] = float(row.mean())
        return losses

    def combine(self, shapes: dict[str, tuple], losses: np.ndarray, seed: int):
        """Meta-loss and ES estimate from every member's loss (in member order), the noise of ``seed``
        regenerated: the reduction, in a fixed order, of however many slices computed ``losses``."""
        fitness = centered_ranks(losses) if self.fitness_shaping == "centered_rank" else losses
        diffs = fitness[0::2] - fitness[1::2]
        grads = {k: np.zeros(s) for k, s in shapes.items()}
        for pair, diff in enumerate(diffs):
            for k, eps in pair_noise(shapes, seed, pair).items():
                grads[k] += eps * (diff / (self.population * self.sigma))
        return float(losses.mean()), {k: g.astype(self.loop.base.dtype) for k, g in grads.items()}


# ----------------------------------------------------------------------------------------------
# persistent tasks: the truncated estimators' inner loops


def draw_length(schedule, rng: np.random.Generator) -> int:
    """One length of a schedule: an int (itself), ``constant`` or ``log_uniform`` (learned_optimization's
    ``LogUniformLengthSchedule``: exp of a uniform draw between log(low) and log(high + 1), rounded down).

    >>> from graphflow.spec.experiment import LogUniformLength
    >>> rng = np.random.default_rng(0)
    >>> sorted({draw_length(LogUniformLength(low=2, high=5), rng) for _ in range(200)})
    [2, 3, 4, 5]
    """
    if isinstance(schedule, int):
        return schedule
    low, high = schedule.bounds()
    if low == high:
        return low
    return int(min(high, max(low, math.floor(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))))


def _stack(parts: list):
    """Concatenate per-task data (arrays, or dicts of arrays by block) along the task axis."""
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def _slice_steps(data, a: int, b: int):
    return {k: v[:, a:b] for k, v in data.items()} if isinstance(data, dict) else data[:, a:b]


class PersistentTasks:
    """The tasks a truncated estimator walks through their unrolls, ``truncation`` steps at a time.

    Per task slot: the seed it was drawn from (its data and initial network come back from
    ``draws.task(seed, length)``, so neither is stored), its unroll length and the next inner step
    it runs. A task whose unroll has ended is replaced by a new one at the next outer step. With
    ``stagger``, the first tasks start at spread positions (multiples of a constant truncation).
    """

    def __init__(self, count: int, unroll, truncation, stagger: bool = True):
        self.count, self.unroll, self.truncation, self.stagger = count, unroll, truncation, stagger
        self.seeds: np.ndarray | None = None  # None: no tasks yet
        self.lengths = np.zeros(count, np.int64)
        self.positions = np.zeros(count, np.int64)
        self._data: dict[int, tuple] = {}

    @property
    def started(self) -> bool:
        return self.seeds is not None

    def replace(self, slots, draws: TaskDraws) -> None:
        """New tasks (seeds from the run's generator, in slot order) in ``slots``, at step 0."""
        if self.seeds is None:
            self.seeds = np.zeros(self.count, np.int64)
        for t in slots:
            seed = draws.task_seed()
            self.seeds[t] = seed
            self.lengths[t] = draw_length(self.unroll, np.random.default_rng([seed, 7]))
            self.positions[t] = 0
            self._data.pop(int(t), None)

    def offsets(self) -> np.ndarray:
        """Where the first tasks start: spread over their unrolls, on multiples of a constant truncation."""
        if not self.stagger:
            return np.zeros(self.count, np.int64)
        grain = self.truncation if isinstance(self.truncation, int) else (
            self.truncation.length if self.truncation.kind == "constant" else 1)
        return np.array([(t * int(n)) // self.count // grain * grain for t, n in enumerate(self.lengths)], np.int64)

    def ended(self) -> list[int]:
        return [t for t in range(self.count) if self.positions[t] >= self.lengths[t]]

    def truncation_length(self, seed: int) -> int:
        return draw_length(self.truncation, np.random.default_rng([seed, 1]))

    def groups(self, k: int, slots=None) -> list[tuple[np.ndarray, int]]:
        """(slots, window length) of this outer step: each task runs min(k, what is left of its
        unroll) steps; tasks with the same length run together."""
        slots = range(self.count) if slots is None else slots
        by_length: dict[int, list[int]] = {}
        for t in slots:
            by_length.setdefault(int(min(k, self.lengths[t] - self.positions[t])), []).append(t)
        return [(np.array(ts), n) for n, ts in sorted(by_length.items())]

    def data(self, t: int, draws: TaskDraws) -> tuple[MetaBatch, dict]:
        if t not in self._data:
            self._data[t] = draws.task(int(self.seeds[t]), int(self.lengths[t]))
        return self._data[t]

    def initial(self, slots, draws: TaskDraws) -> dict:
        inits = [self.data(int(t), draws)[1] for t in slots]
        return {k: np.concatenate([i[k] for i in inits]) for k in inits[0]}

    def window(self, slots: np.ndarray, steps: int, draws: TaskDraws, be):
        """The next ``steps`` inner steps of the tasks in ``slots``: (their batch, the hint scale,
        the held-out scale per task or None); see the module docstring for the weights."""
        parts = [self.data(int(t), draws)[0] for t in slots]
        starts = [int(self.positions[t]) for t in slots]
        batch = MetaBatch(_stack([_slice_steps(p.x, a, a + steps) for p, a in zip(parts, starts)]),
                          _stack([_slice_steps(p.y, a, a + steps) for p, a in zip(parts, starts)]),
                          _stack([p.xe for p in parts]), _stack([p.ye for p in parts]))
        ends = np.array([a + steps == self.lengths[t] for a, t in zip(starts, slots)])
        heldout = None
        if ends.any():
            heldout = be.asarray(ends * self.lengths[slots] / steps)
        return batch, 1.0 / steps, heldout

    def advance(self, slots, steps: int) -> None:
        self.positions[slots] += steps

    # checkpoints
    def state_arrays(self) -> dict[str, np.ndarray]:
        if not self.started:
            return {}
        return {"tasks/seeds": self.seeds.copy(), "tasks/lengths": self.lengths.copy(),
                "tasks/positions": self.positions.copy()}

    def load_state(self, arrays: dict, source: str, check: bool) -> None:
        self._data = {}
        if "tasks/seeds" not in arrays:
            self.seeds = None
            return
        for name in ("seeds", "lengths", "positions"):
            a = arrays.get(f"tasks/{name}")
            if check and (a is None or a.shape != (self.count,) or a.dtype.kind not in "iu"):
                raise GraphflowError(f"{source}: estimator/tasks/{name} must hold {self.count} integers (one per "
                                     f"task of the outer batch)")
        self.seeds, self.lengths, self.positions = (np.array(arrays[f"tasks/{n}"], np.int64)
                                                    for n in ("seeds", "lengths", "positions"))
        if check:
            low, high = (self.unroll, self.unroll) if isinstance(self.unroll, int) else self.unroll.bounds()
            if np.any(self.lengths < low) or np.any(self.lengths > high):
                raise GraphflowError(f"{source}: estimator/tasks/lengths {self.lengths.tolist()} do not fit the "
                                     f"estimator's unroll ({low} to {high} inner steps)")
            if np.any(self.positions < 0) or np.any(self.positions > self.lengths):
                raise GraphflowError(f"{source}: estimator/tasks/positions {self.positions.tolist()} lie outside "
                                     f"their unrolls {self.lengths.tolist()}")


# ----------------------------------------------------------------------------------------------
# network states, row by row


def _plain(state: NetState) -> NetState:
    def value(a):
        return a.value if isinstance(a, Var) else a

    return NetState({k: value(v) for k, v in state.params.items()}, {k: value(v) for k, v in state.carries.items()},
                    state.step)


def _rows(state: NetState, slots) -> NetState:
    return NetState({k: v[slots] for k, v in state.params.items()}, {k: v[slots] for k, v in state.carries.items()},
                    state.step)


def _stack_states(states: list[NetState], xp) -> NetState:
    """The tasks of ``states`` one after another (member-major), a carry one of them lacks zero."""
    carries = {}
    for key in {k for s in states for k in s.carries}:
        like = next(s.carries[key] for s in states if key in s.carries)
        carries[key] = xp.concatenate([s.carries[key] if key in s.carries else xp.zeros(like.shape, like.dtype)
                                       for s in states])
    return NetState({k: xp.concatenate([s.params[k] for s in states]) for k in states[0].params}, carries,
                    states[0].step)


def _put_rows(state: NetState, slots, part: NetState, xp) -> None:
    """Write ``part`` (the tasks of ``slots``) into ``state``; a carry ``part`` lacks is zero (a
    fresh network), one only ``part`` has is zero for the other tasks."""
    tasks = len(next(iter(state.params.values())))
    for k, v in part.params.items():
        state.params[k][slots] = v
    for k, v in part.carries.items():
        if k not in state.carries:
            state.carries[k] = xp.zeros((tasks,) + tuple(v.shape[1:]), v.dtype)
        state.carries[k][slots] = v
    for k, v in state.carries.items():
        if k not in part.carries:
            v[slots] = 0


def _state_arrays(prefix: str, states: list[NetState], be) -> dict[str, np.ndarray]:
    out = {f"{prefix}params/{k}": np.stack([be.to_numpy(s.params[k]) for s in states]) for k in states[0].params}
    out.update({f"{prefix}carries/{k}": np.stack([be.to_numpy(s.carries[k]) for s in states])
                for k in states[0].carries})
    return out


def _load_states(arrays: dict, prefix: str, members: int, tasks: int, shapes: dict, be, source: str,
                 check: bool) -> list[NetState]:
    """The ``members`` network states of :func:`_state_arrays` (copies: they are written in place)."""
    tables = {}
    for table in ("params", "carries"):
        start = f"{prefix}{table}/"
        tables[table] = {k[len(start):]: a for k, a in arrays.items() if k.startswith(start)}
        for k, a in tables[table].items() if check else ():
            want = (members, tasks) + (shapes.get(k, ()) if table == "params" else tuple(a.shape[2:]))
            if tuple(a.shape) != want or a.dtype.kind != "f":
                raise GraphflowError(f"{source}: estimator/{start}{k} has shape {list(a.shape)}; {members} "
                                     f"member(s) x {tasks} tasks of this network need {list(want)}")
    if check and set(tables["params"]) != set(shapes):
        raise GraphflowError(f"{source}: the estimator's inner networks hold {sorted(tables['params'])}; the graph "
                             f"has {sorted(shapes)}")
    return [NetState(*({k: be.xp.array(be.asarray(a[m]), copy=True) for k, a in tables[t].items()}
                       for t in ("params", "carries"))) for m in range(members)]


def _check_kind(kind: str, arrays: dict, meta: dict, source: str, check: bool) -> None:
    if check and meta.get("kind", kind) != kind:
        raise GraphflowError(f"{source}: the estimator state is a {meta.get('kind')!r} estimator's; the experiment "
                             f"uses {kind!r}")


class _Truncated:
    """What truncated backprop, PES and NRES share: the persistent tasks, ``members`` inner networks per
    task, restarts, the staggered start and their checkpoint data."""

    kind = ""
    members = 1

    def __init__(self, loop, tasks: int, unroll, truncation, stagger: bool = True):
        self.loop = loop
        self.tasks = PersistentTasks(tasks, unroll, truncation, stagger)
        self.states: list[NetState] = []

    def _begin(self, theta: dict, draws: TaskDraws) -> list[int]:
        """Start the tasks (staggered) or replace those whose unroll ended; the slots restarted."""
        tasks = self.tasks
        if not tasks.started:
            tasks.replace(range(tasks.count), draws)
            state = self.loop.fresh(tasks.initial(range(tasks.count), draws))
            offsets = tasks.offsets()
            for offset in sorted(set(offsets.tolist()) - {0}):  # reach the spread positions, no estimate
                slots = np.nonzero(offsets == offset)[0]
                batch, hint_scale, _ = tasks.window(slots, offset, draws, self.loop.base)
                end, _ = self.loop.run(theta, _rows(state, slots), batch, hint_scale, None)
                _put_rows(state, slots, end, self.loop.base.xp)
                tasks.advance(slots, offset)
            self.states = [state] + [_copy(state, self.loop.base.xp) for _ in range(self.members - 1)]
            return list(range(tasks.count))
        ended = tasks.ended()
        if ended:
            tasks.replace(ended, draws)
            fresh = self.loop.fresh(tasks.initial(ended, draws))
            for state in self.states:
                _put_rows(state, np.array(ended), fresh, self.loop.base.xp)
        return ended

    def abandon_tasks(self) -> None:
        """Drop every task: the next estimate starts new ones (after a rollback, the inner states may be what diverged)."""
        self.tasks.seeds = None
        self.states = []

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = self.tasks.state_arrays()
        if self.tasks.started:
            arrays.update(_state_arrays("state/", self.states, self.loop.base))
        return arrays

    def state_meta(self) -> dict:
        return {"kind": self.kind, "started": self.tasks.started}

    def load_state(self, arrays: dict, meta: dict, source: str = "checkpoint", check: bool = True) -> None:
        _check_kind(self.kind, arrays, meta, source, check)
        self.tasks.load_state(arrays, source, check)
        self.states = []
        if self.tasks.started:
            self.states = _load_states(arrays, "state/", self.members, self.tasks.count,
                                       self.loop.parameter_shapes(), self.loop.base, source, check)


def _copy(state: NetState, xp) -> NetState:
    return NetState({k: xp.array(v, copy=True) for k, v in state.params.items()},
                    {k: xp.array(v, copy=True) for k, v in state.carries.items()}, state.step)


class TruncatedEstimator(_Truncated):
    """Truncated backprop: each outer step runs the next K steps of every task's persistent inner
    loop under a tape and differentiates their share of the meta-loss, the network state at the
    truncation's start held constant. Memory of K steps whatever the unroll; biased towards
    protocols that look good over K steps (it cannot see how the protocol shaped the state it
    starts from)."""

    kind = "truncated"

    def estimate(self, protocol, draws: TaskDraws):
        loop, tasks = self.loop, self.tasks
        theta = loop.parameters(protocol)
        self._begin(theta, draws)
        k = tasks.truncation_length(draws.noise_seed())
        state = self.states[0]
        total, grads = 0.0, {key: None for key in theta}
        for slots, steps in tasks.groups(k):
            batch, hint_scale, heldout = tasks.window(slots, steps, draws, loop.base)
            with Tape(loop.base) as tape:
                leaves = {key: tape.var(v) for key, v in theta.items()}
                end, terms = loop.run(leaves, _rows(state, slots), batch, hint_scale, heldout, tape=tape)
                part = terms.sum() * (1.0 / tasks.count)
            gs = grad(tape, part, list(leaves.values())) if isinstance(part, Var) else [None] * len(leaves)
            for key, g in zip(theta, gs):
                if g is not None:
                    grads[key] = g if grads[key] is None else grads[key] + g
            total += float(loop.base.to_numpy(_plain_value(part)))
            _put_rows(state, slots, _plain(end), loop.base.xp)
            tasks.advance(slots, steps)
        return total, {key: loop.base.to_numpy(g) if g is not None else np.zeros(_shapes(theta)[key], loop.base.dtype)
                       for key, g in grads.items()}


def _plain_value(a):
    return a.value if isinstance(a, Var) else a


class _PersistentPopulation(_Truncated):
    """What PES and NRES share: ``population`` members in antithetic pairs, each with its own
    inner network per task, run in chunks of :meth:`members_at_once` (as :class:`EsEstimator`;
    ``member_chunk=1``: one after another), and the antithetic sum over pairs and tasks."""

    def __init__(self, loop, tasks: int, unroll, truncation, population: int, sigma: float, stagger: bool = True,
                 member_chunk: int | None = None, memory_budget: int | None = None):
        if population < 2 or population % 2:
            raise ValueError(f"population {population}: antithetic pairs need an even population of at least 2")
        if member_chunk is not None and member_chunk < 1:
            raise ValueError(f"member_chunk {member_chunk}: at least one member at a time")
        super().__init__(loop, tasks, unroll, truncation, stagger)
        self.members, self.population, self.sigma = population, population, sigma
        self.member_chunk, self.memory_budget = member_chunk, memory_budget

    members_at_once = EsEstimator.members_at_once

    def _run_members(self, theta: dict, seed: int, windows, losses: np.ndarray) -> None:
        """Every member's next ``windows`` (slot groups with their data) from its persistent
        networks, with the pair noise of ``seed``; their terms into ``losses`` [population, tasks]."""
        loop, xp = self.loop, self.loop.base.xp
        shapes = _shapes(theta)
        chunk = self.members_at_once(max((w[0] for _, w in windows), key=lambda b: b.tasks), self.population)
        for lo in range(0, self.population, chunk):
            part = list(range(lo, min(lo + chunk, self.population)))
            if chunk == 1:
                (member,) = part
                pair, sign = divmod(member, 2)
                params = _perturbed(theta, pair_noise(shapes, seed, pair), -self.sigma if sign else self.sigma,
                                    loop.base)
                state = self.states[member]
                for slots, (batch, hint_scale, heldout) in windows:
                    end, terms = loop.run(params, _rows(state, slots), batch, hint_scale, heldout)
                    _put_rows(state, slots, end, xp)
                    losses[member, slots] = loop.base.to_numpy(terms)
                continue
            params = _member_params(theta, shapes, seed, part, self.sigma, loop.base)
            for slots, (batch, hint_scale, heldout) in windows:
                together = _stack_states([_rows(self.states[m], slots) for m in part], xp)
                end, terms = loop.run_population(params, together, batch, hint_scale, heldout)
                per_member = loop.base.to_numpy(terms)
                for i, member in enumerate(part):
                    _put_rows(self.states[member], slots, _rows(end, slice(i * len(slots), (i + 1) * len(slots))), xp)
                    losses[member, slots] = per_member[i]

    def _reduce(self, losses: np.ndarray, windows, directions: dict):
        """Meta-loss and estimate from every member's losses on every task ([population, tasks]) and
        each task's and pair's direction (protocol key -> [tasks, pairs, *shape]: PES's Z, NRES's
        noise), the tasks advanced past the step's windows."""
        tasks = self.tasks
        for slots, (batch, _, _) in windows:
            tasks.advance(slots, batch.steps)
        diffs = losses[0::2] - losses[1::2]  # [pairs, tasks]
        scale = 1.0 / (self.population * self.sigma * tasks.count)
        grads = {k: np.einsum("tp...,pt->...", d, diffs) * scale for k, d in directions.items()}
        return float(losses.mean()), {k: g.astype(self.loop.base.dtype) for k, g in grads.items()}


class PesEstimator(_PersistentPopulation):
    """Persistent ES over truncations (Vicol et al. 2021): ``population`` members, each with its
    own inner network per task, run the next K steps with theta +- sigma * eps_j (fresh pair noise
    each outer step); every member keeps Z, the sum of the noise it ran with since its task
    (re)started, and

        g = mean over tasks of sum_j Z_j (L_j+ - L_j-) / (population * sigma),

    which summed over a task's truncations is unbiased for the gradient of its whole unroll's
    (smoothed) meta-loss, unlike truncated backprop. Both members of a pair start a task from the
    same network; Z starts at zero when its task restarts. Forward passes only; the members run
    as one more batch axis of the engine, their persistent states stacked member-major, in
    chunks as :class:`EsEstimator` (``member_chunk=1``: one after another).
    """

    kind = "pes"

    def __init__(self, loop, tasks: int, unroll, truncation, population: int, sigma: float, stagger: bool = True,
                 member_chunk: int | None = None, memory_budget: int | None = None):
        super().__init__(loop, tasks, unroll, truncation, population, sigma, stagger, member_chunk, memory_budget)
        self.accumulated: dict[str, np.ndarray] = {}
        """Protocol key -> Z of every task and pair, [tasks, pairs, *shape] (float64)."""

    def estimate(self, protocol, draws: TaskDraws):
        theta = self.loop.parameters(protocol)
        seed, windows = self.prepare(_shapes(theta), self._begin(theta, draws), draws)
        losses = np.empty((self.population, self.tasks.count))
        self._run_members(theta, seed, windows, losses)
        return self.finish(losses, windows)

    def prepare(self, shapes: dict, restarted, draws: TaskDraws):
        """The step's noise seed and windows (slot groups with their data), after zeroing the
        accumulated noise Z of the ``restarted`` tasks and adding this step's pair noise to it:
        what comes before the members run, wherever they run."""
        tasks, pairs = self.tasks, self.population // 2
        if not self.accumulated or set(self.accumulated) != set(shapes):
            self.accumulated = {k: np.zeros((tasks.count, pairs) + s) for k, s in shapes.items()}
        for z in self.accumulated.values():
            z[restarted] = 0.0
        seed = draws.noise_seed()
        windows = [(slots, tasks.window(slots, steps, draws, self.loop.base)) for slots, steps in
                   tasks.groups(tasks.truncation_length(seed))]
        for pair in range(pairs):
            for key, eps in pair_noise(shapes, seed, pair).items():
                self.accumulated[key][:, pair] += eps
        return seed, windows

    def finish(self, losses: np.ndarray, windows):
        """Meta-loss and estimate from every member's losses on every task ([population, tasks]),
        the tasks advanced past the step's windows."""
        return self._reduce(losses, windows, self.accumulated)

    def abandon_tasks(self) -> None:
        super().abandon_tasks()
        self.accumulated = {}

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = super().state_arrays()
        if self.tasks.started:
            arrays.update({f"accumulated/{k}": z.copy() for k, z in self.accumulated.items()})
        return arrays

    def load_state(self, arrays: dict, meta: dict, source: str = "checkpoint", check: bool = True) -> None:
        super().load_state(arrays, meta, source, check)
        self.accumulated = {k[len("accumulated/"):]: np.array(a, np.float64) for k, a in arrays.items()
                            if k.startswith("accumulated/")}
        if check and self.tasks.started:
            pairs = self.population // 2
            trained = set(self.loop.trainable)
            if set(self.accumulated) != trained:
                raise GraphflowError(f"{source}: the PES state accumulates perturbations of "
                                     f"{len(self.accumulated)} protocol entries; the experiment trains {len(trained)}")
            for k, z in self.accumulated.items():
                if z.shape[:2] != (self.tasks.count, pairs):
                    raise GraphflowError(f"{source}: estimator/accumulated/{k} has shape {list(z.shape)}; "
                                         f"{self.tasks.count} tasks x {pairs} pairs x the entry's shape expected")


class NresEstimator(_PersistentPopulation):
    """Noise-reuse ES over truncations (Li et al., NeurIPS 2023): ``population`` members, each with
    its own inner network per task, run the next K steps; but where PES draws fresh pair noise
    every outer step and accumulates it, each task draws its pair noise eps_{t,j} once, when its
    unroll (re)starts, and runs every truncation of that unroll with theta +- sigma * eps_{t,j}:

        g = mean over tasks of sum_j eps_{t,j} (L_{t,j}+ - L_{t,j}-) / (population * sigma).

    Summed over a task's truncations this is antithetic ES on its whole unroll: unbiased for the
    gradient of the smoothed meta-loss, as PES, with no accumulated state and a lower variance
    (docs/estimators.md). Tasks run with different perturbations, so the members run task by
    task (all members of a task's window at once, in chunks as :class:`EsEstimator`). A task's
    noise seed comes from the outer step's seed and its slot; the seeds are checkpointed, the
    noise regenerated from them.
    """

    kind = "nres"

    def __init__(self, loop, tasks: int, unroll, truncation, population: int, sigma: float, stagger: bool = True,
                 member_chunk: int | None = None, memory_budget: int | None = None):
        super().__init__(loop, tasks, unroll, truncation, population, sigma, stagger, member_chunk, memory_budget)
        self.noise_seeds: np.ndarray | None = None
        """The seed of every task's pair noise, [tasks] (None: no tasks yet)."""

    def estimate(self, protocol, draws: TaskDraws):
        loop, tasks = self.loop, self.tasks
        theta = loop.parameters(protocol)
        restarted = self._begin(theta, draws)
        seed = draws.noise_seed()
        if self.noise_seeds is None:
            self.noise_seeds = np.zeros(tasks.count, np.int64)
        for t in restarted:
            self.noise_seeds[t] = task_noise_seed(seed, t)
        windows = []
        losses = np.empty((self.population, tasks.count))
        for slots, steps in tasks.groups(tasks.truncation_length(seed)):
            for t in slots:
                window = (np.array([t]), tasks.window(np.array([t]), steps, draws, loop.base))
                self._run_members(theta, int(self.noise_seeds[t]), [window], losses)
                windows.append(window)
        return self._reduce(losses, windows, self.task_noise(_shapes(theta)))

    def task_noise(self, shapes: dict) -> dict[str, np.ndarray]:
        """Every task's pair noise, regenerated from its seed: protocol key -> [tasks, pairs, *shape]."""
        per_task = [[pair_noise(shapes, int(seed), pair) for pair in range(self.population // 2)]
                    for seed in self.noise_seeds]
        return {k: np.stack([np.stack([eps[k] for eps in pairs]) for pairs in per_task]) for k in shapes}

    def abandon_tasks(self) -> None:
        super().abandon_tasks()
        self.noise_seeds = None

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = super().state_arrays()
        if self.tasks.started:
            arrays["noise_seeds"] = self.noise_seeds.copy()
        return arrays

    def load_state(self, arrays: dict, meta: dict, source: str = "checkpoint", check: bool = True) -> None:
        super().load_state(arrays, meta, source, check)
        self.noise_seeds = None
        if not self.tasks.started:
            return
        seeds = arrays.get("noise_seeds")
        if check and (seeds is None or seeds.shape != (self.tasks.count,) or seeds.dtype.kind not in "iu"):
            found = "missing" if seeds is None else f"shape {list(seeds.shape)}, dtype {seeds.dtype}"
            raise GraphflowError(f"{source}: estimator/noise_seeds must hold {self.tasks.count} integers (one noise "
                                 f"seed per task of the outer batch); found {found}")
        self.noise_seeds = np.array(seeds, np.int64)


def task_noise_seed(seed: int, slot: int) -> int:
    """The noise seed of a task that (re)starts in ``slot`` at the outer step of ``seed``: distinct
    per slot, so tasks restarting together run different perturbations.

    >>> task_noise_seed(7, 0) == task_noise_seed(7, 0) != task_noise_seed(7, 1)
    True
    """
    return int(np.random.default_rng([seed, 5, slot]).integers(2**62))


# ----------------------------------------------------------------------------------------------
# from the experiment spec


def make_estimator(spec, graph, protocol, trainable: list[str], meta, backend="numpy", init_trainable: bool = False,
                   shards: int = 1, threads_per_shard: int | None = None, dtype=np.float32):
    """The estimator an experiment's ``meta.estimator`` spec names, for ``protocol``'s ``trainable`` entries.

    >>> import graphflow as gf
    >>> from graphflow.learners import Protocol
    >>> from graphflow.spec import MetaTrainingSpec
    >>> g = gf.build(gf.stack(1, gf.Dense(3), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    >>> protocol = Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4)))
    >>> meta = MetaTrainingSpec(estimator={"kind": "pes", "unroll": 20, "truncation": 5, "population": 4})
    >>> make_estimator(meta.estimator, g, protocol, protocol.trainable(), meta).kind
    'pes'
    """
    weights = (meta.hint_weight, meta.heldout_weight)
    if spec.kind == "bptt":
        return BpttEstimator(graph, protocol, trainable, meta.outer_batch, meta.inner_steps, weights, backend,
                             spec.recompute_every, init_trainable, shards, threads_per_shard)
    loop = EngineLoop(graph, protocol, trainable, backend, dtype, weights)
    if spec.kind == "es":
        return EsEstimator(loop, meta.outer_batch, meta.inner_steps, spec.population, spec.sigma, spec.fitness_shaping)
    if spec.kind == "truncated":
        return TruncatedEstimator(loop, meta.outer_batch, spec.unroll, spec.truncation, spec.stagger)
    persistent = {"pes": PesEstimator, "nres": NresEstimator}[spec.kind]
    return persistent(loop, meta.outer_batch, spec.unroll, spec.truncation, spec.population, spec.sigma, spec.stagger)
