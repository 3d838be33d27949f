"""Layer constructors, stack() and quick_stack()."""

import pytest

import graphflow as gf
from graphflow.dsl.layers import quick_stack


def test_constructors_make_the_layer_specs():
    assert gf.Dense(3).units == 3 and gf.Dense(3, name="d").name == "d"
    assert [gf.ReLU().fn, gf.Sigmoid().fn, gf.Tanh().fn, gf.Step().fn, gf.Identity().fn] == \
        ["relu", "sigmoid", "tanh", "step", "identity"]
    assert gf.Activation(["relu", "tanh"]).fn == ["relu", "tanh"]
    assert [gf.L2Loss().fn, gf.L1Loss().fn, gf.CrossEntropy().fn, gf.Loss("l1").fn] == ["l2", "l1", "ce", "l1"]
    assert gf.Softmax(name="sm").name == "sm"


def test_stack_names_layers_by_kind_and_position():
    g = gf.build(gf.stack(2, gf.Dense(3), gf.Activation(["relu", "tanh", "relu"]), gf.Dense(2), gf.Softmax(),
                          gf.CrossEntropy()))
    assert list(g.units)[2:] == ["dense0", "mixed1", "dense2", "softmax3", "loss4"]
    assert g.units["mixed1"].fns == ("relu", "tanh", "relu")
    assert [g.units["mixed1"].fn_of(j) for j in range(3)] == ["relu", "tanh", "relu"]


def test_stack_passes_sharing_and_groups():
    spec = gf.stack(1, gf.Dense(1), gf.L2Loss(), sharing="kind+norm", groups={"dense0/w": "w"})
    assert (spec.sharing, spec.groups) == ("kind+norm", {"dense0/w": "w"})


def test_stack_errors_are_spec_errors_naming_the_field():
    with pytest.raises(gf.SpecError, match=r"invalid layer stack:\n  inputs: Input should be greater than 0 \(got 0\)"):
        gf.stack(0, gf.Dense(1), gf.L2Loss())
    with pytest.raises(gf.SpecError, match=r"sharing: Input should be 'layer', 'kind' or 'kind\+norm' \(got 'all'\)"):
        gf.stack(1, gf.Dense(1), gf.L2Loss(), sharing="all")


@pytest.mark.parametrize("sizes, activation, loss, kinds", [
    ([4, 3, 2], "relu", "ce", ["dense", "activation", "dense", "softmax", "loss"]),
    ([4, 3, 2], "tanh", "l2", ["dense", "activation", "dense", "loss"]),
    ([4, 2], "relu", "l1", ["dense", "loss"]),
    ([784, 1000, 1000, 10], "relu", "ce", ["dense", "activation", "dense", "activation", "dense", "softmax", "loss"]),
])
def test_quick_stack(sizes, activation, loss, kinds):
    spec = quick_stack(sizes, activation, loss)
    assert [layer.kind for layer in spec.layers] == kinds
    assert spec.inputs == sizes[0]
    assert [layer.units for layer in spec.layers if layer.kind == "dense"] == sizes[1:]
    assert all(layer.fn == activation for layer in spec.layers if layer.kind == "activation")


@pytest.mark.parametrize("args, message", [
    (([784],), r"layers \[784\]: give the input size and at least one layer size"),
    (([4, 0, 2],), r"layers\.0\.units: Input should be greater than 0 \(got 0\)"),
    (([4, 3, 2], "gelu"), r"layers\.1\.fn: Input should be 'relu', .* \(got 'gelu'\)"),
    (([4, 2], "relu", "hinge"), r"layers\.1\.fn: Input should be 'l2', 'l1' or 'ce' \(got 'hinge'\)"),
])
def test_quick_stack_errors(args, message):
    with pytest.raises(gf.SpecError, match=message):
        quick_stack(*args)
