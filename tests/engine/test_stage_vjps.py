"""Stages as data: every stage kind carries its VJP, and the meta-gradient records one tape entry per stage.

The oracles: the same meta-gradient recorded operation by operation (every stage kind's VJP
removed, the path of an activation registered without a derivative), and central differences
(tests/autodiff/test_engine_gradients.py runs its finite-difference checks through these VJPs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from graphs import sinusoid

import graphflow as gf
import graphflow.engine.stages as stages
from graphflow.autodiff import Tape, traced_backend
from graphflow.backend import get_backend
from graphflow.engine import Engine
from graphflow.graph import kinds
from graphflow.learners.protocol import Protocol
from graphflow.meta.metaloss import MetaBatch, MetaGradient
from graphflow.spec import FreeFormSpec

FREEFORM = Path(__file__).parents[1] / "spec" / "data" / "freeform_two_losses.json"
"""Permuted biases, a mask, sparse edges, a skip block, a mixed activation (relu, tanh, sigmoid,
step), softmax with cross-entropy and an l2 loss: every stage kind."""


def freeform():
    return gf.build(FreeFormSpec.model_validate_json(FREEFORM.read_text()))


def test_every_stage_kind_carries_its_vjp():
    assert all(kind.vjp is not None for kind in stages.STAGE_KINDS.values())
    graph = freeform()
    used = {s.op for s in Engine(graph, Protocol.init(graph, gf.LearnerSpec(message_size=2, hidden=3))).schedule.message}
    used |= {s.op for s in Engine(graph, Protocol.init(graph, gf.LearnerSpec(message_size=2, hidden=3))).schedule.forward}
    assert used | {"update"} == set(stages.STAGE_KINDS)  # the test graph exercises every kind


def _batch(graph, rng, tasks=2, steps=3, batch=5):
    def data(n):
        x = rng.standard_normal((tasks, n, graph.inputs[0].size))
        ys = {}
        for t in graph.targets:
            if t.size == 3:
                ys[t.name] = np.eye(3)[rng.integers(0, 3, (tasks, n))]
            else:
                ys[t.name] = rng.uniform(-1, 1, (tasks, n, t.size))
        return x, ys

    xs, ys = zip(*[data(batch) for _ in range(steps)])
    xe, ye = data(4)
    y = {name: np.stack([d[name] for d in ys], axis=1) for name in ys[0]}
    return MetaBatch(np.stack(xs, axis=1), y, xe, ye)


def _meta_gradient(graph, protocol, batch, init, table, **options):
    saved = dict(stages.STAGE_KINDS)
    stages.STAGE_KINDS.clear()
    stages.STAGE_KINDS.update(table)
    try:
        return MetaGradient(graph, protocol, dtype=np.float64, threads=1, **options)(protocol, batch, init)
    finally:
        stages.STAGE_KINDS.clear()
        stages.STAGE_KINDS.update(saved)


@pytest.mark.parametrize("kind,aggregation", [("stateful", "mean"), ("stateless", "sum")])
def test_per_stage_vjps_give_the_per_operation_meta_gradient(kind, aggregation):
    graph = freeform()
    rng = np.random.default_rng(3)
    protocol = Protocol.init(graph, gf.LearnerSpec(kind=kind, message_size=2, hidden=3, mlp_hidden=(6, 5),
                                                   aggregation=aggregation), seed=4)
    batch = _batch(graph, rng)
    init = Engine(graph, protocol).init_network(np.random.default_rng(5), tasks=2, init_std=0.5).params
    per_op = {k: replace(v, vjp=None) for k, v in stages.STAGE_KINDS.items()}
    loss_stage, grads_stage = _meta_gradient(graph, protocol, batch, dict(init), dict(stages.STAGE_KINDS))
    loss_op, grads_op = _meta_gradient(graph, protocol, batch, dict(init), per_op)
    assert loss_stage == pytest.approx(loss_op, rel=1e-12)
    assert grads_stage.keys() == grads_op.keys()
    for key in grads_op:
        scale = max(np.abs(grads_op[key]).max(), 1e-12)
        assert np.abs(grads_stage[key] - grads_op[key]).max() <= 1e-9 * scale, key


def test_recomputed_and_maml_gradients_go_through_the_stages_too():
    graph = sinusoid()
    protocol = Protocol.init(graph, gf.LearnerSpec(kind="stateful", message_size=2, hidden=3, mlp_hidden=(6, 5)), seed=6)
    rng = np.random.default_rng(7)
    x = rng.uniform(-3, 3, (2, 4, 5, 1))
    xe = rng.uniform(-3, 3, (2, 4, 1))
    batch = MetaBatch(x, np.sin(x), xe, np.sin(xe))
    init = {k: v[0] for k, v in Engine(graph, protocol).init_network(np.random.default_rng(8), tasks=1).params.items()}
    trainable = protocol.trainable() + [f"init::{k}" for k in init]
    per_op = {k: replace(v, vjp=None) for k, v in stages.STAGE_KINDS.items()}
    for options in ({"recompute_every": 2}, {}):
        mg_stage = MetaGradient(graph, protocol, dtype=np.float64, threads=1, trainable=trainable, **options)
        loss_stage, g_stage = mg_stage(protocol, batch, dict(init), init_trainable=True)
        loss_op, g_op = _meta_gradient(graph, protocol, batch, dict(init), per_op, trainable=trainable, **options)
        assert loss_stage == pytest.approx(loss_op, rel=1e-12)
        for key in g_op:
            assert np.allclose(g_stage[key], g_op[key], rtol=1e-9, atol=1e-12), (options, key)


def test_one_tape_entry_per_stage():
    """A traced inner step records a few entries per stage (the stage, and the sums into shared
    buffers), not one per array operation."""
    graph = freeform()
    protocol = Protocol.init(graph, gf.LearnerSpec(kind="stateful", message_size=2, hidden=3), seed=1)
    be = traced_backend(get_backend("numpy", np.float64))
    engine = Engine(graph, protocol, be, threads=1)
    rng = np.random.default_rng(2)
    batch = _batch(graph, rng, tasks=1, steps=1)
    x, y = batch.at_step(0)
    stage_count = sum(len(p) for p in (engine.schedule.forward, engine.schedule.message, engine.schedule.update))

    def entries(table):
        saved = dict(stages.STAGE_KINDS)
        stages.STAGE_KINDS.clear()
        stages.STAGE_KINDS.update(table)
        try:
            with Tape(be) as tape:
                state = engine.init_network(np.random.default_rng(0), tasks=1)
                state.params = {k: tape.var(v) for k, v in state.params.items()}
                engine.step(state, x, y)
            return len(tape.nodes) - len(state.params)
        finally:
            stages.STAGE_KINDS.clear()
            stages.STAGE_KINDS.update(saved)

    per_stage = entries(dict(stages.STAGE_KINDS))
    per_op = entries({k: replace(v, vjp=None) for k, v in stages.STAGE_KINDS.items()})
    assert per_stage <= 3 * stage_count < per_op


def test_an_activation_without_a_derivative_is_recorded_operation_by_operation(monkeypatch):
    graph = gf.build(gf.stack(2, gf.Dense(3), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    protocol = Protocol.init(graph, gf.LearnerSpec(kind="stateful", message_size=2, hidden=3), seed=2)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 4, 2))
    xe = rng.standard_normal((1, 4, 2))
    batch = MetaBatch(x, x[..., :1] ** 2, xe, xe[..., :1] ** 2)
    init = Engine(graph, protocol).init_network(np.random.default_rng(5), tasks=1).params
    loss_slope, g_slope = MetaGradient(graph, protocol, dtype=np.float64, threads=1)(protocol, batch, dict(init))
    monkeypatch.delitem(kinds.ACTIVATION_GRADS, "tanh")
    stage = next(s for s in Engine(graph, protocol).schedule.forward if s.op == "activation")
    assert not stages.kind_has_vjp(Engine(graph, protocol), stage)
    loss_ops, g_ops = MetaGradient(graph, protocol, dtype=np.float64, threads=1)(protocol, batch, dict(init))
    assert loss_ops == pytest.approx(loss_slope, rel=1e-12)
    for key in g_ops:
        assert np.allclose(g_ops[key], g_slope[key], rtol=1e-9, atol=1e-12), key
