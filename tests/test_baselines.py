"""Backprop baselines: their gradients are the finite differences of the mean loss, and their
SGD and Adam steps learn."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import graphflow as gf
from graphflow.autodiff.gradcheck import KinkMonitor, numeric_gradient, pick_entries
from graphflow.backend import get_backend
from graphflow.baselines import BackpropBaseline
from graphflow.engine import Engine, NetState
from graphflow.evaluation import evaluate_sinusoid
from graphflow.learners import Protocol
from graphflow.reference.random_graphs import random_case

BE64 = get_backend("numpy", np.float64)


def mean_losses(engine, params, x, y):
    """Per task: the mean over examples and units of every loss block, summed over blocks."""
    losses = engine.forward(NetState(params), x, y).losses
    return sum(v.mean(axis=(1, 2)) for v in losses.values())


@pytest.mark.parametrize("graph", [
    gf.build(gf.stack(2, gf.Dense(5), gf.Tanh(), gf.Dense(4), gf.Sigmoid(), gf.Dense(3), gf.Softmax(),
                      gf.CrossEntropy())),
    random_case(7, freeform=True).graph,  # two inputs, two losses (l2 and ce), masked and edge-list weights
    random_case(3, freeform=True).graph,
], ids=["stack-ce", "freeform-7", "freeform-3"])
def test_gradients_are_finite_differences_of_the_mean_loss(graph):
    monitor = KinkMonitor(np)
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(message_size=2, hidden=1, mlp_hidden=(4, 3))),
                    replace(BE64, xp=monitor))
    baseline = BackpropBaseline(engine, "sgd")
    rng = np.random.default_rng(0)
    state = engine.init_network(rng, tasks=3, init_std=0.8)
    params = {k: v + rng.normal(0, 0.2, v.shape) if k.endswith("/b") else v for k, v in state.params.items()}
    x = {b.name: rng.normal(0, 1.5, (3, 4, b.size)) for b in graph.inputs}
    y = {}
    for loss in graph.losses:
        n = graph.units[loss.target].size
        y[loss.target] = rng.dirichlet(np.ones(n), (3, 4)) if loss.fn == "ce" else rng.normal(0, 1, (3, 4, n))

    fwd, grads = baseline.gradients(NetState(params), x, y)
    np.testing.assert_allclose(sum(v.value.mean(axis=(1, 2)) for v in fwd.losses.values()),
                               mean_losses(engine, params, x, y), rtol=1e-12)

    def total(values):  # tasks are independent: d sum_t L_t / d params of task t = d L_t / d params
        return mean_losses(engine, values, x, y).sum()

    monitor.margin = float("inf")
    total(params)
    assert monitor.margin > 1e-5  # relu / abs / clip / max inputs stay clear of their kinks
    entries = pick_entries(params, 40, np.random.default_rng(1))
    numeric = numeric_gradient(total, params, entries, BE64)
    analytic = np.array([grads[name][idx] for name, idx in entries])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    assert np.sum(np.abs(numeric) > 1e-6) > len(entries) // 2


def regression():
    """Two tasks, y = 0.8 x + 0.3 and y = -0.6 x - 0.2 on 16 points: a 1 -> 8 tanh -> 1 network."""
    graph = gf.build(gf.stack(1, gf.Dense(8), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    x = np.broadcast_to(np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 16, 1), (2, 16, 1))
    return graph, x, x * np.float32([0.8, -0.6]).reshape(2, 1, 1) + np.float32([0.3, -0.2]).reshape(2, 1, 1)


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.5), ("adam", 0.02)])
def test_steps_reduce_the_loss(optimizer, lr):
    graph, x, y = regression()
    baseline = BackpropBaseline(Engine(graph, Protocol.init(graph)), optimizer, lr)
    state = baseline.init_network(np.random.default_rng(0), tasks=2, init_std=0.5)
    losses = []
    for _ in range(30):
        state, res = baseline.step(state, x, y)
        losses.append(res.loss.mean(axis=(1, 2)))
    losses = np.array(losses)  # [steps, tasks]
    assert state.step == 30
    assert np.all(losses[-1] < 0.2 * losses[0]), losses[[0, -1]]
    if optimizer == "sgd":  # small steps on a smooth loss: every step helps
        assert np.all(np.diff(losses, axis=0) < 0)


def test_adam_follows_its_update_rule():
    graph, x, y = regression()
    engine = Engine(graph, Protocol.init(graph), BE64)
    adam = BackpropBaseline(engine, "adam", lr=0.01)
    state = adam.init_network(np.random.default_rng(0), tasks=2)
    m = v = 0.0
    params = dict(state.params)
    for t in (1, 2, 3):
        _, g = adam.gradients(state, x, y)
        state, _ = adam.step(state, x, y)
        m = {k: 0.9 * (m[k] if t > 1 else 0) + 0.1 * g[k] for k in g}
        v = {k: 0.999 * (v[k] if t > 1 else 0) + 0.001 * g[k] ** 2 for k in g}
        for k in params:
            mhat, vhat = m[k] / (1 - 0.9 ** t), v[k] / (1 - 0.999 ** t)
            params[k] = params[k] - 0.01 * mhat / (np.sqrt(vhat) + 1e-7)
            np.testing.assert_allclose(state.params[k], params[k], rtol=1e-12, atol=1e-15)


def test_a_fresh_network_resets_adams_moments():
    graph, x, y = regression()
    adam = BackpropBaseline(Engine(graph, Protocol.init(graph)), "adam")
    first = adam.step(adam.init_network(np.random.default_rng(0), 2), x, y)[0]
    again = adam.step(adam.init_network(np.random.default_rng(0), 2), x, y)[0]
    assert all(np.array_equal(first.params[k], again.params[k]) for k in first.params)


def test_baselines_run_the_evaluation_protocol():
    graph = gf.build(gf.stack(1, gf.Dense(8), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(message_size=2, hidden=1, mlp_hidden=(4, 3))))
    curves = {name: evaluate_sinusoid(BackpropBaseline(engine, name), tasks=4, steps=3) for name in ("sgd", "adam")}
    curves["graphflow"] = evaluate_sinusoid(engine, tasks=4, steps=3)
    assert len({c.mean[0] for c in curves.values()}) == 1  # the same tasks and initial networks
    assert all(len(c.mean) == 4 and np.all(np.isfinite(c.mean)) for c in curves.values())


def test_unknown_optimizer():
    graph, _, _ = regression()
    with pytest.raises(ValueError, match="'rmsprop'"):
        BackpropBaseline(Engine(graph, Protocol.init(graph)), "rmsprop")
