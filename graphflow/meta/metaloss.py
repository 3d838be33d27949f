"""The reference regime's meta-loss and its gradient, through the batched engine.

For each task of an outer batch (one more batch axis T): for each inner step i, update on
(x_i, y_i), then the hint loss L_i = mean loss on (x_i, y_i) with the updated network. Meta-loss
= hint_weight * mean_i L_i + heldout_weight * (mean loss on the held-out batch after the last
step), averaged over tasks. The gradient comes from running the same engine on a traced backend
(:mod:`graphflow.autodiff`) and playing its tape backwards.

Long unrolls can be differentiated with recomputation (gradient checkpointing,
``recompute_every=k``): the inner loop first runs without a tape, keeping only the network state
(parameters and learner carries) at the start of every k-step segment; then the segments are
replayed last to first, each under its own tape, seeded with the cotangent of the state it hands
on. Memory then holds one segment's tape instead of the whole unroll's, for one more forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphflow.autodiff import Tape, Var, grad, traced_backend
from graphflow.backend import get_backend
from graphflow.engine import Engine, NetState
from graphflow.learners.protocol import ParamKey


def _first(data):
    return next(iter(data.values())) if isinstance(data, dict) else data


def _index(data, idx):
    return {k: v[idx] for k, v in data.items()} if isinstance(data, dict) else data[idx]


@dataclass
class MetaBatch:
    """Inner-loop data of T tasks: x, y [T, steps, B, n]; held-out xe, ye [T, H, n].

    Graphs with several input (or target) blocks take dicts of such arrays by block name.
    """

    x: np.ndarray | dict
    y: np.ndarray | dict
    xe: np.ndarray | dict
    ye: np.ndarray | dict

    def __post_init__(self):
        from graphflow.errors import DataError

        for name, ndim, layout in (("x", 4, "[T, steps, B, n]"), ("y", 4, "[T, steps, B, n]"),
                                   ("xe", 3, "[T, H, n]"), ("ye", 3, "[T, H, n]")):
            data = getattr(self, name)
            for block, a in (data.items() if isinstance(data, dict) else [(None, data)]):
                shape = tuple(np.shape(a))
                where = f"MetaBatch.{name}" + (f"[{block!r}]" if block is not None else "")
                if len(shape) != ndim:
                    raise DataError(f"{where}: shape {list(shape)}; expected {layout}"
                                    + (" (inner-loop data needs its steps axis)" if ndim == 4 else ""))
                if 0 in shape:
                    raise DataError(f"{where}: shape {list(shape)} is empty")
                if shape[0] != self.tasks:
                    raise DataError(f"{where}: {shape[0]} tasks, but x has {self.tasks}")

    @property
    def steps(self) -> int:
        return _first(self.x).shape[1]

    @property
    def tasks(self) -> int:
        return _first(self.x).shape[0]

    def at_step(self, i: int) -> tuple:
        """(x_i, y_i): the data of inner step ``i`` for every task."""
        return _index(self.x, (slice(None), i)), _index(self.y, (slice(None), i))

    def select(self, tasks) -> "MetaBatch":
        """The batch of the given tasks (an index array or a slice)."""
        return MetaBatch(*(_index(d, tasks) for d in (self.x, self.y, self.xe, self.ye)))


def mean_loss(losses: dict):
    """Mean over examples and output units of every loss block, per task: [T]."""
    total = None
    for value in losses.values():
        per_task = value.mean(axis=(1, 2))
        total = per_task if total is None else total + per_task
    return total


def unroll(engine: Engine, state: NetState, batch: MetaBatch, start: int, stop: int, hint_weight: float = 0.7,
           heldout_weight: float = 0.3):
    """Inner steps ``start`` .. ``stop - 1``: (the state after them, their per-task meta-loss terms [T]).

    The terms are the steps' hint losses times ``hint_weight / steps``, plus the held-out term
    when ``stop`` is the last step; the meta-loss is the task mean of the terms of all segments.
    """
    return weighted_unroll(engine, state, batch, start, stop, 1.0 / batch.steps, hint_weight,
                           heldout_weight if stop == batch.steps else None)


def weighted_unroll(engine: Engine, state: NetState, batch: MetaBatch, start: int, stop: int, hint_scale,
                    hint_weight: float, heldout_weight):
    """Inner steps ``start`` .. ``stop - 1`` with the weights given: (the state after them, per-task terms [T]).

    The terms are the sum of the steps' hint losses times ``hint_scale * hint_weight``, plus the
    held-out loss after the last step times ``heldout_weight`` (None: no held-out term). Either
    weight may be a per-task array [T] on the engine's backend: the tasks of a truncated estimator
    stand at different points of their unrolls (:mod:`graphflow.meta.estimators`).
    """
    hints = None
    for i in range(start, stop):
        x, y = batch.at_step(i)
        state, _ = engine.step(state, x, y)
        hint = mean_loss(engine.forward(state, x, y).losses)
        hints = hint if hints is None else hints + hint
    terms = (hints * hint_scale) * hint_weight
    if heldout_weight is not None:
        terms = terms + mean_loss(engine.forward(state, batch.xe, batch.ye).losses) * heldout_weight
    return state, terms


def meta_loss(engine: Engine, state: NetState, batch: MetaBatch, hint_weight: float = 0.7,
              heldout_weight: float = 0.3, return_parts: bool = False):
    """The meta-loss of one outer batch (a scalar; traced when the engine's backend is)."""
    state, per_task = unroll(engine, state, batch, 0, batch.steps, hint_weight, heldout_weight)
    total = per_task.mean()
    if return_parts:
        return total, per_task, state
    return total


class MetaGradient:
    """Computes a protocol's meta-loss and its gradient for outer batches.

    ``trainable`` lists flat protocol names (``learner::<group>::<name>``,
    ``norm::<group>::out_scale``); in MAML mode the initial network's parameters are
    differentiated too (keys ``init::<block>/<w|b>``). ``recompute_every=k`` differentiates
    the unroll in segments of k inner steps, recomputing each from the state at its start
    (see the module docstring); the gradient is the same up to rounding. ``threads``,
    ``block_rows`` and ``min_block_rows``: how the engine splits large learner calls (:class:`~graphflow.engine.Engine`);
    the GRU cell's forward and backward run block by block on those threads. ``remat_cells``: the
    learner cells keep no residuals and recompute them in the backward pass (with
    ``recompute_every``, what makes a 784-1000-1000-10 meta-step fit in memory).
    """

    def __init__(self, graph, protocol, backend="numpy", dtype=np.float32, trainable: list[str] | None = None,
                 recompute_every: int | None = None, threads: int | None = None, block_rows: int = 4096,
                 min_block_rows: int = 1024, remat_cells: bool = False):
        if recompute_every is not None and recompute_every < 1:
            raise ValueError(f"recompute_every must be a positive number of inner steps, not {recompute_every}")
        self.base = get_backend(backend, dtype)
        self.engine = Engine(graph, protocol, traced_backend(self.base), threads=threads, block_rows=block_rows,
                             min_block_rows=min_block_rows, remat_cells=remat_cells)
        self.trainable = trainable if trainable is not None else protocol.trainable()
        self.recompute_every = recompute_every

    def __call__(self, protocol, batch: MetaBatch, init: dict, hint_weight=0.7, heldout_weight=0.3,
                 init_trainable: bool = False):
        """(meta-loss float, {name: gradient numpy array}) for ``protocol`` on ``batch``.

        ``init`` maps ``"<block>/w"``/``"<block>/b"`` to the initial network, [T, ...] per task
        or unbatched and shared by all tasks (as in MAML, where ``init_trainable`` differentiates it).
        """
        with self.base.compute():  # BLAS on one thread; large stages run on the engine's threads
            return self._call(protocol, batch, init, hint_weight, heldout_weight, init_trainable)

    def _call(self, protocol, batch: MetaBatch, init: dict, hint_weight, heldout_weight, init_trainable):
        eng = self.engine
        eng.set_protocol(protocol)
        plain = (eng.learner_params, eng.norm_params)
        weights = (hint_weight, heldout_weight)
        every = self.recompute_every or batch.steps
        bounds = list(range(0, batch.steps, every)) + [batch.steps]
        segments = list(zip(bounds[:-1], bounds[1:]))
        try:
            # Forward without a tape, keeping only the state at the start of every later segment.
            starts: list = [None] * len(segments)
            if len(segments) > 1:
                self._bind(plain, None)
                state, _ = self._initial_state(init, batch.tasks, None, False)
                for s, (a, b) in enumerate(segments[:-1]):
                    for i in range(a, b):
                        state, _ = eng.step(state, *batch.at_step(i))
                    starts[s + 1] = state
                del state
            # Backward, last segment first.
            total, grads, cotangent = 0.0, {}, {}
            for s in reversed(range(len(segments))):
                part, seg_grads, cotangent = self._segment(plain, batch, init, init_trainable, segments[s],
                                                           starts[s], cotangent, weights)
                starts[s] = None
                total += part
                for key, g in seg_grads.items():
                    grads[key] = g if key not in grads else grads[key] + g
        finally:
            eng.learner_params, eng.norm_params = plain
        order = {key: k for k, key in enumerate(self.trainable)}
        keys = sorted(grads, key=lambda key: order.get(key, len(order)))
        return total, {k: self.base.to_numpy(grads[k]) for k in keys}

    # ------------------------------------------------------------------ pieces
    def _segment(self, plain, batch, init, init_trainable, bounds, start, cotangent, weights):
        """Replay one segment under a tape: (its share of the meta-loss, its gradients of the
        protocol (and init), the cotangent of the state it started from)."""
        eng = self.engine
        with Tape(self.base) as tape:
            leaves = self._bind(plain, tape)
            if start is None:  # the first segment starts from the initial network
                state, init_leaves = self._initial_state(init, batch.tasks, tape, init_trainable)
                leaves.update(init_leaves)
                state_leaves = {}
            else:
                state, state_leaves = _state_leaves(tape, start)
            state, terms = unroll(eng, state, batch, *bounds, *weights)
            part = terms.mean()
        outputs, seeds = [part], [None]
        for key, cot in cotangent.items():
            value = getattr(state, key[0]).get(key[1])
            if isinstance(value, Var):  # a parameter the segment never touched hands on nothing new
                outputs.append(value)
                seeds.append(cot)
        wrt = list(leaves.values()) + list(state_leaves.values())
        gs = grad(tape, outputs, wrt, seeds)
        n = len(leaves)
        return (float(self.base.to_numpy(part.value)), dict(zip(leaves, gs[:n])),
                dict(zip(state_leaves, gs[n:])))

    def _bind(self, plain, tape) -> dict:
        """Point the engine at the protocol's arrays; under a tape, the trainable ones become fresh leaves."""
        eng = self.engine
        eng.learner_params = {g: dict(p) for g, p in plain[0].items()}
        eng.norm_params = {g: dict(p) for g, p in plain[1].items()}
        leaves = {}
        if tape is None:
            return leaves
        for text in self.trainable:
            key = ParamKey.parse(text)
            if key.table == "init":  # the initial network's leaves come with the initial state
                continue
            table = eng.learner_params if key.table == "learner" else eng.norm_params
            table[key.group][key.name] = leaves[text] = tape.var(table[key.group][key.name])
        return leaves

    def _initial_state(self, init: dict, tasks: int, tape, init_trainable: bool):
        """The initial network of every task (shared arrays broadcast over tasks) and its leaves."""
        eng = self.engine
        shapes = eng.parameter_shapes()
        if set(init) != set(shapes):
            raise ValueError(f"initial network: missing {sorted(set(shapes) - set(init))}, "
                             f"unknown {sorted(set(init) - set(shapes))}")
        params, leaves = {}, {}
        for key, value in init.items():
            arr = self.base.asarray(value)
            shared = tuple(arr.shape) == shapes[key]
            if not shared and tuple(arr.shape) != (tasks,) + shapes[key]:
                raise ValueError(f"initial network {key}: shape {list(arr.shape)}, expected {list(shapes[key])} "
                                 f"(shared) or {[tasks, *shapes[key]]} (per task)")
            if init_trainable and tape is not None:
                arr = leaves[str(ParamKey.init(key))] = tape.var(arr)
            params[key] = eng.be.xp.broadcast_to(arr, (tasks,) + shapes[key]) if shared else arr
        return NetState(params), leaves


def _state_leaves(tape, state: NetState):
    """A copy of ``state`` whose parameters and carries are leaves of ``tape``, and those leaves."""
    params = {k: tape.var(v) for k, v in state.params.items()}
    carries = {k: tape.var(v) for k, v in state.carries.items()}
    leaves = {("params", k): v for k, v in params.items()}
    leaves.update({("carries", k): v for k, v in carries.items()})
    return NetState(params, carries, state.step), leaves
