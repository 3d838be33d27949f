"""Structural validation: every error names the block, node or field the user wrote."""

import re

import pytest

import graphflow as gf
from graphflow.errors import GraphflowError

X = {"kind": "input", "name": "x", "size": 3}
H = {"kind": "neurons", "name": "h", "size": 2}
W = {"kind": "weights", "name": "h", "src": "x", "dst": "h"}
T = {"kind": "target", "name": "t", "size": 2}
L = {"kind": "loss", "name": "loss", "src": "h", "fn": "l2", "target": "t"}
A = {"kind": "activation", "name": "a", "src": "h", "fn": "relu"}


def freeform(*blocks, **fields):
    return {"kind": "freeform", "blocks": list(blocks), **fields}


def stack(*layers, inputs=2):
    return {"kind": "stack", "inputs": inputs, "layers": list(layers)}


def dense(units, **kw):
    return {"kind": "dense", "units": units, **kw}


def test_the_base_graph_is_valid():
    assert gf.build(freeform(X, H, W, T, L)).stats()["nodes"]["weight"] == 6


CASES = {
    # cycles
    "cycle through an activation": (
        freeform(X, H, W, A, {"kind": "weights", "name": "back", "src": "a", "dst": "h"}, T, L),
        "cycle: h -> a -> weights:back -> h"),
    "self loop": (
        freeform(X, H, W, {"kind": "weights", "name": "rec", "src": "h", "dst": "h"}, T, L),
        "cycle: h -> weights:rec -> h"),
    # dangling references and nodes
    "weights from a missing block": (
        freeform(X, H, {**W, "src": "nope"}, T, L),
        "weights 'h': src 'nope' is not a block of this graph (dangling reference)"),
    "weights into a missing block": (
        freeform(X, H, W, {"kind": "weights", "name": "w2", "src": "x", "dst": "nope"}, T, L),
        "weights 'w2': dst 'nope' is not a block of this graph (dangling reference)"),
    "loss of a missing block": (
        freeform(X, H, W, T, {**L, "src": "nope"}),
        "loss 'loss': src 'nope' is not a block of this graph (dangling reference)"),
    "missing target": (
        freeform(X, H, W, T, {**L, "target": "nope"}),
        "loss 'loss': target 'nope' is not a block of this graph (dangling reference)"),
    "neurons that feed nothing": (
        freeform(X, H, W, {"kind": "neurons", "name": "g", "size": 2},
                 {"kind": "weights", "name": "g", "src": "x", "dst": "g"}, T, L),
        "dangling node: g/b[0], g/b[1] feeds nothing (no path to a loss"),
    "activation that feeds nothing": (
        freeform(X, H, W, A, T, L),
        "dangling node: a/act[0], a/act[1] feeds nothing"),
    "neuron without incoming weight": (
        freeform(X, H, {**W, "mask": [[1, 0], [1, 0], [1, 0]]}, T, L),
        "dangling node: h/sum[1] has no incoming weight (fan-in 0)"),
    "edge from a unit that does not exist": (
        freeform(X, H, {**W, "edges": [[5, 0], [0, 1]]}, T, L),
        "weights 'h': edge (5, 0) reads x[5], which does not exist ('x' has 3 units; dangling node)"),
    "edge into a neuron that does not exist": (
        freeform(X, H, {**W, "edges": [[0, 0], [0, 2]]}, T, L),
        "weights 'h': edge (0, 2) feeds h/sum[2], which does not exist ('h' has 2 neurons; dangling node)"),
    "bias edge to a neuron that does not exist": (
        freeform(X, {**H, "bias_edges": [[0, 0], [1, 5]]}, W, T, L),
        "neurons 'h': bias edge (1, 5) names neuron 5, which does not exist (size 2; dangling node)"),
    # duplicates
    "duplicate block name": (
        freeform(X, H, W, T, L, {"kind": "target", "name": "h", "size": 2}),
        "duplicate block 'h' (a neurons block and a target block)"),
    "duplicate weights block": (
        freeform(X, H, W, W, T, L), "duplicate weights block 'h'"),
    "weights named like another block": (
        freeform(X, H, W, T, L, {"kind": "weights", "name": "t", "src": "x", "dst": "h"}),
        "duplicate block 't': a weights block may share its name only with its dst neurons"),
    "duplicate edge": (
        freeform(X, H, {**W, "edges": [[0, 0], [1, 1], [0, 0]]}, T, L),
        "weights 'h': duplicate node h/w[0,0] (edge (0, 0) listed twice)"),
    "duplicate layer name": (
        stack(dense(2, name="a"), {"kind": "activation", "fn": "relu", "name": "a"}, dense(1), {"kind": "loss", "fn": "l2"}),
        "layer 1: duplicate layer name 'a'"),
    # fan-in
    "mask with too few rows": (
        freeform(X, H, {**W, "mask": [[1, 1], [1, 1]]}, T, L),
        "weights 'h': mask has 2 rows but src 'x' has 3 units (fan-in mismatch)"),
    "mask row too short": (
        freeform(X, H, {**W, "mask": [[1, 1], [1, 1], [1]]}, T, L),
        "weights 'h': mask row 2 has 1 entries but dst 'h' has 2 neurons"),
    "mask not 0/1": (
        freeform(X, H, {**W, "mask": [[1, 1], [1, 2], [1, 1]]}, T, L),
        "weights 'h': mask entries must be 0 or 1"),
    "declared fan-in": (
        freeform(X, H, {**W, "fan_in": 4}, T, L),
        "weights 'h': declared fan-in 4 does not match src 'x' with 3 units"),
    "mask and edges": (
        freeform(X, H, {**W, "mask": [[1, 1]] * 3, "edges": [[0, 0]]}, T, L),
        "weights 'h': give a mask or edges, not both"),
    # biases
    "bias with two neurons": (
        freeform(X, {**H, "bias_edges": [[0, 0], [0, 1]]}, W, T, L),
        "h/b[0]: a bias feeds exactly one neuron, this one feeds 2: h/sum[0], h/sum[1]"),
    "neuron with two biases": (
        freeform(X, {**H, "bias_edges": [[0, 0], [1, 0]]}, W, T, L),
        "h/sum[0]: every neuron has exactly one bias, this one has 2"),
    # losses
    "loss with no target": (
        freeform(X, H, W, T, {**L, "target": None}),
        "loss 'loss': no target (every loss node compares its input with a target node)"),
    "target of the wrong size": (
        freeform(X, H, W, {**T, "size": 3}, L),
        "loss 'loss': target 't' has 3 units but src 'h' has 2"),
    "target that is not a target block": (
        freeform(X, H, W, T, {**L, "target": "x"}),
        "loss 'loss': target 'x' is an input block; the target must be a target block"),
    "graph without a loss": (freeform(X, H, W), "the graph has no loss block"),
    "graph without an input": (freeform(H, T, L), "the graph has no input block"),
    "stack with two losses": (
        stack(dense(2), {"kind": "loss", "fn": "l2"}, {"kind": "loss", "fn": "l2"}),
        "stack: exactly one loss layer, and it must be the last layer (loss layers at positions [1, 2] of 3)"),
    "stack without loss": (stack(dense(2)), "loss layers at positions [] of 1"),
    # wiring kinds
    "activation of an input": (
        freeform(X, H, W, T, L, {**A, "src": "x"}),
        "activation 'a': src 'x' is an input block; activations read neuron blocks"),
    "activation of an activation": (
        freeform(X, H, W, T, {**L, "src": "a2"}, A, {"kind": "activation", "name": "a2", "src": "a", "fn": "relu"}),
        "activation 'a2': src 'a' is an activation block; activations read neuron blocks"),
    "weights into an activation": (
        freeform(X, H, W, A, {"kind": "weights", "name": "w2", "src": "x", "dst": "a"}, T, {**L, "src": "a"}),
        "weights 'w2': dst 'a' is an activation block; weights sum into a neuron block"),
    "weights from a target": (
        freeform(X, H, W, T, L, {"kind": "weights", "name": "wt", "src": "t", "dst": "h"}),
        "weights 'wt': src 't' is a target block"),
    "stack activation first": (
        stack({"kind": "activation", "fn": "relu"}, dense(2), {"kind": "loss", "fn": "l2"}),
        "layer 0 (relu0): an activation must follow a dense layer, not 'input'"),
    "stack activation after activation": (
        stack(dense(2), {"kind": "activation", "fn": "relu"}, {"kind": "activation", "fn": "tanh"}, dense(1),
              {"kind": "loss", "fn": "l2"}),
        "layer 2 (tanh2): an activation must follow a dense layer, not 'relu1'"),
    "stack softmax after activation": (
        stack(dense(2), {"kind": "activation", "fn": "relu"}, {"kind": "softmax"}, {"kind": "loss", "fn": "ce"}),
        "layer 2 (softmax2): a softmax must follow a dense layer, not 'relu1'"),
    "stack loss right after the input": (
        stack({"kind": "loss", "fn": "l2"}), "layer 0 (loss0): a loss needs a dense layer before it"),
    "mixed activation of the wrong length": (
        stack(dense(2), {"kind": "activation", "fn": ["relu", "tanh", "relu"]}, dense(1), {"kind": "loss", "fn": "l2"}),
        "mixed1: 3 activation functions for 2 units (give one, or one per unit)"),
    # learner groups
    "weights and biases in one group": (
        freeform(X, H, W, T, L, groups={"h/w": "g", "h/b": "g"}),
        "learner group 'g' mixes node kinds that cannot share f and g: h/w (weight), h/b (bias)"),
    "stack weights and biases in one group": (
        {**stack(dense(2), {"kind": "loss", "fn": "l2"}), "groups": {"dense0/w": "g", "dense0/b": "g"}},
        "learner group 'g' mixes node kinds that cannot share f and g: dense0/w (weight), dense0/b (bias)"),
}


@pytest.mark.parametrize("spec, message", CASES.values(), ids=CASES.keys())
def test_structural_errors_name_the_culprit(spec, message):
    with pytest.raises(gf.GraphError, match=re.escape(message)):
        gf.build(spec)


def test_graph_errors_are_value_errors_and_graphflow_errors():
    with pytest.raises(ValueError):
        gf.build(freeform(X, H, W))
    assert issubclass(gf.GraphError, GraphflowError) and issubclass(gf.SpecError, GraphflowError)


def test_forward_references_resolve_in_any_block_order():
    reordered = freeform({**L, "src": "a"}, A, T, W, H, X)
    g = gf.build(reordered)
    assert g.stats()["nodes"]["activation"] == 2
    assert g.losses[0].src == "a"
