"""The batched engine against the per-node interpreter (graphflow.reference), the oracle.

The engine computes in float32 and the interpreter in float64, so values are compared with
``rtol=1e-4, atol=1e-5``: float32 carries ~6e-8 relative error per operation, a few hundred
operations and three inner steps stay far below 1e-4, while a wrong routing, a missed
standardization or a wrong order changes values at the 1e-2 level. The absolute part covers values
that cancel to near zero (messages, small updates).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.learners import Protocol
from graphflow.reference import Interpreter
from graphflow.reference.random_graphs import SHARINGS, random_case, random_learner_spec, random_protocol

TOL = dict(rtol=1e-4, atol=1e-5)


# Every combination of graph family x learner kind x sharing, eight random graphs each: 128 cases.
COMBOS = list(itertools.product((False, True), ("stateless", "stateful"), SHARINGS))
CASES = [(1000 * c + r, freeform, kind, sharing) for c, (freeform, kind, sharing) in enumerate(COMBOS) for r in range(8)]


def _case_id(case) -> str:
    seed, freeform, kind, sharing = case
    return f"{'freeform' if freeform else 'stack'}-{kind}-{sharing}-{seed}"


def at_step(data: dict, s: int) -> dict:
    return {name: a[s] for name, a in data.items()}


def run_engine(graph, protocol, params, xs, ys, steps: int, backend: str = "numpy", recorder=None):
    """Engine trace in the interpreter's format, with the task axis kept: per step outputs, losses, params."""
    eng = Engine(graph, protocol, backend=backend)
    state = eng.network_from_arrays(params)
    trace = []
    for s in range(steps):
        state, res = eng.step(state, at_step(xs, s), at_step(ys, s), recorder=recorder)
        trace.append({
            "outputs": {k: eng.be.to_numpy(v) for k, v in res.outputs.items()},
            "losses": {k: eng.be.to_numpy(v) for k, v in res.losses.items()},
            "params": {k: eng.be.to_numpy(v) for k, v in state.params.items()},
        })
    return trace


def assert_trace_matches(engine_trace, oracle_trace, task: int, where: str) -> None:
    assert len(engine_trace) == len(oracle_trace)
    for s, (got, want) in enumerate(zip(engine_trace, oracle_trace)):
        for field in ("outputs", "losses", "params"):
            assert set(got[field]) == set(want[field]), f"{where}: step {s} {field} keys"
            for key in want[field]:
                np.testing.assert_allclose(got[field][key][task], want[field][key], **TOL,
                                           err_msg=f"{where}: step {s} {field}[{key!r}]")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_engine_matches_interpreter_on_random_graphs(case, backend):
    seed, freeform, kind, sharing = case
    c = random_case(seed, freeform=freeform, kind=kind, sharing=sharing)
    oracle = Interpreter(c.graph, c.protocol).run(c.params, c.xs, c.ys)
    engine = run_engine(c.graph, c.protocol, c.params, c.xs, c.ys, c.steps, backend)
    assert_trace_matches(engine, oracle, 0, c.describe())


def test_random_cases_cover_the_features_that_matter():
    """The cases above exercise every activation, loss, connectivity and sharing option."""
    from graphflow.graph.blocks import ActivationNodes, LossNodes, SoftmaxNodes, WeightNodes

    seen = set()
    for seed, freeform, kind, sharing in CASES:
        c = random_case(seed, freeform=freeform, kind=kind, sharing=sharing)
        g = c.graph
        seen |= {f"sharing:{g.source.sharing}", f"learner:{c.protocol.spec.kind}", f"agg:{c.protocol.spec.aggregation}"}
        if g.source.groups:
            seen.add("user group")
        if len(g.losses) > 1:
            seen.add("two losses")
        if len(g.inputs) > 1:
            seen.add("two inputs")
        for b in g.blocks:
            if isinstance(b, WeightNodes):
                seen.add(f"weights:{b.connectivity}")
                if len(g.incoming_weights(b.dst)) > 1:
                    seen.add("skip")
            elif isinstance(b, ActivationNodes):
                seen |= {f"act:{fn}" for fn in b.fns} | ({"mixed"} if len(set(b.fns)) > 1 else set())
            elif isinstance(b, SoftmaxNodes):
                seen.add("softmax")
            elif isinstance(b, LossNodes):
                seen.add(f"loss:{b.fn}")
    want = {"sharing:layer", "sharing:kind", "sharing:kind+norm", "user group", "learner:stateless",
            "learner:stateful", "agg:mean", "agg:sum", "two losses", "two inputs", "weights:dense",
            "weights:mask", "weights:edges", "skip", "mixed", "softmax", "loss:ce", "loss:l1", "loss:l2",
            *(f"act:{fn}" for fn in ("relu", "sigmoid", "tanh", "step", "identity"))}
    assert want <= seen, f"not covered: {sorted(want - seen)}"


@pytest.mark.parametrize("seed", range(6))
def test_task_batch_matches_interpreter_run_per_task(seed, backend):
    """T > 1: the engine runs tasks as a batch axis; each task equals its own interpreter run."""
    c = random_case(500 + seed, tasks=3)
    engine = run_engine(c.graph, c.protocol, c.params, c.xs, c.ys, c.steps, backend)
    for t in range(3):
        oracle = Interpreter(c.graph, c.protocol).run(
            {k: v[t] for k, v in c.params.items()},
            {k: v[:, t] for k, v in c.xs.items()}, {k: v[:, t] for k, v in c.ys.items()})
        assert_trace_matches(engine, oracle, t, f"task {t} of {c.describe()}")


def _recorded_engine_run(c):
    from graphflow.engine.record import Recorder

    patterns = [f"{slot}[*]" if c.graph.slots[slot].role != "weight" else f"{slot}[*,*]" for slot in c.graph.slots]
    patterns += [f"{b.name}/x[*]" for b in c.graph.inputs]
    rec = Recorder(c.graph, patterns)
    run_engine(c.graph, c.protocol, c.params, c.xs, c.ys, c.steps, recorder=rec)
    return rec


def _assert_input_messages_match(c, rec, oracle) -> None:
    for b in c.graph.inputs:
        for i in np.nonzero(c.graph.fan_out(b.name) > 0)[0]:
            got = rec.node(f"{b.name}/x[{i}]")["message_in"][:, 0]
            want = np.stack([step["input_messages"][b.name][:, i] for step in oracle])
            np.testing.assert_allclose(got, want, **TOL, err_msg=f"{c.describe()}: {b.name}/x[{i}] message")


# The engine's recorder divides by a zero fan-out for input units that feed nothing (NaN, as the
# interpreter reports them, but with a RuntimeWarning).
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
@pytest.mark.parametrize("seed", range(8))
def test_every_message_matches_interpreter(seed):
    """Messages too, node by node (through the engine's Recorder): the outgoing message of every
    learner node, and (mean aggregation) the combined message every input unit receives."""
    c = random_case(700 + seed)
    oracle = Interpreter(c.graph, c.protocol).run(c.params, c.xs, c.ys)
    rec = _recorded_engine_run(c)
    interp = Interpreter(c.graph, c.protocol)
    for slot in c.graph.slots:
        for n, node_id in enumerate(interp.node_ids(slot)):
            got = rec.node(node_id)["message_out"][:, 0]  # [steps, B, k]
            want = np.stack([step["messages"][slot][:, n] for step in oracle])
            np.testing.assert_allclose(got, want, **TOL, err_msg=f"{c.describe()}: {node_id} message")
    if c.protocol.spec.aggregation == "mean":
        _assert_input_messages_match(c, rec, oracle)


def test_recorded_input_messages_follow_sum_aggregation():
    c = random_case(701)
    assert c.protocol.spec.aggregation == "sum"
    _assert_input_messages_match(c, _recorded_engine_run(c), Interpreter(c.graph, c.protocol).run(c.params, c.xs, c.ys))


# ----------------------------------------------------------------------------------------------
# A free-form graph equal to a dense one: the sparse gather / segment-sum path against the dense one


def _split_dense_spec(how: str, sharing: str) -> dict:
    """stack(3, Dense(4), ReLU(), Dense(2), L2Loss()) written as a free-form graph with the same
    block names: dense0 split into two weight blocks of complementary masks, dense2 as edges."""
    rng = np.random.default_rng(1)
    mask = (rng.random((3, 4)) < 0.5).astype(int)
    mask[0, 0], mask[1, 1] = 1, 0  # both halves non-empty
    first = {"mask": mask.tolist()}
    second = {"mask": (1 - mask).tolist()}
    if how == "edges":
        first = {"edges": [tuple(int(v) for v in e) for e in np.argwhere(mask)][::-1]}
        second = {"edges": [tuple(int(v) for v in e) for e in np.argwhere(1 - mask)][::-1]}
    all_edges = [(i, j) for i in range(4) for j in range(2)]
    return {"kind": "freeform", "sharing": sharing, "blocks": [
        {"kind": "input", "name": "input", "size": 3},
        {"kind": "neurons", "name": "dense0", "size": 4},
        {"kind": "weights", "name": "dense0", "src": "input", "dst": "dense0", **first},
        {"kind": "weights", "name": "dense0_rest", "src": "input", "dst": "dense0", **second},
        {"kind": "activation", "name": "relu1", "src": "dense0", "fn": "relu"},
        {"kind": "neurons", "name": "dense2", "size": 2},
        {"kind": "weights", "name": "dense2", "src": "relu1", "dst": "dense2", "edges": all_edges[::-1]},
        {"kind": "target", "name": "target", "size": 2},
        {"kind": "loss", "name": "loss3", "src": "dense2", "fn": "l2", "target": "target"},
    ]}


def _to_sparse(graph, dense_params: dict) -> dict:
    """The dense graph's parameters, each weight read at the (i, j) of the sparse blocks' edges."""
    out = {k: v for k, v in dense_params.items() if k.endswith("/b")}
    for w in graph.weights.values():
        i, j = w.edges()
        out[f"{w.name}/w"] = dense_params[f"{w.dst}/w"][..., i, j]
    return out


def _to_dense(graph, sparse_params: dict, like: dict) -> dict:
    out = {k: v for k, v in sparse_params.items() if k.endswith("/b")}
    for key, a in like.items():
        if key.endswith("/w"):
            out[key] = np.full_like(a, np.nan)
    for w in graph.weights.values():
        i, j = w.edges()
        out[f"{w.dst}/w"][..., i, j] = sparse_params[f"{w.name}/w"]
    return out


@pytest.mark.parametrize("how", ["mask", "edges"])
@pytest.mark.parametrize("kind", ["stateless", "stateful"])
@pytest.mark.parametrize("sharing", ["kind+norm", "user"])
def test_freeform_split_of_a_dense_graph_gives_the_dense_results(how, kind, sharing, backend):
    rng = np.random.default_rng(7)
    dense = gf.build(gf.stack(3, gf.Dense(4), gf.ReLU(), gf.Dense(2), gf.L2Loss(),
                              sharing="kind+norm" if sharing == "kind+norm" else "layer"))
    spec = _split_dense_spec(how, "kind+norm" if sharing == "kind+norm" else "layer")
    if sharing == "user":  # the two halves of dense0 share dense0's learner
        spec["groups"] = {"dense0/w": "dense0/w", "dense0_rest/w": "dense0/w"}
    sparse = gf.build(spec)
    assert not any(w.dense for w in sparse.weights.values())
    protocol = random_protocol(dense, random_learner_spec(rng, kind), rng)
    sparse_protocol = protocol.copy()
    if sharing == "user":  # normalization stays per slot: the second half gets dense0's
        sparse_protocol.norms["dense0_rest/w"] = dict(protocol.norms["dense0/w"])
    params = {"dense0/w": rng.normal(0, 0.7, (2, 3, 4)), "dense0/b": rng.normal(0, 0.3, (2, 4)),
              "dense2/w": rng.normal(0, 0.7, (2, 4, 2)), "dense2/b": rng.normal(0, 0.3, (2, 2))}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    xs = {"input": rng.normal(0, 1.5, (3, 2, 4, 3)).astype(np.float32)}
    ys = {"target": rng.normal(0, 1, (3, 2, 4, 2)).astype(np.float32)}

    want = run_engine(dense, protocol, params, xs, ys, 3, backend)
    got = run_engine(sparse, sparse_protocol, _to_sparse(sparse, params), xs, ys, 3, backend)
    for s in range(3):
        for field in ("outputs", "losses"):
            np.testing.assert_allclose(got[s][field]["loss3"], want[s][field]["loss3"], rtol=1e-5, atol=1e-6)
        back = _to_dense(sparse, got[s]["params"], want[s]["params"])
        for key in want[s]["params"]:
            np.testing.assert_allclose(back[key], want[s]["params"][key], rtol=1e-5, atol=1e-6, err_msg=f"step {s} {key}")


def test_weight_block_with_no_edges_is_inert():
    """An all-zero mask builds a weight block of zero nodes; engine and interpreter agree it does nothing."""
    spec = {"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 2}, {"kind": "neurons", "name": "h", "size": 2},
        {"kind": "weights", "name": "h", "src": "x", "dst": "h"},
        {"kind": "weights", "name": "h_none", "src": "x", "dst": "h", "mask": [[0, 0], [0, 0]]},
        {"kind": "activation", "name": "a", "src": "h", "fn": "tanh"},
        {"kind": "target", "name": "y", "size": 2}, {"kind": "loss", "name": "loss", "src": "a", "fn": "l2", "target": "y"},
    ]}
    g = gf.build(spec)
    assert g.weights["h_none"].size == 0
    rng = np.random.default_rng(0)
    protocol = random_protocol(g, random_learner_spec(rng, "stateful"), rng)
    params = {"h/w": rng.normal(size=(2, 2)).astype(np.float32), "h_none/w": np.zeros(0, np.float32),
              "h/b": np.zeros(2, np.float32)}
    xs, ys = rng.normal(size=(2, 3, 2)).astype(np.float32), rng.normal(size=(2, 3, 2)).astype(np.float32)
    oracle = Interpreter(g, protocol).run(params, xs, ys)
    engine = run_engine(g, protocol, params, {"x": xs}, {"y": ys}, 2)
    assert_trace_matches(engine, oracle, 0, "empty weight block")


def test_permuted_bias_edges_follow_the_spec():
    spec = {"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 2},
        {"kind": "neurons", "name": "h", "size": 2, "bias_edges": [(0, 1), (1, 0)]},
        {"kind": "weights", "name": "h", "src": "x", "dst": "h"},
        {"kind": "target", "name": "y", "size": 2}, {"kind": "loss", "name": "loss", "src": "h", "fn": "l2", "target": "y"},
    ]}
    g = gf.build(spec)
    protocol = Protocol.init(g, gf.LearnerSpec(message_size=2, hidden=1))
    params = {"h/w": np.eye(2, dtype=np.float32), "h/b": np.array([10.0, -10.0], np.float32)}  # b[0] feeds sum[1]
    xs = np.zeros((1, 1, 2), np.float32)
    oracle = Interpreter(g, protocol).run(params, xs, xs)
    np.testing.assert_allclose(oracle[0]["outputs"]["loss"], [[-10.0, 10.0]])
    engine = run_engine(g, protocol, params, {"x": xs}, {"y": xs}, 1)
    assert_trace_matches(engine, oracle, 0, "permuted bias edges")
