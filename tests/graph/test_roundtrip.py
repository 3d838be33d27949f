"""spec -> graph -> spec is the identity (Graph.to_spec), also through JSON text."""

import json

import pytest

import graphflow as gf
from graphflow.presets import PRESETS
from graphflow.spec import parse_graph_spec


def two_loss_freeform() -> gf.FreeFormSpec:
    """Skip connection, sparse mask, explicit edges and bias edges, mixed activations, two losses."""
    return parse_graph_spec({
        "kind": "freeform", "sharing": "kind", "groups": {"head/loss": "aux"},
        "blocks": [
            {"kind": "input", "name": "x", "size": 3},
            {"kind": "neurons", "name": "h", "size": 4, "bias_edges": [[1, 0], [0, 1], [2, 2], [3, 3]]},
            {"kind": "weights", "name": "h", "src": "x", "dst": "h", "mask": [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]],
             "fan_in": 3},
            {"kind": "activation", "name": "mix", "src": "h", "fn": ["relu", "tanh", "sigmoid", "step"]},
            {"kind": "neurons", "name": "out", "size": 2},
            {"kind": "weights", "name": "out", "src": "mix", "dst": "out", "edges": [[3, 1], [0, 0], [1, 1], [2, 0]]},
            {"kind": "weights", "name": "skip", "src": "x", "dst": "out"},
            {"kind": "target", "name": "y", "size": 2},
            {"kind": "loss", "name": "main", "src": "out", "fn": "l2", "target": "y"},
            {"kind": "neurons", "name": "cls", "size": 3},
            {"kind": "weights", "name": "cls", "src": "mix", "dst": "cls"},
            {"kind": "softmax", "name": "probs", "src": "cls"},
            {"kind": "target", "name": "label", "size": 3},
            {"kind": "loss", "name": "head", "src": "probs", "fn": "ce", "target": "label"},
        ],
    })


SPECS = {
    **{f"preset-{name}": make for name, make in PRESETS.items()},
    "stack-named-mixed": lambda: gf.stack(2, gf.Dense(3, name="hid"), gf.Activation(["relu", "tanh", "relu"]),
                                          gf.Dense(2), gf.Softmax(name="sm"), gf.CrossEntropy(),
                                          sharing="kind+norm", groups={"dense2/w": "last"}),
    "stack-one-item-fn-list": lambda: gf.stack(1, gf.Dense(1), gf.Activation(["tanh"]), gf.Dense(1), gf.L1Loss()),
    "freeform-two-losses": two_loss_freeform,
}


@pytest.mark.parametrize("make", SPECS.values(), ids=SPECS.keys())
def test_spec_graph_spec_is_the_identity(make):
    spec = make()
    assert gf.build(spec).to_spec() == spec


@pytest.mark.parametrize("make", SPECS.values(), ids=SPECS.keys())
def test_round_trip_through_json_text(make):
    spec = make()
    text = spec.model_dump_json()
    rebuilt = gf.build(parse_graph_spec(text)).to_spec()
    assert rebuilt == spec
    assert json.loads(rebuilt.model_dump_json()) == json.loads(text)


def test_round_trip_keeps_the_connectivity_form_as_written():
    back = gf.build(two_loss_freeform()).to_spec()
    blocks = {(b.kind, b.name): b for b in back.blocks}
    assert blocks["weights", "h"].mask == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]] and blocks["weights", "h"].edges is None
    assert blocks["weights", "out"].edges == [(3, 1), (0, 0), (1, 1), (2, 0)]      # in the order given
    assert blocks["weights", "skip"].mask is None and blocks["weights", "skip"].edges is None
    assert blocks["neurons", "h"].bias_edges == [(1, 0), (0, 1), (2, 2), (3, 3)]
    assert blocks["activation", "mix"].fn == ["relu", "tanh", "sigmoid", "step"]
    assert blocks["weights", "h"].fan_in == 3


def test_two_losses_in_one_free_form_graph():
    g = gf.build(two_loss_freeform())
    assert [(b.name, b.fn, b.src, b.target) for b in g.losses] == [("main", "l2", "out", "y"), ("head", "ce", "probs", "label")]
    assert g.stats()["nodes"]["loss"] == 5 and g.stats()["nodes"]["target"] == 5
    assert g.groups["aux"] == ["head/loss"] and g.groups["main/loss"] == ["main/loss"]
    assert sorted(g.groups["W"]) == ["cls/w", "h/w", "out/w", "skip/w"]
