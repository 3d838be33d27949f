"""Every stage kind of the batched engine, differentiated on a traced float64 backend and
checked against central finite differences.

Each check is a small scalar function ``sum(cot * stage outputs)`` (random cotangents, so every
output takes part) of the stage's inputs, run through the engine's own code. Kinks: every
function runs under a :class:`KinkMonitor`, and each check asserts that no relu / abs / clip /
max input came within ``MARGIN`` = 1e-5 of its kink at the checked point. A kink input moves by
at most eps times its sensitivity to the perturbed entry, and these sensitivities are products
of O(1) values (inputs, weights, kernels: a few units at most), far below ``MARGIN / eps`` = 10;
so no central difference crosses a kink, and tape and differences must agree to rounding. The
data below is drawn so that this holds (the margin assertion says so if a change breaks it).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import graphflow as gf
from graphflow.autodiff import traced_backend
from graphflow.autodiff.gradcheck import KinkMonitor, check_gradients, tape_gradient
from graphflow.backend import get_backend
from graphflow.engine import Engine, NetState
from graphflow.engine.record import EngineHooks
from graphflow.learners.cells import gru_cell, stateless_cell
from graphflow.learners.protocol import SlotLayout, init_learner
from graphflow.reference.random_graphs import random_protocol
from graphflow.spec import FreeFormSpec

BE64 = get_backend("numpy", np.float64)
MARGIN = 1e-5
TASKS, BATCH = 2, 3

SPARSE_SPEC = {"kind": "freeform", "blocks": [
    {"kind": "input", "name": "x", "size": 3},
    # the biases feed their neurons in another order (the engine permutes them)
    {"kind": "neurons", "name": "h", "size": 4, "bias_edges": [[0, 2], [1, 0], [2, 3], [3, 1]]},
    # input 0 feeds four edges: the gather reads it four times
    {"kind": "weights", "name": "h", "src": "x", "dst": "h",
     "edges": [[0, 0], [0, 1], [0, 3], [2, 1], [1, 2], [2, 3], [0, 2]]},
    {"kind": "activation", "name": "a", "src": "h", "fn": "tanh"},
    {"kind": "neurons", "name": "out", "size": 2},
    {"kind": "weights", "name": "out", "src": "a", "dst": "out", "mask": [[1, 0], [1, 1], [0, 1], [1, 1]]},
    {"kind": "weights", "name": "out_from_x", "src": "x", "dst": "out", "edges": [[1, 0], [1, 1]]},
    {"kind": "target", "name": "y", "size": 2},
    {"kind": "loss", "name": "loss", "src": "out", "fn": "l2", "target": "y"},
]}


def sparse_graph():
    return gf.build(FreeFormSpec.model_validate(SPARSE_SPEC))


def dense_graph(*middle, loss=None, inputs=3):
    return gf.build(gf.stack(inputs, gf.Dense(4), *middle, gf.Dense(2), loss or gf.L2Loss()))


def traced_engine(graph, kind="stateful", seed=0, **spec):
    """An engine on a traced float64 backend whose array module watches for kinks."""
    monitor = KinkMonitor(traced_backend(BE64).xp)
    backend = replace(traced_backend(BE64), xp=monitor)
    learner = gf.LearnerSpec(kind=kind, **{"message_size": 2, "hidden": 2, "mlp_hidden": (5, 4), **spec})
    protocol = random_protocol(graph, learner, np.random.default_rng(seed))
    return Engine(graph, protocol, backend), monitor


def data(graph, seed=0, tasks=TASKS, batch=BATCH):
    rng = np.random.default_rng(seed + 100)
    x = {b.name: rng.normal(0, 1.5, (tasks, batch, b.size)) for b in graph.inputs}
    y = {}
    for loss in graph.losses:
        n = graph.units[loss.target].size
        y[loss.target] = (rng.dirichlet(np.ones(n), (tasks, batch)) if loss.fn == "ce"
                          else rng.normal(0, 1, (tasks, batch, n)))
    return x, y


def params_of(engine, seed=0, tasks=TASKS, std=0.7):
    rng = np.random.default_rng(seed + 200)
    return {k: rng.normal(0, std if k.endswith("/w") else 0.3, (tasks,) + s)
            for k, s in engine.parameter_shapes().items()}


def random_projection(seed=0):
    """``fn(outputs) = sum_k sum(cot_k * outputs_k)`` with fixed random cotangents per output key."""
    rng = np.random.default_rng(seed + 300)
    cots: dict = {}

    def total(outputs: dict):
        out = 0.0
        for key in sorted(outputs, key=str):
            value = outputs[key]
            shape = np.shape(value.value if hasattr(value, "value") else value)
            if key not in cots:
                cots[key] = rng.normal(size=shape)
            out = out + (value * cots[key]).sum()
        return out

    return total


def check(fn, inputs, monitor, count=None, what="gradient"):
    """Assert the kink margin at ``inputs``, then tape vs central differences."""
    monitor.margin = float("inf")
    fn({k: np.array(v) for k, v in inputs.items()})
    assert monitor.margin > MARGIN, f"{what}: a kink input came within {monitor.margin:.2g} of its kink"
    check_gradients(fn, inputs, BE64, count=count, rng=np.random.default_rng(0)).assert_ok(what)


# ----------------------------------------------------------------------------------------------
# forward stages: dense and sparse matmuls, neuron + bias, activations, softmax, losses


def forward_outputs(engine, x, y):
    """Everything a forward pass hands on: unit values, losses and every stored learner state."""
    score = random_projection()

    def fn(v):
        fwd = engine.forward(NetState(dict(v)), x, y)
        outputs = {("value", k): a for k, a in fwd.values.items() if k not in x and k not in y}
        outputs.update({("loss", k): a for k, a in fwd.losses.items()})
        outputs.update({("state", k, n): s for k, states in fwd.states.items() for n, s in enumerate(states)})
        return score(outputs)

    return fn


@pytest.mark.parametrize("fn", ["relu", "sigmoid", "tanh", "identity", ["relu", "sigmoid", "tanh", "identity"]],
                         ids=str)
def test_dense_matmul_neuron_bias_and_activation(fn):
    graph = dense_graph(gf.Activation(fn))
    engine, monitor = traced_engine(graph)
    x, y = data(graph, seed=1)
    check(forward_outputs(engine, x, y), params_of(engine, seed=1), monitor, what=f"forward through {fn}")


def test_step_activation_passes_no_gradient():
    """step's output is piecewise constant: its gradient is exactly zero (and so are the differences,
    away from z = 0); its stored input z still depends on the weights."""
    graph = dense_graph(gf.Step())
    engine, monitor = traced_engine(graph)
    x, y = data(graph, seed=2)
    params = params_of(engine, seed=2)
    z = engine.forward(NetState(dict(params)), x, y).values["dense0"]
    assert np.abs(z).min() > MARGIN and 0 < (z > 0).mean() < 1

    def step_output(v):
        return (engine.forward(NetState(dict(v)), x, y).values["step1"] * 1.7).sum()

    _, g = tape_gradient(step_output, params, BE64)
    assert all(np.all(a == 0) for a in g.values())
    check(step_output, params, monitor, what="step output")
    check(forward_outputs(engine, x, y), params, monitor, what="forward through step")


def test_softmax_and_cross_entropy():
    graph = gf.build(gf.stack(3, gf.Dense(4), gf.Sigmoid(), gf.Dense(3), gf.Softmax(), gf.CrossEntropy()))
    engine, monitor = traced_engine(graph)
    x, y = data(graph, seed=3)
    params = params_of(engine, seed=3)
    p = engine.forward(NetState(dict(params)), x, y).values["softmax3"]
    assert 1e-3 < p.min() and p.max() < 1 - 1e-3  # the ce clip at 1e-7 stays inactive
    check(forward_outputs(engine, x, y), params, monitor, what="softmax + ce")


@pytest.mark.parametrize("loss", [gf.L2Loss(), gf.L1Loss()], ids=["l2", "l1"])
def test_regression_losses(loss):
    graph = dense_graph(gf.Tanh(), loss=loss)
    engine, monitor = traced_engine(graph)
    x, y = data(graph, seed=4)
    check(forward_outputs(engine, x, y), params_of(engine, seed=4), monitor, what=f"{loss.fn} loss")


def test_sparse_matmul_gathers_and_segment_sums_with_permuted_biases():
    graph = sparse_graph()
    engine, monitor = traced_engine(graph)
    assert not graph.weights["h"].dense and "h" in engine.bias_order
    x, y = data(graph, seed=5)
    check(forward_outputs(engine, x, y), params_of(engine, seed=5), monitor, what="sparse forward")


# ----------------------------------------------------------------------------------------------
# learner cells


def cell_inputs(kind, rng, mlp_activation="tanh"):
    """A weight node's learner: message [T,B,1,M,k], w [T,1,N,M,1], x [T,B,N,1,1], carry [T,B,N,M,C]."""
    k, hidden = 2, 2
    layout = SlotLayout((k, 1, 1), 1 + hidden + k, k, True)
    spec = gf.LearnerSpec(kind=kind, message_size=k, hidden=hidden, mlp_hidden=(5, 4),
                          gru_mlp_activation=mlp_activation)
    params = init_learner(rng, layout, spec)
    params = {n: a + rng.normal(0, 0.3, a.shape) if "bias" in n or n.startswith("gru.b_") else a
              for n, a in params.items()}
    streams = {"s0": rng.normal(size=(2, 3, 1, 4, k)), "s1": rng.normal(size=(2, 1, 2, 4, 1)),
               "s2": rng.normal(size=(2, 3, 2, 1, 1)), "carry": rng.normal(0, 0.5, (2, 3, 2, 4, layout.carry))}
    return layout, {**{f"p:{n}": a.astype(np.float64) for n, a in params.items()}, **streams}


def run_cell(kind, layout, xp, mlp_activation="tanh"):
    score = random_projection(seed=7)

    def fn(v):
        p = {n[2:]: a for n, a in v.items() if n.startswith("p:")}
        streams = [v["s0"], v["s1"], v["s2"]]
        if kind == "stateless":
            upd, msg = stateless_cell(xp, p, streams, layout.stream_widths, traced=True)
            return score({"update": upd, "message": msg})
        return score({"carry": gru_cell(xp, p, streams, layout.stream_widths, v["carry"], mlp_activation, traced=True)})

    return fn


@pytest.mark.parametrize("kind,mlp_activation", [("stateless", None), ("stateful", "tanh"), ("stateful", "relu")])
def test_learner_cells(kind, mlp_activation):
    layout, inputs = cell_inputs(kind, np.random.default_rng(8), mlp_activation or "tanh")
    if kind == "stateless":
        inputs.pop("carry")
    monitor = KinkMonitor(traced_backend(BE64).xp)
    check(run_cell(kind, layout, monitor, mlp_activation), inputs, monitor, what=f"{kind} cell")


# ----------------------------------------------------------------------------------------------
# standardization and replication (a weight's learner input), message pass, update


@pytest.mark.parametrize("graph_kind", ["dense", "sparse"])
def test_standardization_and_replication_of_messages(graph_kind):
    """A weight slot's input streams: its neuron's message replicated to every weight (a dense
    broadcast, or a gather by edge), w and x, each standardized by its group's shift and scale."""
    graph = dense_graph(gf.Tanh()) if graph_kind == "dense" else sparse_graph()
    engine, monitor = traced_engine(graph)
    slot = graph.slots["dense2/w" if graph_kind == "dense" else "out/w"]
    n_dst = graph.weights[slot.block].n_dst
    x, y = data(graph, seed=9)
    rng = np.random.default_rng(9)
    norm = engine.norm_params[slot.norm_group]
    inputs = {**params_of(engine, seed=9), "message": rng.normal(size=(TASKS, BATCH, n_dst, 2)),
              "in_shift": np.asarray(norm["in_shift"]), "in_scale": np.asarray(norm["in_scale"])}
    score = random_projection(seed=9)

    def fn(v):
        engine.norm_params[slot.norm_group] = {**norm, "in_shift": v["in_shift"], "in_scale": v["in_scale"]}
        fwd = engine.forward(NetState({k: v[k] for k in engine.parameter_shapes()}), x, y)
        _, streams = engine.learner_streams(slot, v["message"], fwd.states[slot.key])
        return score(dict(enumerate(streams)))

    check(fn, inputs, monitor, what=f"{graph_kind} weight streams")


class InputMessages(EngineHooks):
    """A recorder keeping the aggregated messages that reach the input units."""

    def __init__(self):
        self.received = {}

    def records(self, part):
        return True

    def on_input_message(self, engine, name, total):
        self.received[name] = total


@pytest.mark.parametrize("graph_kind,kind,aggregation", [
    ("dense", "stateful", "mean"), ("dense", "stateless", "sum"),
    ("sparse", "stateful", "sum"), ("sparse", "stateless", "mean"),
])
def test_message_pass(graph_kind, kind, aggregation):
    """Seed, learner calls, bias -> weight replication, aggregation (a sum over a dense block's
    outputs or a segment sum over edges, into hidden units and inputs), mean over consumers:
    raw updates, new carries and the inputs' messages as functions of the parameters, the
    carries and the learners' own parameters."""
    graph = dense_graph(gf.Tanh()) if graph_kind == "dense" else sparse_graph()
    engine, monitor = traced_engine(graph, kind=kind, aggregation=aggregation, seed=10)
    x, y = data(graph, seed=10)
    rng = np.random.default_rng(10)
    state = NetState(params_of(engine, seed=10))
    _, first = engine.message_pass(state, engine.forward(state, x, y))  # stateful: carries of every slot
    # as in the middle of an inner loop
    carries = {f"c:{key}": rng.normal(0, 0.5, np.shape(c)) for key, c in first.items()}
    learner = {f"l:{g}:{n}": np.asarray(a) for g, p in engine.learner_params.items() for n, a in p.items()}
    plain_learners = engine.learner_params
    score = random_projection(seed=10)

    def fn(v):
        engine.learner_params = {g: {n: v[f"l:{g}:{n}"] for n in p} for g, p in plain_learners.items()}
        state = NetState({k: v[k] for k in engine.parameter_shapes()}, {k[2:]: v[k] for k in v if k.startswith("c:")})
        recorder = InputMessages()
        updates, new_carries = engine.message_pass(state, engine.forward(state, x, y), recorder)
        outputs = {("update", k): u for k, u in updates.items()}
        outputs.update({("carry", k): c for k, c in new_carries.items()})
        outputs.update({("input", k): m for k, m in recorder.received.items()})
        return score(outputs)

    inputs = {**params_of(engine, seed=10), **carries, **learner}
    try:
        check(fn, inputs, monitor, count=60, what=f"message pass ({graph_kind}, {kind}, {aggregation})")
    finally:
        engine.learner_params = plain_learners


@pytest.mark.parametrize("graph_kind", ["dense", "sparse"])
def test_update(graph_kind):
    """One whole step: the new parameters and carries as functions of the old ones and of the
    output normalization (mean and scale)."""
    graph = dense_graph(gf.Sigmoid()) if graph_kind == "dense" else sparse_graph()
    engine, monitor = traced_engine(graph, seed=11)
    x, y = data(graph, seed=11)
    plain_norms = engine.norm_params
    outs = {f"n:{g}:{n}": np.asarray(p[n]) for g, p in plain_norms.items() for n in ("out_mean", "out_scale") if n in p}
    score = random_projection(seed=11)

    def fn(v):
        engine.norm_params = {g: {**p, **{n: v[f"n:{g}:{n}"] for n in ("out_mean", "out_scale") if n in p}}
                              for g, p in plain_norms.items()}
        new, _ = engine.step(NetState({k: v[k] for k in engine.parameter_shapes()}), x, y)
        outputs = {("param", k): a for k, a in new.params.items()}
        outputs.update({("carry", k): c for k, c in new.carries.items()})
        return score(outputs)

    try:
        check(fn, {**params_of(engine, seed=11), **outs}, monitor, what=f"update ({graph_kind})")
    finally:
        engine.norm_params = plain_norms
