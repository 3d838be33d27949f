"""Backprop baselines on the same node graph: SGD and Adam on the gradient of the same loss.

The gradient comes from differentiating the engine's own forward pass (:mod:`graphflow.autodiff`),
so a baseline sees exactly the network the learned protocol sees. A baseline offers the
engine's inner-loop interface (``init_network``, ``step``, ``forward``), so every evaluation
protocol runs it unchanged, on the same tasks and initial networks.
"""

from __future__ import annotations

import numpy as np

from graphflow.autodiff import Tape, grad, traced_backend
from graphflow.engine import Engine, NetState, StepResult


class BackpropBaseline:
    """``optimizer`` "sgd" or "adam" with learning rate ``lr`` (Adam: b1 0.9, b2 0.999, eps 1e-7).

    >>> import graphflow as gf
    >>> from graphflow.learners import Protocol
    >>> g = gf.build(gf.stack(1, gf.Dense(8), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    >>> sgd = BackpropBaseline(Engine(g, Protocol.init(g)), "sgd", lr=0.5)
    >>> state = sgd.init_network(np.random.default_rng(0), tasks=1, init_std=0.5)
    >>> x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 16, 1)
    >>> losses = []
    >>> for _ in range(20):
    ...     state, res = sgd.step(state, x, 0.5 * x)
    ...     losses.append(float(res.loss.mean()))
    >>> losses[-1] < 0.2 * losses[0]
    True
    """

    def __init__(self, engine: Engine, optimizer: str = "adam", lr: float | None = None):
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer {optimizer!r}: use 'sgd' or 'adam'")
        self.engine = engine
        self.graph = engine.graph
        self.be = engine.be
        self.optimizer = optimizer
        self.lr = lr if lr is not None else (0.01 if optimizer == "adam" else 0.1)
        self.traced = Engine(engine.graph, engine.protocol, traced_backend(engine.be))
        self._moments: dict = {}

    def init_network(self, rng, tasks: int = 1, init_std: float | None = None) -> NetState:
        self._moments = {}
        return self.engine.init_network(rng, tasks, init_std)

    def network_from_arrays(self, arrays) -> NetState:
        self._moments = {}
        return self.engine.network_from_arrays(arrays)

    def forward(self, state, x, y=None):
        return self.engine.forward(state, x, y)

    def predict(self, state, x):
        return self.engine.predict(state, x)

    def gradients(self, state: NetState, x, y):
        """(forward result, {param: d mean-loss / d param}) per task."""
        with Tape(self.be) as tape:
            leaves = {k: tape.var(v) for k, v in state.params.items()}
            fwd = self.traced.forward(NetState(leaves), x, y)
            total = None
            for value in fwd.losses.values():
                per_task = value.mean(axis=(1, 2))
                total = per_task if total is None else total + per_task
            # tasks are independent: the gradient of the sum is each task's own gradient
            loss = total.sum()
        grads = grad(tape, loss, list(leaves.values()))
        return fwd, dict(zip(leaves, grads))

    def step(self, state: NetState, x, y, recorder=None):
        fwd, grads = self.gradients(state, x, y)
        t = state.step + 1
        params = {}
        for key, value in state.params.items():
            g = grads[key]
            if self.optimizer == "sgd":
                params[key] = value - self.lr * g
                continue
            m, v = self._moments.get(key, (0.0, 0.0))
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            self._moments[key] = (m, v)
            mhat, vhat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
            params[key] = value - self.lr * mhat / (self.be.xp.sqrt(vhat) + 1e-7)
        outputs = {k: v.value for k, v in fwd.outputs.items()}
        losses = {k: v.value for k, v in fwd.losses.items()}
        return NetState(params, {}, t), StepResult(outputs, losses)
