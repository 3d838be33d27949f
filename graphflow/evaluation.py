"""Evaluation protocols of the reference (``../shared/reference/README.md``), run vectorized over tasks.

- sinusoid: fresh random networks (or a given prior), ``steps`` inner steps of ``shots`` points,
  eval L2 loss on 100 evenly spaced points in [-5, 5] before and after each step;
- mnist: fresh random networks, inner steps on batches of training images, accuracy on 100
  held-out images before and after each step.

Both return an :class:`EvalCurve`: per-step mean and standard deviation over tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from graphflow.tasks import mnist_batches, mnist_heldout, sample_sinusoid_meta_batch
from graphflow.tasks.sinusoid import X_RANGE


@dataclass
class EvalCurve:
    metric: str
    steps: list[int]
    mean: list[float]
    std: list[float]
    tasks: int

    def to_json(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        rows = [f"{'step':>4}  {self.metric:>10}  {'std':>8}"]
        rows += [f"{s:>4}  {m:>10.4f}  {d:>8.4f}" for s, m, d in zip(self.steps, self.mean, self.std)]
        return "\n".join(rows)


def _initial_state(engine, rng, tasks: int, prior: dict | None):
    if prior is None:
        return engine.init_network(rng, tasks)
    return engine.network_from_arrays({k: np.broadcast_to(v, (tasks,) + v.shape) for k, v in prior.items()})


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield min(size, n - start)


def evaluate_sinusoid(engine, tasks: int = 100, seed: int = 0, steps: int = 5, shots: int = 10,
                      prior: dict | None = None, chunk: int = 100, eval_points: int = 100) -> EvalCurve:
    """Eval L2 loss (mean of d^2/2 over ``eval_points`` evenly spaced x) after each inner step.

    >>> import graphflow as gf
    >>> from graphflow.engine import Engine
    >>> from graphflow.learners import Protocol
    >>> g = gf.build(gf.stack(1, gf.Dense(4), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    >>> curve = evaluate_sinusoid(Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2))), tasks=3, steps=2)
    >>> curve.steps, len(curve.mean)
    ([0, 1, 2], 3)
    """
    rng = np.random.default_rng(seed)
    per_task = []
    xe = np.linspace(X_RANGE[0], X_RANGE[1], eval_points, dtype=np.float32)[:, None]
    for n in _chunks(tasks, chunk):
        batch = sample_sinusoid_meta_batch(rng, n, steps, shots, 1)
        ye = (batch["amplitude"][:, None, None] * np.sin(xe[None] + batch["phase"][:, None, None])).astype(np.float32)
        xe_t = np.broadcast_to(xe, (n,) + xe.shape)
        state = _initial_state(engine, rng, n, prior)
        curve = [_eval_loss(engine, state, xe_t, ye)]
        for k in range(steps):
            state, _ = engine.step(state, batch["x"][:, k], batch["y"][:, k])
            curve.append(_eval_loss(engine, state, xe_t, ye))
        per_task.append(np.stack(curve, axis=1))
    return _curve("l2", np.concatenate(per_task))


def _eval_loss(engine, state, x, y) -> np.ndarray:
    fwd = engine.forward(state, x, y)
    loss = next(iter(fwd.losses.values()))
    return engine.be.to_numpy(loss).reshape(loss.shape[0], -1).mean(axis=1)


def evaluate_mnist(engine, data, tasks: int = 100, seed: int = 0, steps: int = 20, batch: int = 8,
                   heldout: int = 100, chunk: int = 10) -> EvalCurve:
    """Accuracy on ``heldout`` test images before and after each of ``steps`` inner steps."""
    rng = np.random.default_rng(seed)
    per_task = []
    for n in _chunks(tasks, chunk):
        xs, ys = mnist_batches(data, rng, steps, batch, tasks=n)
        xt, yt = mnist_heldout(data, rng, heldout, tasks=n)
        state = engine.init_network(rng, n)
        curve = [_accuracy(engine, state, xt, yt)]
        for k in range(steps):
            state, _ = engine.step(state, xs[k], ys[k])
            curve.append(_accuracy(engine, state, xt, yt))
        per_task.append(np.stack(curve, axis=1))
    return _curve("accuracy", np.concatenate(per_task))


def _accuracy(engine, state, x, y) -> np.ndarray:
    out = engine.be.to_numpy(next(iter(engine.predict(state, x).values())))
    return (out.argmax(-1) == y.argmax(-1)).mean(axis=1)


def _curve(metric: str, values: np.ndarray) -> EvalCurve:
    return EvalCurve(metric, list(range(values.shape[1])), values.mean(0).tolist(), values.std(0).tolist(), len(values))
