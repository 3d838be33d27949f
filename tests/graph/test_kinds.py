"""Forward rules and stored states of every node kind (MPLP_SPEC.md, "Nodes and arrows")."""

import numpy as np
import pytest

from graphflow.graph import kinds


def test_node_kinds_are_a_closed_set_with_the_states_of_the_spec():
    assert kinds.NODE_KINDS == ("input", "weight", "neuron", "bias", "activation", "softmax", "loss", "target")
    assert kinds.WEIGHT.states == ("w", "x")
    assert kinds.BIAS.states == ("b", "y")
    assert kinds.ACTIVATION.states == ("z",)
    assert kinds.SOFTMAX.states == ("z", "t", "e", "s")
    assert kinds.LOSS_STATES == {"l2": ("out", "target", "diff"), "l1": ("out", "target"),
                                 "ce": ("p", "target", "log_p")}


def test_only_weights_and_biases_have_parameters_and_only_computing_nodes_learners():
    for kind in (kinds.WEIGHT, kinds.BIAS):
        assert kind.has_parameter and kind.has_learner
    for kind in (kinds.ACTIVATION, kinds.SOFTMAX, *kinds.LOSSES.values()):
        assert kind.has_learner and not kind.has_parameter
    for kind in (kinds.INPUT, kinds.TARGET, kinds.NEURON):
        assert not kind.has_learner and not kind.has_parameter and kind.states == ()


def test_weight_multiplies_its_input_and_stores_weight_and_input():
    w, x = np.array([0.5, -2.0, 3.0]), np.array([[4.0, 1.0, 0.0], [2.0, 2.0, 2.0]])  # batch of 2
    y, (w_state, x_state) = kinds.weight_forward(np, w, x)
    np.testing.assert_array_equal(y, [[2.0, -2.0, 0.0], [1.0, -4.0, 6.0]])
    assert w_state is w and x_state is x


def test_bias_adds_to_the_neuron_sum_and_stores_bias_and_input():
    y, b = np.array([[1.0, -1.0]]), np.array([0.25, 0.5])
    z, (b_state, y_state) = kinds.bias_forward(np, y, b)
    np.testing.assert_array_equal(z, [[1.25, -0.5]])
    assert b_state is b and y_state is y


@pytest.mark.parametrize("fn, expected", [
    ("relu", [0.0, 0.0, 2.0]),
    ("sigmoid", [1 / (1 + np.exp(3.0)), 0.5, 1 / (1 + np.exp(-2.0))]),
    ("tanh", [np.tanh(-3.0), 0.0, np.tanh(2.0)]),
    ("step", [0.0, 0.0, 1.0]),
    ("identity", [-3.0, 0.0, 2.0]),
])
def test_each_activation_and_its_stored_pre_activation(fn, expected):
    z = np.array([-3.0, 0.0, 2.0])
    a, (z_state,) = kinds.activation_forward(np, fn, z)
    np.testing.assert_allclose(a, expected, rtol=1e-12)
    assert z_state is z


def test_activations_keep_float32_and_work_on_scalars():
    z = np.array([-1.0, 1.0], dtype=np.float32)
    for fn in kinds.ACTIVATIONS:
        assert kinds.activation_forward(np, fn, z)[0].dtype == np.float32, fn
    assert kinds.ACTIVATIONS["step"](np, 0.5) == 1.0
    assert kinds.ACTIVATIONS["relu"](np, -0.5) == 0.0


def test_register_activation_adds_a_named_rule():
    kinds.register_activation("square_for_test", lambda xp, z: z * z)
    try:
        assert kinds.activation_forward(np, "square_for_test", np.array([3.0]))[0].tolist() == [9.0]
    finally:
        del kinds.ACTIVATIONS["square_for_test"]


def test_softmax_units_share_the_denominator_and_store_z_t_e_s():
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    out, (z_state, t, e, s) = kinds.softmax_forward(np, z)
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected)
    np.testing.assert_allclose(t, z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e, np.exp(t))
    assert s.shape == z.shape                     # every unit keeps its own copy of the sum
    np.testing.assert_allclose(s[0], [e[0].sum()] * 3)
    np.testing.assert_allclose(s[1], [3.0] * 3)
    assert z_state is z


def test_softmax_is_stable_for_large_inputs():
    out, (_, t, _, _) = kinds.softmax_forward(np, np.array([1000.0, 1001.0]))
    assert np.isfinite(out).all() and t.max() == 0.0
    np.testing.assert_allclose(out, [1 / (1 + np.e), np.e / (1 + np.e)])


def test_l2_loss_is_half_the_squared_difference():
    out, target = np.array([1.0, 0.5]), np.array([3.0, 0.0])
    loss, (o, t, d) = kinds.loss_forward(np, "l2", out, target)
    np.testing.assert_allclose(loss, [2.0, 0.125])
    np.testing.assert_allclose(d, [2.0, -0.5])      # target - out
    assert o is out and t is target


def test_l1_loss_is_the_absolute_difference():
    loss, states = kinds.loss_forward(np, "l1", np.array([1.0, 0.5]), np.array([3.0, 0.0]))
    np.testing.assert_allclose(loss, [2.0, 0.5])
    assert len(states) == len(kinds.LOSS_STATES["l1"])


def test_cross_entropy_clips_its_input_before_the_log():
    out = np.array([0.0, 0.5, 1.0])
    target = np.array([1.0, 1.0, 0.0])
    loss, (p, t, log_p) = kinds.loss_forward(np, "ce", out, target)
    np.testing.assert_allclose(p, [kinds.CE_CLIP, 0.5, 1 - kinds.CE_CLIP])
    np.testing.assert_allclose(log_p, np.log(p))
    np.testing.assert_allclose(loss, [-np.log(1e-7), np.log(2.0), 0.0])
    assert np.isfinite(loss).all() and t is target


def test_unknown_loss_is_named():
    with pytest.raises(KeyError, match="hinge"):
        kinds.loss_forward(np, "hinge", np.zeros(1), np.zeros(1))
