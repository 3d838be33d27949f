"""Built graphs: blocks, node and arrow counts, consumers and fan-out, waves."""

import networkx as nx
import pytest

import graphflow as gf
from graphflow.presets import mnist, sinusoid


def arrows_by_direction(graph):
    """Oracle: count the arrows of the per-scalar networkx view one by one."""
    view = graph.to_networkx()
    counts = {"forward": 0, "backward": 0}
    for _, _, data in view.edges(data=True):
        counts[data["direction"]] += 1
    return counts


def test_mnist_graph_counts():
    stats = gf.build(mnist()).stats()
    assert stats["nodes"] == {"input": 144, "weight": 144 * 50 + 50 * 10, "neuron": 60, "bias": 60,
                              "activation": 50, "softmax": 10, "loss": 10, "target": 10}
    assert stats["total_nodes"] == 8044
    # weights: input -> weight -> sum; sum -> bias; act; softmax: every z -> every unit; loss: src and target
    assert stats["forward_arrows"] == 2 * 7700 + 60 + 50 + 10 * 10 + 2 * 10
    # weights: bias -> weight (replication) and weight -> input (aggregation); one per act, softmax, loss node
    assert stats["backward_arrows"] == 2 * 7700 + 50 + 10 + 10


def test_sinusoid_graph_counts():
    stats = gf.build(sinusoid()).stats()
    assert stats["nodes"]["weight"] == 20 + 400 + 20
    assert stats["nodes"]["bias"] == 41 and stats["nodes"]["activation"] == 40 and stats["nodes"]["loss"] == 1
    assert stats["learner_groups"] == 9     # 3 weight, 3 bias, 2 activation, 1 loss


@pytest.mark.parametrize("spec", [
    gf.stack(3, gf.Dense(4), gf.ReLU(), gf.Dense(2), gf.L2Loss()),
    gf.stack(3, gf.Dense(4), gf.Activation(["relu", "tanh", "step", "identity"]), gf.Dense(3), gf.Softmax(),
             gf.CrossEntropy()),
    gf.stack(2, gf.Dense(2), gf.L1Loss()),
], ids=["relu-l2", "mixed-softmax-ce", "linear-l1"])
def test_stats_arrow_counts_match_the_per_scalar_view(spec):
    graph = gf.build(spec)
    stats = graph.stats()
    counted = arrows_by_direction(graph)
    assert (stats["forward_arrows"], stats["backward_arrows"]) == (counted["forward"], counted["backward"])
    assert stats["total_nodes"] == graph.to_networkx().number_of_nodes()


def test_forward_view_is_acyclic_and_its_depth_matches_the_layers():
    graph = gf.build(gf.stack(3, gf.Dense(4), gf.ReLU(), gf.Dense(2), gf.L2Loss()))
    view = graph.to_networkx()
    forward = nx.DiGraph([(u, v) for u, v, d in view.edges(data=True) if d["direction"] == "forward"])
    assert nx.is_directed_acyclic_graph(forward)
    # x -> w -> sum -> b -> relu -> w -> sum -> b -> loss
    assert nx.dag_longest_path_length(forward) == 8


def test_backward_arrows_replicate_bias_messages_and_aggregate_at_the_inputs():
    graph = gf.build(gf.stack(3, gf.Dense(2), gf.L2Loss()))
    view = graph.to_networkx()
    backward = {(u, v) for u, v, d in view.edges(data=True) if d["direction"] == "backward"}
    assert {v for u, v in backward if u == "dense0/b[1]"} == {"dense0/w[0,1]", "dense0/w[1,1]", "dense0/w[2,1]"}
    assert {u for u, v in backward if v == "input/x[2]"} == {"dense0/w[2,0]", "dense0/w[2,1]"}
    assert ("loss1/loss[0]", "dense0/b[0]") in backward


def test_softmax_units_read_every_input_of_the_layer():
    graph = gf.build(gf.stack(2, gf.Dense(3), gf.Softmax(), gf.CrossEntropy()))
    view = graph.to_networkx()
    feeding = {u for u, v, d in view.in_edges("softmax1/unit[2]", data=True) if d["direction"] == "forward"}
    assert feeding == {"dense0/b[0]", "dense0/b[1]", "dense0/b[2]"}


def test_blocks_waves_and_consumers():
    graph = gf.build(mnist())
    names = [[b.name if b.kind != "weights" else f"weights:{b.name}" for b in wave] for wave in graph.waves]
    assert names == [["input", "target"], ["weights:dense0"], ["dense0"], ["sigmoid1"], ["weights:dense2"],
                     ["dense2"], ["softmax3"], ["loss4"]]
    assert [b.name for b in graph.consumers("sigmoid1")] == ["dense2"]
    assert graph.fan_out("input").tolist() == [50] * 144
    assert graph.fan_out("dense2").tolist() == [1] * 10
    assert [w.name for w in graph.incoming_weights("dense2")] == ["dense2"]
    assert [b.name for b in graph.inputs] == ["input"] and [b.name for b in graph.losses] == ["loss4"]
    assert repr(graph) == "Graph(8044 nodes, 9 blocks, 5 learner groups)"


def test_build_accepts_specs_dicts_json_and_builders():
    spec = gf.stack(2, gf.Dense(1), gf.L2Loss())
    from_spec = gf.build(spec).stats()
    assert gf.build(spec.model_dump()).stats() == from_spec
    assert gf.build(spec.model_dump_json()).stats() == from_spec
    net = gf.FreeForm()
    net.loss(net.neurons(1), "l2")
    net.connect(net.input(2), gf.dsl.Units("h0"))
    assert gf.build(net).stats()["nodes"]["weight"] == 2
    with pytest.raises(gf.GraphError, match="cannot build a graph from int"):
        gf.build(3)


def test_data_by_block_errors_are_typed_data_errors():
    from graphflow.errors import DataError
    from graphflow.graph import data_by_block

    g = gf.build({"kind": "freeform", "blocks": [
        {"kind": "input", "name": "a", "size": 1}, {"kind": "input", "name": "b", "size": 1},
        {"kind": "neurons", "name": "h", "size": 1}, {"kind": "weights", "name": "h", "src": "a", "dst": "h"},
        {"kind": "target", "name": "y", "size": 1}, {"kind": "loss", "name": "l", "src": "h", "target": "y", "fn": "l2"}]})
    with pytest.raises(DataError, match="inputs: this graph has 2 inputs blocks; pass a dict by name"):
        data_by_block([[0.0]], g.inputs, "inputs")
    with pytest.raises(DataError, match="inputs: no data for block 'b'"):
        data_by_block({"a": [[0.0]]}, g.inputs, "inputs")
    assert data_by_block([[0.0]], g.targets, "targets") == {"y": [[0.0]]}
