"""The per-node interpreter against MPLP_SPEC.md, statement by statement.

The interpreter is the oracle of the engine tests, so it is checked here on its own: forward
values against plain matrix algebra, node rules against :mod:`graphflow.graph.kinds`, learner math
against :mod:`graphflow.learners.cells`, and the routing of every message (seed, replication,
aggregation across blocks, mean or sum) against the spec's wording.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.graph import kinds
from graphflow.graph.blocks import InputNodes, LossNodes, NeuronNodes, WeightNodes
from graphflow.learners import Protocol
from graphflow.learners.cells import gru_cell, stateless_cell
from graphflow.learners.protocol import slot_layout
from graphflow.reference import Interpreter
from graphflow.reference.interpreter import ACTIVATION_RULES, gru_learner, loss_rule, stateless_learner
from graphflow.reference.random_graphs import random_case, random_data, random_learner_spec, random_protocol
from graphs import skip_two_losses

MIXED = ["relu", "sigmoid", "tanh", "identity"]  # the skip graph's mixed activation


class LoggingInterpreter(Interpreter):
    """Logs what every learner call received: (step, slot, node, example) -> (incoming, states)."""

    def __init__(self, graph, protocol):
        super().__init__(graph, protocol)
        self.calls: dict[tuple, tuple[np.ndarray, dict]] = {}
        self.step_no = -1

    def step(self, *args, **kw):
        self.step_no += 1
        return super().step(*args, **kw)

    def learner_call(self, slot, node, example, incoming, node_states, carries):
        self.calls[(self.step_no, slot.key, node, example)] = (np.array(incoming), dict(node_states))
        return super().learner_call(slot, node, example, incoming, node_states, carries)


def setup(graph, kind="stateful", seed=0, aggregation=None, steps=2, batch=3):
    rng = np.random.default_rng(seed)
    spec = random_learner_spec(rng, kind)
    if aggregation:
        spec = spec.model_copy(update={"aggregation": aggregation})
    protocol = random_protocol(graph, spec, rng)
    params = {}
    for w in graph.weights.values():
        params[f"{w.name}/w"] = rng.normal(0, 0.7, (w.n_src, w.n_dst) if w.dense else (w.size,))
    for b in graph.units.values():
        if isinstance(b, NeuronNodes):
            params[f"{b.name}/b"] = rng.normal(0, 0.3, b.size)
    xs, ys = random_data(graph, rng, steps, batch)
    return protocol, params, xs, ys


# ----------------------------------------------------------------------------------------------
# Node rules


def test_activation_rules_agree_with_the_node_kinds():
    z = np.array([-800.0, -3.0, -1e-3, 0.0, 1e-3, 0.5, 3.0, 800.0])
    for fn, rule in ACTIVATION_RULES.items():
        with np.errstate(over="ignore"):
            want = kinds.ACTIVATIONS[fn](np, z)
        np.testing.assert_allclose([rule(float(v)) for v in z], want, rtol=1e-12, atol=0, err_msg=fn)
    assert set(ACTIVATION_RULES) == set(kinds.ACTIVATIONS)


@pytest.mark.parametrize("fn", ["l2", "l1", "ce"])
def test_loss_rules_agree_with_the_node_kinds(fn):
    for out, target in [(0.3, 1.0), (-2.0, 0.5), (1.5, 0.0), (1e-9, 1.0), (1.0, 1.0)]:
        value, states = loss_rule(fn, out, target)
        want_value, want_states = kinds.loss_forward(np, fn, np.float64(out), np.float64(target))
        assert value == pytest.approx(float(want_value), rel=1e-12)
        assert tuple(states) == kinds.LOSS_STATES[fn]
        assert list(states.values()) == pytest.approx([float(s) for s in want_states], rel=1e-12)


def test_forward_values_are_plain_matrix_algebra():
    g = gf.build(gf.stack(3, gf.Dense(4), gf.Activation(["relu", "tanh", "sigmoid", "step"]), gf.Dense(3), gf.Softmax(),
                          gf.CrossEntropy()))
    protocol, params, xs, ys = setup(g)
    trace = Interpreter(g, protocol).run(params, xs, ys)
    x = xs["input"][0].astype(np.float64)
    z0 = x @ params["dense0/w"] + params["dense0/b"]
    a = np.stack([np.maximum(z0[:, 0], 0), np.tanh(z0[:, 1]), 1 / (1 + np.exp(-z0[:, 2])), (z0[:, 3] > 0) * 1.0], axis=1)
    z2 = a @ params["dense2/w"] + params["dense2/b"]
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(trace[0]["outputs"]["loss4"], p, rtol=1e-12)
    np.testing.assert_allclose(trace[0]["losses"]["loss4"], -ys["target"][0] * np.log(np.clip(p, 1e-7, 1 - 1e-7)), rtol=1e-12)


def test_states_are_stored_as_the_spec_lists_them():
    g = skip_two_losses(MIXED)
    protocol, params, xs, ys = setup(g)
    interp = LoggingInterpreter(g, protocol)
    interp.run(params, xs, ys)
    for (step, key, node, example), (_, states) in interp.calls.items():
        assert tuple(states) == g.slots[key].states
    # a weight stores its own value (before this step's update) and its input; a bias its value and y
    _, w_states = interp.calls[(0, "h0/w", 5, 1)]  # h0/w[1,1]
    assert w_states == {"w": params["h0/w"][1, 1], "x": pytest.approx(float(xs["input"][0, 1, 1]))}
    _, b_states = interp.calls[(0, "h0/b", 2, 0)]
    y = float(xs["input"][0, 0] @ params["h0/w"][:, 2])
    assert b_states == {"b": params["h0/b"][2], "y": pytest.approx(y, rel=1e-12)}


# ----------------------------------------------------------------------------------------------
# Learner math


@pytest.mark.parametrize("seed", range(4))
def test_learner_math_agrees_with_the_batched_cells(seed):
    rng = np.random.default_rng(seed)
    g = gf.build(gf.stack(2, gf.Dense(2), gf.L2Loss()))
    for kind in ("stateless", "stateful"):
        spec = random_learner_spec(rng, kind)
        protocol = random_protocol(g, spec, rng)
        for slot in g.slots.values():
            layout = slot_layout(slot, spec)
            p = protocol.learners[slot.group]
            x = rng.normal(size=layout.input_width)
            p64 = {n: a.astype(np.float64) for n, a in p.items()}
            streams = [x[None, :layout.stream_widths[0]]] + [x[None, k:k + 1] for k in range(layout.stream_widths[0], len(x))]
            if kind == "stateless":
                upd, msg = stateless_learner(p64, x)
                want_upd, want_msg = stateless_cell(np, p64, streams, layout.stream_widths)
                np.testing.assert_allclose(msg, want_msg[0], rtol=1e-10, atol=1e-12)
                assert (upd is None) == (want_upd is None)
                if upd is not None:
                    assert upd == pytest.approx(float(want_upd[0, 0]), rel=1e-10, abs=1e-12)
            else:
                carry = rng.normal(size=layout.carry)
                got = gru_learner(p64, x, carry, spec.gru_mlp_activation)
                want = gru_cell(np, p64, streams, layout.stream_widths, carry[None], spec.gru_mlp_activation)
                np.testing.assert_allclose(got, want[0], rtol=1e-10, atol=1e-12)


def test_every_stream_is_standardized():
    """With every in_scale zero a learner sees only zeros: all nodes of a slot send the same message."""
    g = skip_two_losses(MIXED)
    protocol, params, xs, ys = setup(g, kind="stateless")
    for norm in protocol.norms.values():
        norm["in_scale"] = np.zeros_like(norm["in_scale"])
    record = Interpreter(g, protocol).run(params, xs, ys)[0]
    for key, messages in record["messages"].items():
        np.testing.assert_allclose(messages, np.broadcast_to(messages[0, 0], messages.shape), rtol=0, atol=0, err_msg=key)
    # and with one stream's scale restored, the nodes differ again
    for norm in protocol.norms.values():
        norm["in_scale"][-1] = 1.0
    record = Interpreter(g, protocol).run(params, xs, ys)[0]
    assert np.ptp(record["messages"]["h0/w"]) > 0


# ----------------------------------------------------------------------------------------------
# Message routing


def consumer_nodes(graph, unit: str, j: int) -> list[tuple[str, int]]:
    """(slot, node) of every node that reads unit j of ``unit``, across all blocks."""
    out = []
    for c in graph.consumers(unit):
        if isinstance(c, WeightNodes):
            i, _ = c.edges()
            out += [(f"{c.name}/w", int(k)) for k in np.nonzero(i == j)[0]]
        else:
            out.append((f"{c.name}/{c.label}", j))
    return out


@pytest.mark.parametrize("aggregation", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["stateless", "stateful"])
def test_messages_are_routed_as_the_spec_says(aggregation, kind):
    g = skip_two_losses(MIXED)
    protocol, params, xs, ys = setup(g, kind, aggregation=aggregation)
    interp = LoggingInterpreter(g, protocol)
    trace = interp.run(params, xs, ys)
    combine = np.mean if aggregation == "mean" else np.sum
    for (step, key, node, example), (incoming, _) in interp.calls.items():
        slot, sent = g.slots[key], trace[step]["messages"]
        if slot.role == "loss":  # seed: the one-dimensional message [l]
            np.testing.assert_allclose(incoming, [trace[step]["losses"][slot.block][example, node]], rtol=1e-15)
            continue
        if slot.role == "weight":  # replication: the message of the bias of its neuron, unchanged
            _, j = g.weights[slot.block].edges()
            np.testing.assert_array_equal(incoming, sent[f"{g.weights[slot.block].dst}/b"][example, j[node]])
            continue
        readers = consumer_nodes(g, slot.block, node)  # bias, activation, softmax: from all readers
        want = combine([sent[r][example, n] for r, n in readers], axis=0)
        np.testing.assert_allclose(incoming, want, rtol=1e-13, atol=1e-15, err_msg=f"{key}[{node}]")
    # the activation feeds weights of one block and a loss: its units hear both
    assert {s for s, _ in consumer_nodes(g, "mixed0", 0)} == {"h1/w", "loss1/loss"}
    # input units: the combined message of the weights of both blocks reading them
    for step, record in enumerate(trace):
        for i in range(3):
            readers = consumer_nodes(g, "input", i)
            want = combine([record["messages"][r][:, n] for r, n in readers], axis=0)
            np.testing.assert_allclose(record["input_messages"]["input"][:, i], want, rtol=1e-13)


def test_an_input_unit_that_feeds_nothing_receives_no_message():
    g = gf.build({"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 2}, {"kind": "neurons", "name": "h", "size": 1},
        {"kind": "weights", "name": "h", "src": "x", "dst": "h", "edges": [(1, 0)]},
        {"kind": "target", "name": "y", "size": 1}, {"kind": "loss", "name": "loss", "src": "h", "fn": "l1", "target": "y"}]})
    protocol, params, xs, ys = setup(g)
    received = Interpreter(g, protocol).run(params, xs, ys)[0]["input_messages"]["x"]
    assert np.isnan(received[:, 0]).all() and np.isfinite(received[:, 1]).all()


# ----------------------------------------------------------------------------------------------
# Updates


def test_update_is_scaled_shifted_batch_mean():
    g = gf.build(gf.stack(2, gf.Dense(3), gf.Sigmoid(), gf.Dense(1), gf.L2Loss()))
    protocol, params, xs, ys = setup(g, kind="stateless")

    def first_delta(out_mean, out_scale):
        p = protocol.copy()
        for norm in p.norms.values():
            if "out_mean" in norm:
                norm["out_mean"], norm["out_scale"] = np.float32(out_mean), np.float32(out_scale)
        after = Interpreter(g, p).run(params, xs, ys)[0]["params"]
        return {k: after[k] - params[k] for k in params}

    zero = first_delta(0.0, 0.0)
    assert all(not d.any() for d in zero.values())
    one = first_delta(0.0, 1.0)  # the raw batch-mean output of f
    assert all(np.abs(d).max() <= 1.0 for d in one.values())
    for key, d in first_delta(0.25, 0.5).items():
        np.testing.assert_allclose(d, (one[key] - 0.25) * 0.5, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["stateless", "stateful"])
def test_update_is_the_mean_over_the_batch(kind):
    """A batch of B copies of one example updates exactly as that example alone."""
    g = skip_two_losses(MIXED)
    protocol, params, xs, ys = setup(g, kind, batch=1)
    copies = lambda d: {k: np.repeat(v, 4, axis=1) for k, v in d.items()}  # noqa: E731
    alone = Interpreter(g, protocol).run(params, xs, ys)
    batch = Interpreter(g, protocol).run(params, copies(xs), copies(ys))
    for s in range(len(alone)):
        for key in params:
            np.testing.assert_allclose(batch[s]["params"][key], alone[s]["params"][key], rtol=1e-12, atol=1e-15)


def test_learners_see_the_parameters_from_before_the_update():
    g = gf.build(gf.stack(2, gf.Dense(2), gf.Tanh(), gf.Dense(1), gf.L1Loss()))
    protocol, params, xs, ys = setup(g)
    interp = LoggingInterpreter(g, protocol)
    trace = interp.run(params, xs, ys)
    for (step, key, node, example), (_, states) in interp.calls.items():
        slot = g.slots[key]
        if not slot.has_parameter:
            continue
        before = params if step == 0 else trace[step - 1]["params"]
        flat = before[key].reshape(-1)
        assert states[slot.states[0]] == flat[node]


@pytest.mark.parametrize("kind", ["stateless", "stateful"])
def test_carry_is_kept_per_node_and_example_across_steps(kind):
    """Same data, frozen parameters: only a stateful learner's carry makes step 2 differ from step 1."""
    g = skip_two_losses(MIXED)
    protocol, params, xs, ys = setup(g, kind)
    for norm in protocol.norms.values():
        if "out_scale" in norm:
            norm["out_scale"] = np.float32(0.0)
    same = lambda d: {k: np.stack([v[0], v[0]]) for k, v in d.items()}  # noqa: E731
    trace = Interpreter(g, protocol).run(params, same(xs), same(ys))
    for key, first in trace[0]["messages"].items():
        differs = not np.allclose(trace[1]["messages"][key], first, rtol=0, atol=1e-12)
        assert differs == (kind == "stateful"), key


# ----------------------------------------------------------------------------------------------
# Structure-only independence and errors


def test_spec_block_order_does_not_matter():
    base = skip_two_losses(MIXED).to_spec()
    shuffled = base.model_copy(update={"blocks": list(reversed(base.blocks))})
    a, b = gf.build(base), gf.build(shuffled)
    protocol, params, xs, ys = setup(a)
    ta, tb = Interpreter(a, protocol).run(params, xs, ys), Interpreter(b, protocol).run(params, xs, ys)
    for ra, rb in zip(ta, tb):
        for key in params:
            np.testing.assert_array_equal(ra["params"][key], rb["params"][key])


def test_errors_name_what_was_passed():
    g = skip_two_losses(MIXED)
    protocol, params, xs, ys = setup(g)
    interp = Interpreter(g, protocol)
    with pytest.raises(ValueError, match=r"h0/w: shape \(4, 3\), expected \(3, 4\)"):
        interp.run({**params, "h0/w": np.zeros((4, 3))}, xs, ys)
    with pytest.raises(ValueError, match="2 targets blocks; pass a dict by name"):
        interp.run(params, xs, ys["loss0_target"])
    with pytest.raises(ValueError, match=r"inputs 'input': shape \(2, 3, 2\)"):
        interp.run(params, {"input": xs["input"][..., :2]}, ys)


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_run_and_stay_finite(seed):
    c = random_case(seed)
    trace = Interpreter(c.graph, c.protocol).run(c.params, c.xs, c.ys)
    assert len(trace) == c.steps
    for record in trace:
        assert all(np.isfinite(v).all() for v in record["params"].values())
        assert set(record["losses"]) == {b.name for b in c.graph.units.values() if isinstance(b, LossNodes)}
        assert all(b.name in record["input_messages"] for b in c.graph.units.values() if isinstance(b, InputNodes))
