"""The batched engine on its own terms: shapes, dtypes, task batching, mixed activations, errors."""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine, NetState
from graphflow.learners import Protocol
from graphflow.reference import Interpreter
from graphflow.reference.random_graphs import random_case, random_data
from graphs import sinusoid, skip_two_losses

F32 = np.float32
MIXED = ["relu", "sigmoid", "tanh", "step"]  # the free-form graph's mixed activation


def engine_for(graph, kind="stateful", backend="numpy", **spec):
    spec = {"message_size": 3, "hidden": 2, "mlp_hidden": (8, 6), **spec}
    return Engine(graph, Protocol.init(graph, gf.LearnerSpec(kind=kind, **spec), seed=0), backend=backend)


def feed(graph, rng, tasks, batch):
    xs, ys = random_data(graph, rng, 1, batch, tasks)
    return {k: v[0] for k, v in xs.items()}, {k: v[0] for k, v in ys.items()}


def numpy_of(eng, a) -> np.ndarray:
    return eng.be.to_numpy(a)


# ----------------------------------------------------------------------------------------------
# Shapes and dtypes


@pytest.mark.parametrize("kind", ["stateful", "stateless"])
def test_state_and_result_shapes(kind, backend):
    g = skip_two_losses(MIXED)
    eng = engine_for(g, kind, backend)
    state = eng.init_network(np.random.default_rng(0), tasks=2)
    shapes = {k: tuple(v.shape) for k, v in state.params.items()}
    assert shapes == {"h0/w": (2, 3, 4), "h1/w": (2, 5), "h1_from_input/w": (2, 2), "h0/b": (2, 4), "h1/b": (2, 2)}
    x, y = feed(g, np.random.default_rng(1), tasks=2, batch=5)
    state, res = eng.step(state, x, y)
    assert {k: v.shape for k, v in res.outputs.items()} == {"loss0": (2, 5, 2), "loss1": (2, 5, 4)}
    assert {k: v.shape for k, v in res.losses.items()} == {"loss0": (2, 5, 2), "loss1": (2, 5, 4)}
    assert {k: tuple(v.shape) for k, v in state.params.items()} == shapes
    assert state.step == 1
    if kind == "stateless":
        assert state.carries == {}
    else:
        carry = 1 + 2 + 3  # (1 if a parameter) + hidden + k
        assert {k: tuple(v.shape) for k, v in state.carries.items()} == {
            "loss0/loss": (2, 5, 2, 3 + 2), "loss1/loss": (2, 5, 4, 3 + 2),
            "softmax0/unit": (2, 5, 2, 3 + 2), "h1/b": (2, 5, 2, carry),
            "h1/w": (2, 5, 5, carry), "h1_from_input/w": (2, 5, 2, carry),
            "mixed0/act": (2, 5, 4, 3 + 2), "h0/b": (2, 5, 4, carry), "h0/w": (2, 5, 3, 4, carry),
        }


def test_every_state_array_is_float32(backend):
    """float64 parameters and data go in; everything the engine keeps and returns is float32."""
    g = skip_two_losses(MIXED)
    eng = engine_for(g, "stateful", backend)
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=numpy_of(eng, v).shape[1:]) for k, v in eng.init_network(rng).params.items()}
    state = eng.network_from_arrays(params)  # float64 in
    x, y = feed(g, rng, tasks=None, batch=3)
    x = {k: v.astype(np.float64) for k, v in x.items()}
    for _ in range(2):
        state, res = eng.step(state, x, y)
        arrays = {**state.params, **state.carries, **{f"out:{k}": v for k, v in res.outputs.items()},
                  **{f"loss:{k}": v for k, v in res.losses.items()}}
        assert {k: str(v.dtype) for k, v in arrays.items()} == {k: "float32" for k in arrays}
    assert all(str(v.dtype) == "float32" for v in eng.init_network(rng, tasks=2).params.values())


def test_network_from_arrays_adds_the_task_axis():
    g = skip_two_losses(MIXED)
    eng = engine_for(g)
    one = {key: np.ones(shape) for key, shape in eng.parameter_shapes().items()}
    assert {k: v.shape for k, v in eng.network_from_arrays(one).params.items()} == {k: (1,) + v.shape for k, v in one.items()}
    many = {k: np.stack([v] * 3) for k, v in one.items()}
    assert {k: v.shape for k, v in eng.network_from_arrays(many).params.items()} == {k: v.shape for k, v in many.items()}


# ----------------------------------------------------------------------------------------------
# Tasks as a batch axis


@pytest.mark.parametrize("kind", ["stateful", "stateless"])
def test_task_batch_equals_per_task_runs(kind, backend):
    g = skip_two_losses(MIXED)
    eng = engine_for(g, kind, backend)
    rng = np.random.default_rng(0)
    batched = eng.init_network(rng, tasks=3)
    singles = [NetState({k: v[t:t + 1] for k, v in batched.params.items()}) for t in range(3)]
    for _ in range(3):
        x, y = feed(g, rng, tasks=3, batch=4)
        batched, res = eng.step(batched, x, y)
        for t in range(3):
            singles[t], one = eng.step(singles[t], {k: v[t] for k, v in x.items()}, {k: v[t] for k, v in y.items()})
            for name in res.losses:
                np.testing.assert_allclose(numpy_of(eng, res.losses[name][t]), numpy_of(eng, one.losses[name][0]), rtol=1e-6, atol=1e-7)
            for key in batched.params:
                np.testing.assert_allclose(numpy_of(eng, batched.params[key][t]), numpy_of(eng, singles[t].params[key][0]),
                                           rtol=1e-6, atol=1e-7, err_msg=f"task {t} {key}")


def test_data_without_a_task_axis_is_shared_by_all_tasks():
    g = sinusoid()
    eng = engine_for(g)
    state = eng.init_network(np.random.default_rng(0), tasks=2)
    x = np.linspace(-1, 1, 5, dtype=F32)[:, None]
    _, shared = eng.step(state, x, np.sin(x))
    _, explicit = eng.step(state, np.stack([x, x]), np.sin(np.stack([x, x])))
    np.testing.assert_array_equal(shared.loss, explicit.loss)


# ----------------------------------------------------------------------------------------------
# Activations


def test_mixed_activation_layer_applies_each_units_function():
    fns = ["relu", "sigmoid", "tanh", "step", "identity"]
    g = gf.build(gf.stack(2, gf.Dense(5), gf.Activation(fns), gf.Dense(1), gf.L2Loss()))
    eng = engine_for(g)
    rng = np.random.default_rng(0)
    state = eng.init_network(rng, init_std=1.0)
    x = rng.normal(size=(1, 6, 2)).astype(F32)
    fwd = eng.forward(state, x)
    z = x @ numpy_of(eng, state.params["dense0/w"])  # biases are zero
    ref = {"relu": np.maximum(z, 0), "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z),
           "step": (z > 0).astype(F32), "identity": z}
    want = np.stack([ref[fn][..., j] for j, fn in enumerate(fns)], axis=-1)
    np.testing.assert_allclose(numpy_of(eng, fwd.values["mixed1"]), want, rtol=1e-6, atol=1e-7)
    # and the learners and updates agree with the interpreter on the same layer
    params = {k: numpy_of(eng, v)[0] for k, v in state.params.items()}
    y = rng.normal(size=(2, 6, 1)).astype(F32)
    xs = np.stack([x[0], x[0]])
    oracle = Interpreter(g, eng.protocol).run(params, xs, y)
    for s in range(2):
        state, _ = eng.step(state, xs[s], y[s])
        for key in params:
            np.testing.assert_allclose(numpy_of(eng, state.params[key])[0], oracle[s]["params"][key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fn", ["relu", "sigmoid", "tanh", "step", "identity"])
def test_uniform_and_mixed_spelling_of_one_activation_agree(fn):
    uniform = gf.build(gf.stack(2, gf.Dense(3), gf.Activation(fn, name="act"), gf.Dense(1), gf.L2Loss()))
    listed = gf.build(gf.stack(2, gf.Dense(3), gf.Activation([fn] * 3, name="act"), gf.Dense(1), gf.L2Loss()))
    rng = np.random.default_rng(0)
    a, b = engine_for(uniform), engine_for(listed)
    state = a.init_network(rng, init_std=1.0)
    x, y = rng.normal(size=(4, 2)).astype(F32), rng.normal(size=(4, 1)).astype(F32)
    (sa, ra), (sb, rb) = a.step(state, x, y), b.step(state, x, y)
    np.testing.assert_array_equal(ra.loss, rb.loss)
    for key in sa.params:
        np.testing.assert_array_equal(sa.params[key], sb.params[key])


# ----------------------------------------------------------------------------------------------
# Errors name what the user passed


def test_error_on_wrong_number_of_input_units():
    eng = engine_for(sinusoid())
    state = eng.init_network(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"inputs 'input': last axis 3 does not match its 1 units"):
        eng.step(state, np.zeros((4, 3), F32), np.zeros((4, 1), F32))
    with pytest.raises(ValueError, match=r"targets 'target': last axis 2 does not match its 1 units"):
        eng.step(state, np.zeros((4, 1), F32), np.zeros((4, 2), F32))


def test_error_on_missing_or_ambiguous_blocks():
    g = gf.build({"kind": "freeform", "blocks": [
        {"kind": "input", "name": "a", "size": 1}, {"kind": "input", "name": "b", "size": 2},
        {"kind": "neurons", "name": "h", "size": 1},
        {"kind": "weights", "name": "h", "src": "a", "dst": "h"}, {"kind": "weights", "name": "hb", "src": "b", "dst": "h"},
        {"kind": "target", "name": "y", "size": 1}, {"kind": "loss", "name": "loss", "src": "h", "fn": "l2", "target": "y"}]})
    eng = engine_for(g)
    state = eng.init_network(np.random.default_rng(0))
    with pytest.raises(ValueError, match="2 inputs blocks; pass a dict by name"):
        eng.step(state, np.zeros((4, 1), F32), np.zeros((4, 1), F32))
    with pytest.raises(ValueError, match="no data for block 'b'"):
        eng.step(state, {"a": np.zeros((4, 1), F32)}, np.zeros((4, 1), F32))


# Shapes the engine does not check yet: each raises a numpy broadcasting error, or runs and
# returns wrongly shaped results, instead of an error that names the block at fault.
UNCHECKED_SHAPES = {
    "batch differs between inputs and targets": ((2, 5, 1), (2, 4, 1)),
    "task axis differs from the network's": ((3, 5, 1), (3, 5, 1)),
    "one-dimensional input": ((1,), (1,)),
    "four-dimensional input": ((1, 2, 5, 1), (1, 2, 5, 1)),
}


@pytest.mark.parametrize("case", list(UNCHECKED_SHAPES))
def test_error_on_inconsistent_leading_axes(case):
    eng = engine_for(sinusoid())
    state = eng.init_network(np.random.default_rng(0), tasks=2)
    x_shape, y_shape = UNCHECKED_SHAPES[case]
    with pytest.raises(ValueError, match=r"'input'|'target'"):
        eng.step(state, np.zeros(x_shape, F32), np.zeros(y_shape, F32))


def test_error_on_wrong_parameter_shape():
    eng = engine_for(sinusoid())
    with pytest.raises(ValueError, match="dense2/w"):
        eng.network_from_arrays({"dense0/w": np.zeros((1, 20)), "dense0/b": np.zeros(20), "dense2/w": np.zeros((20, 21)),
                                 "dense2/b": np.zeros(20), "dense4/w": np.zeros((20, 1)), "dense4/b": np.zeros(1)})


def test_error_when_batch_size_changes_with_stateful_carries():
    eng = engine_for(sinusoid())
    state, _ = eng.step(eng.init_network(np.random.default_rng(0)), np.zeros((5, 1), F32), np.zeros((5, 1), F32))
    with pytest.raises(ValueError, match="batch"):
        eng.step(state, np.zeros((4, 1), F32), np.zeros((4, 1), F32))


# ----------------------------------------------------------------------------------------------
# Interpreter agreement on the published networks (small batches; the trace test is elsewhere)


@pytest.mark.parametrize("preset", ["sinusoid", "mnist"])
def test_published_networks_match_the_interpreter(preset):
    from graphflow.presets import PRESETS

    g = gf.build(PRESETS[preset]())
    if preset == "mnist":  # keep the oracle quick: the same structure, fewer inputs
        g = gf.build(PRESETS[preset]().model_copy(update={"inputs": 6}))
    eng = engine_for(g, message_size=4, hidden=3)
    rng = np.random.default_rng(0)
    state = eng.init_network(rng, init_std=0.5)
    params = {k: numpy_of(eng, v)[0] for k, v in state.params.items()}
    xs, ys = random_data(g, rng, steps=2, batch=2)
    oracle = Interpreter(g, eng.protocol).run(params, xs, ys)
    for s in range(2):
        state, res = eng.step(state, {k: v[s] for k, v in xs.items()}, {k: v[s] for k, v in ys.items()})
        for name in res.losses:
            np.testing.assert_allclose(numpy_of(eng, res.losses[name])[0], oracle[s]["losses"][name], rtol=1e-4, atol=1e-5)
        for key in params:
            np.testing.assert_allclose(numpy_of(eng, state.params[key])[0], oracle[s]["params"][key], rtol=1e-4, atol=1e-5)


def test_random_case_with_tasks_runs_in_one_engine_call():
    c = random_case(3, tasks=4)
    eng = Engine(c.graph, c.protocol)
    state = eng.network_from_arrays(c.params)
    state, res = eng.step(state, {k: v[0] for k, v in c.xs.items()}, {k: v[0] for k, v in c.ys.items()})
    assert all(v.shape[:2] == (4, c.batch) for v in res.losses.values())
