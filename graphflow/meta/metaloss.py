"""The reference regime's meta-loss and its gradient, through the batched engine.

For each task of an outer batch (one more batch axis T): for each inner step i, update on
(x_i, y_i), then the hint loss L_i = mean loss on (x_i, y_i) with the updated network. Meta-loss
= hint_weight * mean_i L_i + heldout_weight * (mean loss on the held-out batch after the last
step), averaged over tasks. The gradient comes from running the same engine on a traced backend
(:mod:`graphflow.autodiff`) and playing its tape backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphflow.autodiff import Tape, grad, traced_backend
from graphflow.backend import get_backend
from graphflow.engine import Engine, NetState


@dataclass
class MetaBatch:
    """Inner-loop data of T tasks: x, y [T, steps, B, n]; held-out xe, ye [T, H, n]."""

    x: np.ndarray
    y: np.ndarray
    xe: np.ndarray
    ye: np.ndarray

    @property
    def steps(self) -> int:
        return self.x.shape[1]


def mean_loss(losses: dict):
    """Mean over examples and output units of every loss block, per task: [T]."""
    total = None
    for value in losses.values():
        per_task = value.mean(axis=(1, 2))
        total = per_task if total is None else total + per_task
    return total


def meta_loss(engine: Engine, state: NetState, batch: MetaBatch, hint_weight: float = 0.7,
              heldout_weight: float = 0.3, return_parts: bool = False):
    """The meta-loss of one outer batch (a scalar; traced when the engine's backend is)."""
    hints = None
    for i in range(batch.steps):
        state, _ = engine.step(state, batch.x[:, i], batch.y[:, i])
        hint = mean_loss(engine.forward(state, batch.x[:, i], batch.y[:, i]).losses)
        hints = hint if hints is None else hints + hint
    heldout = mean_loss(engine.forward(state, batch.xe, batch.ye).losses)
    per_task = (hints * (1.0 / batch.steps)) * hint_weight + heldout * heldout_weight
    total = per_task.mean()
    if return_parts:
        return total, per_task, state
    return total


class MetaGradient:
    """Computes a protocol's meta-loss and its gradient for outer batches.

    ``trainable`` lists flat protocol names (``learner::<group>::<name>``,
    ``norm::<group>::out_scale``); in MAML mode the initial network's parameters are
    differentiated too (keys ``init::<block>/<w|b>``).
    """

    def __init__(self, graph, protocol, backend="numpy", dtype=np.float32, trainable: list[str] | None = None):
        self.base = get_backend(backend, dtype)
        self.engine = Engine(graph, protocol, traced_backend(self.base))
        self.trainable = trainable if trainable is not None else protocol.trainable()

    def __call__(self, protocol, batch: MetaBatch, init: dict, hint_weight=0.7, heldout_weight=0.3,
                 init_trainable: bool = False):
        """(meta-loss float, {name: gradient numpy array}) for ``protocol`` on ``batch``.

        ``init`` maps ``"<block>/w"``/``"<block>/b"`` to the initial network, [T, ...] per task
        (or unbatched and shared, for MAML).
        """
        eng = self.engine
        eng.set_protocol(protocol)
        be = self.base
        with Tape(be) as tape:
            leaves = {}
            for key in self.trainable:
                kind, group, name = key.split("::")
                table = eng.learner_params if kind == "learner" else eng.norm_params
                table[group][name] = leaves[key] = tape.var(table[group][name])
            tasks = batch.x.shape[0]
            params = {}
            for key, value in init.items():
                arr = be.asarray(value)
                if init_trainable:
                    leaf = leaves[f"init::{key}"] = tape.var(arr)
                    params[key] = eng.be.xp.broadcast_to(leaf, (tasks,) + arr.shape) if arr.ndim < 2 + (key.endswith("/w")) else leaf
                else:
                    params[key] = arr
            loss = meta_loss(eng, NetState(params), batch, hint_weight, heldout_weight)
        grads = grad(tape, loss, list(leaves.values()))
        return float(be.to_numpy(loss.value)), {k: be.to_numpy(g) for k, g in zip(leaves, grads)}
