"""Backprop baselines on the same node graph: SGD and Adam on the gradient of the same loss.

The gradient comes from differentiating the engine's own forward pass (:mod:`graphflow.autodiff`),
so a baseline sees exactly the network the learned protocol sees. A baseline offers the
engine's inner-loop interface (``init_network``, ``step``, ``forward``), so every evaluation
protocol runs it unchanged, on the same tasks and initial networks.
"""

from __future__ import annotations

import numpy as np  # noqa: F401 (the examples' namespace)

from graphflow.autodiff import Tape, grad, traced_backend
from graphflow.engine import Engine, NetState, StepResult
from graphflow.meta.metaloss import mean_loss
from graphflow.meta.optim import SGD, Adam


class BackpropBaseline:
    """``optimizer`` "sgd" or "adam" with learning rate ``lr`` (:class:`graphflow.meta.optim.SGD` and
    :class:`~graphflow.meta.optim.Adam`: b1 0.9, b2 0.999, eps 1e-7, no gradient normalization).

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
        self._update_rule = self._fresh_optimizer()

    def _fresh_optimizer(self) -> SGD | Adam:
        if self.optimizer == "sgd":
            return SGD(self.lr)
        return Adam(self.lr, normalize=False, dtype=None, xp=self.be.xp)

    def init_network(self, rng, tasks: int = 1, init_std: float | None = None) -> NetState:
        self._update_rule = self._fresh_optimizer()  # a fresh network starts with fresh moments
        return self.engine.init_network(rng, tasks, init_std)

    def network_from_arrays(self, arrays) -> NetState:
        self._update_rule = self._fresh_optimizer()
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
            # tasks are independent: the gradient of the sum is each task's own gradient
            loss = mean_loss(fwd.losses).sum()
        grads = grad(tape, loss, list(leaves.values()))
        return fwd, dict(zip(leaves, grads))

    def step(self, state: NetState, x, y, recorder=None):
        fwd, grads = self.gradients(state, x, y)
        params = self._update_rule.step(state.params, grads)
        outputs = {k: v.value for k, v in fwd.outputs.items()}
        losses = {k: v.value for k, v in fwd.losses.items()}
        return NetState(params, {}, state.step + 1), StepResult(outputs, losses)
