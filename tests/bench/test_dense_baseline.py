"""The dense numpy baseline gives the engine's numbers, so that timing ratios against it mean something.

The oracle is the engine run in float64. The baseline (float32, operations in another order:
fused kernels, blocks) must be as close to it as the float32 engine is: within ``rtol=1e-4,
atol=1e-5`` (the tolerance of tests/engine/test_equivalence.py), or, where the protocol amplifies
float32 rounding (the sinusoid checkpoint scales its weight stream by ~30, and carries drift by
~1e-4 over five steps in the float32 engine too), within 3x the float32 engine's own error. A
wrong routing, standardization or update scale misses by orders of magnitude. Parameters must
also have moved well beyond the tolerance, so that the updates are really compared.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.backend import get_backend
from graphflow.bench.dense_baseline import DenseMPLP, DenseState
from graphflow.engine import Engine
from graphflow.interop.mplp import load_checkpoint, preset_protocol
from graphflow.interop.traces import initial_params, read_cases
from graphflow.learners import Protocol

TOL = dict(rtol=1e-4, atol=1e-5)
CHECKPOINTS = {"sinusoid": "sinusoid_weights_00035869.npy", "mnist": "mnist_weights_00005000.npy",
               "maml-sinusoid": "maml_sin_net_weights_00258202.npy"}
LAYOUTS = [dict(threads=1, block_rows=2048), dict(threads=2, block_rows=64)]
"""One block per layer on one thread, and many small blocks on two threads."""


def perturb_normalization(protocol: Protocol, rng: np.random.Generator) -> Protocol:
    """Non-trivial input shifts and scales, output means and scales (random protocols start at identity)."""
    for norm in protocol.norms.values():
        norm["in_shift"] = rng.normal(0.0, 0.5, norm["in_shift"].shape).astype(np.float32)
        norm["in_scale"] = rng.uniform(0.5, 2.0, norm["in_scale"].shape).astype(np.float32)
        if "out_mean" in norm:
            norm["out_mean"] = np.asarray(rng.normal(0.0, 0.1), np.float32)
            norm["out_scale"] = np.asarray(0.05, np.float32)
    return protocol


def data(graph, steps, tasks, batch, rng):
    n_in, n_out = graph.inputs[0].size, graph.targets[0].size
    xs = rng.standard_normal((steps, tasks, batch, n_in)).astype(np.float32)
    if graph.losses[0].fn == "ce":
        ys = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, size=(steps, tasks, batch))]
    else:
        ys = rng.uniform(-0.5, 0.5, (steps, tasks, batch, n_out)).astype(np.float32)
    return xs, ys


def assert_as_close_as_engine(got, engine32, oracle, what: str) -> None:
    """``got`` within TOL of the float64 oracle (rtol relative to the array's scale: two float32
    implementations that sum in different orders differ by a few ulps of the largest values), or
    within 3x the float32 engine's own error."""
    got, engine32, oracle = (np.asarray(a, np.float64) for a in (got, engine32, oracle))
    assert got.shape == oracle.shape, f"{what}: shape {got.shape}, engine {oracle.shape}"
    engine_error = float(np.abs(engine32 - oracle).max())
    error = np.abs(got - oracle)
    scale = float(np.abs(oracle).max()) if oracle.size else 0.0
    ok = (error <= TOL["atol"] + TOL["rtol"] * np.maximum(np.abs(oracle), scale)) | (error <= 3 * engine_error)
    assert ok.all(), (f"{what}: dense baseline off the float64 engine by {error.max():.3g} "
                      f"(float32 engine: {engine_error:.3g}) at {np.unravel_index(np.argmax(error), error.shape)}")


def assert_dense_matches_engine(graph, protocol, params, xs, ys, **layout) -> None:
    """Run the baseline and the engine (float32, float64) for len(xs) steps from ``params`` ([T, ...]); compare after each step."""
    engine32 = Engine(graph, protocol)
    engine64 = Engine(graph, protocol, get_backend("numpy", np.float64))
    state32 = engine32.network_from_arrays(params)
    state64 = engine64.network_from_arrays(params)
    state64.params = {k: v.astype(np.float64) for k, v in state64.params.items()}
    dense = DenseMPLP(graph, protocol, **layout)
    dstate = DenseState({k: np.asarray(v, np.float32) for k, v in params.items()})
    try:
        for s in range(len(xs)):
            state32, res32 = engine32.step(state32, xs[s], ys[s])
            state64, res64 = engine64.step(state64, xs[s].astype(np.float64), ys[s].astype(np.float64))
            dstate, dres = dense.step(dstate, xs[s], ys[s])
            assert dres.pred.dtype == np.float32 and dres.loss.dtype == np.float32
            assert_as_close_as_engine(dres.pred, res32.pred, res64.pred, f"step {s}: predictions")
            assert_as_close_as_engine(dres.loss, res32.loss, res64.loss, f"step {s}: losses")
            assert set(dstate.params) == set(state64.params)
            for key in state64.params:
                assert_as_close_as_engine(dstate.params[key], state32.params[key], state64.params[key], f"step {s}: {key}")
            assert set(dstate.carries) == set(state64.carries)
            for key in state64.carries:
                assert_as_close_as_engine(dstate.carries[key], state32.carries[key], state64.carries[key], f"step {s}: carry {key}")
    finally:
        dense.close()
    moved = max(float(np.abs(np.asarray(dstate.params[k]) - np.asarray(params[k])).max()) for k in params)
    assert moved > 100 * TOL["atol"], f"parameters moved only {moved}: the updates were not really compared"


@pytest.mark.parametrize("layout", LAYOUTS, ids=["one-block", "blocked-threaded"])
@pytest.mark.parametrize("preset,tasks,batch", [("sinusoid", 3, 5), ("maml-sinusoid", 2, 4), ("mnist", 2, 3)])
def test_dense_baseline_matches_engine_with_random_protocols(preset, tasks, batch, layout):
    rng = np.random.default_rng(7)
    graph, protocol = preset_protocol(preset, seed=3)
    perturb_normalization(protocol, rng)
    params = {k: np.asarray(v) for k, v in Engine(graph, protocol).init_network(rng, tasks).params.items()}
    xs, ys = data(graph, 3, tasks, batch, rng)
    assert_dense_matches_engine(graph, protocol, params, xs, ys, **layout)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["one-block", "blocked-threaded"])
def test_dense_baseline_matches_engine_with_the_reference_sinusoid_checkpoint(reference_dir, layout):
    graph, protocol = load_checkpoint("sinusoid", reference_dir / CHECKPOINTS["sinusoid"])
    cases = read_cases(reference_dir / "sinusoid_5x10_trace.npz")
    inits = [initial_params(graph, case, None, name) for name, case in cases.items()]
    params = {k: np.stack([init[k] for init in inits]) for k in inits[0]}  # the cases as tasks
    xs = np.stack([case["x"] for case in cases.values()], axis=1).astype(np.float32)  # [steps, T, B, 1]
    ys = np.stack([case["y"] for case in cases.values()], axis=1).astype(np.float32)
    assert_dense_matches_engine(graph, protocol, params, xs, ys, **layout)


def test_dense_baseline_reproduces_the_reference_trace(reference_dir):
    """Not only the engine's numbers: the published implementation's, step by step."""
    graph, protocol = load_checkpoint("sinusoid", reference_dir / CHECKPOINTS["sinusoid"])
    case = read_cases(reference_dir / "sinusoid_5x10_trace.npz")["case0"]
    dense = DenseMPLP(graph, protocol, threads=1)
    state = DenseState({k: v[None].astype(np.float32) for k, v in initial_params(graph, case, None, "case0").items()})
    for i in range(len(case["x"])):
        state, res = dense.step(state, case["x"][i][None], case["y"][i][None])
        np.testing.assert_allclose(res.pred[0], case[f"step{i}_pred"], atol=1e-4)
        for n, layer in enumerate(("dense0", "dense2", "dense4"), start=1):
            np.testing.assert_allclose(state.params[f"{layer}/w"][0], case[f"step{i}_W{n}"], atol=1e-4)
            np.testing.assert_allclose(state.params[f"{layer}/b"][0], case[f"step{i}_b{n}"], atol=1e-4)


def test_dense_baseline_matches_engine_with_the_reference_mnist_checkpoint(reference_dir):
    graph, protocol = load_checkpoint("mnist", reference_dir / CHECKPOINTS["mnist"])
    rng = np.random.default_rng(1)
    params = {k: np.asarray(v) for k, v in Engine(graph, protocol).init_network(rng, 1).params.items()}
    xs, ys = data(graph, 3, 1, 8, rng)
    assert_dense_matches_engine(graph, protocol, params, xs, ys, threads=2, block_rows=512)


def test_dense_baseline_counts_its_work():
    graph, protocol = preset_protocol("mnist")
    dense = DenseMPLP(graph, protocol, threads=1)
    # weight rows dominate: 8 examples x (7200 + 500) weights x one GRU call each
    assert dense.step_flops(1, 8) > 8 * 7700 * dense.layers[0].learner.flops_per_row()
    assert dense.carry_bytes(1, 8) == 2 * 4 * 8 * 7700 * 12


def test_dense_baseline_refuses_graphs_that_are_not_dense_stacks():
    spec = gf.FreeFormSpec.model_validate({"blocks": [
        {"kind": "input", "name": "x", "size": 3},
        {"kind": "target", "name": "t", "size": 1},
        {"kind": "neurons", "name": "h", "size": 2},
        {"kind": "weights", "name": "w1", "src": "x", "dst": "h", "edges": [[0, 0], [1, 1], [2, 1]]},
        {"kind": "activation", "name": "a", "src": "h", "fn": "relu"},
        {"kind": "neurons", "name": "o", "size": 1},
        {"kind": "weights", "name": "w2", "src": "a", "dst": "o"},
        {"kind": "loss", "name": "l", "src": "o", "target": "t", "fn": "l2"},
    ]})
    graph = gf.build(spec)
    with pytest.raises(ValueError, match="w1: the dense baseline runs chains of dense layers only"):
        DenseMPLP(graph, Protocol.init(graph), threads=1)
