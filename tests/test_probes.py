"""Generalization probes: a protocol moved onto another graph at meta-test time
(graphflow.learners.transfer, graphflow.api.probe_protocol and evaluate(graph=, activations=))."""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.api import TrainedProtocol, evaluate, probe_protocol
from graphflow.errors import GraphflowError
from graphflow.learners import Protocol
from graphflow.learners.transfer import transfer_protocol
from graphflow.spec import parse_experiment_spec
from graphflow.tasks.mnist import write_idx


def _trained(graph_spec, learner, task=None, steps=2, shots=4) -> TrainedProtocol:
    graph = gf.build(graph_spec)
    protocol = Protocol.init(graph, learner, seed=3)
    exp = parse_experiment_spec({"name": "probe", "graph": graph_spec.model_dump(mode="json"),
                                 "learner": learner.model_dump(mode="json"), "task": task or {"kind": "sinusoid"},
                                 "meta": {"inner_steps": steps, "shots": shots}})
    return TrainedProtocol(None, exp, graph, protocol, None, {"kind": "test"})


LEARNER = gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4))


def test_moving_a_protocol_onto_its_own_graph_changes_nothing():
    trained = _trained(gf.stack(1, gf.Dense(5), gf.ReLU(), gf.Dense(1), gf.L2Loss()), LEARNER)
    same = probe_protocol(trained, gf.stack(1, gf.Dense(5), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    for key, a in trained.protocol.flat().items():
        np.testing.assert_array_equal(same.protocol.flat()[key], a)
    before, after = evaluate(trained, tasks=3, seed=1), evaluate(same, tasks=3, seed=1)
    assert before["graphflow"].mean == after["graphflow"].mean


def test_a_swapped_activation_keeps_the_learners_and_changes_the_network():
    trained = _trained(gf.stack(1, gf.Dense(5), gf.Sigmoid(), gf.Dense(1), gf.L2Loss()), LEARNER)
    probe = probe_protocol(trained, activations={"sigmoid": "step"})
    assert "step1/act" in probe.graph.groups and "sigmoid1/act" not in probe.graph.groups
    for name, a in trained.protocol.learners["sigmoid1/act"].items():
        np.testing.assert_array_equal(probe.protocol.learners["step1/act"][name], a)
    assert probe.experiment.graph.layers[1].fn == "step"
    plain, stepped = evaluate(trained, tasks=3, seed=1), evaluate(probe, tasks=3, seed=1)
    assert plain["graphflow"].mean[0] != stepped["graphflow"].mean[0]  # another network from the start
    # backprop through a step: no gradient reaches the first layer; the protocol still updates it
    assert np.isfinite(stepped["graphflow"].mean).all()


def test_layer_sizes_change_freely_and_missing_groups_are_named():
    trained = _trained(gf.stack(1, gf.Dense(5), gf.ReLU(), gf.Dense(1), gf.L2Loss()), LEARNER)
    wider = probe_protocol(trained, gf.stack(1, gf.Dense(40), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    assert wider.graph.units["dense0"].size == 40
    with pytest.raises(GraphflowError, match=r"learner group relu3/act: the protocol has no group of that name or at that position \(it has: dense0/w, "):
        probe_protocol(trained, gf.stack(1, gf.Dense(5), gf.ReLU(), gf.Dense(5), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    with pytest.raises(GraphflowError, match=r"activations: the graph has no tanh activation \(it has: relu\)"):
        probe_protocol(trained, activations={"tanh": "step"})
    with pytest.raises(GraphflowError, match="activation"):
        probe_protocol(trained, activations={"relu": "no-such-function"})


def test_transfer_refuses_a_learner_of_other_widths():
    small = gf.build(gf.stack(1, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    protocol = Protocol.init(small, LEARNER)
    other = Protocol.init(small, gf.LearnerSpec(hidden=3, message_size=2, mlp_hidden=(4, 4)))
    moved = Protocol(LEARNER, other.learners, protocol.norms)
    with pytest.raises(GraphflowError, match=r"protocol array learner::.* does not fit the target graph"):
        transfer_protocol(moved, small, small)


def test_mnist_probe_reads_images_at_the_graph_s_input_size(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (8100, 28, 28)).astype(np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 8100).astype(np.uint8))
    spec = gf.stack(16, gf.Dense(3), gf.Sigmoid(), gf.Dense(10), gf.Softmax(), gf.CrossEntropy(), sharing="kind")
    trained = _trained(spec, LEARNER, task={"kind": "mnist", "data_dir": str(tmp_path)}, steps=1, shots=2)
    big = gf.stack(784, gf.Dense(6), gf.Step(), gf.Dense(10), gf.Softmax(), gf.CrossEntropy(), sharing="kind")
    curves = evaluate(trained, tasks=2, seed=0, graph=big)
    assert curves["graphflow"].metric == "accuracy" and len(curves["graphflow"].mean) == 2
    odd = gf.stack(20, gf.Dense(3), gf.Sigmoid(), gf.Dense(10), gf.Softmax(), gf.CrossEntropy(), sharing="kind")
    with pytest.raises(GraphflowError, match="20 inputs are not a square"):
        evaluate(trained, tasks=1, graph=odd)
