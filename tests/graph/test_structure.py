"""Built graphs: blocks, node and arrow counts, consumers and fan-out, waves."""

import networkx as nx
import pytest

import graphflow as gf
from graphflow.presets import mnist, sinusoid

from graphs import skip_two_losses


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


# ----------------------------------------------------------------------------------------------
# The block DAG kept on the graph


def scanned_consumers(graph, unit):
    """Oracle: scan every block for the ones reading ``unit`` as their src, in graph order."""
    return [b for b in graph.blocks if getattr(b, "src", None) == unit]


def scanned_incoming_weights(graph, neurons):
    return [w for w in graph.blocks if w.kind == "weights" and w.dst == neurons]


@pytest.mark.parametrize("make", [lambda: gf.build(mnist()), lambda: gf.build(sinusoid()), skip_two_losses],
                         ids=["mnist", "sinusoid", "skip_two_losses"])
def test_the_block_dag_is_kept_and_answers_consumer_and_producer_queries(make):
    from graphflow.graph.blocks import block_key

    graph = make()
    dag = graph.dag
    assert nx.is_frozen(dag) and nx.is_directed_acyclic_graph(dag)
    assert sorted(dag.nodes) == sorted(block_key(b) for b in graph.blocks)
    assert all(dag.nodes[block_key(b)]["block"] is b for b in graph.blocks)
    assert {via for _, _, via in dag.edges(data="via")} <= {"src", "dst", "target"}
    # the waves are the DAG's topological generations, blocks in graph order inside each
    assert [{block_key(b) for b in wave} for wave in graph.waves] == [set(g) for g in nx.topological_generations(dag)]
    assert [b for wave in graph.waves for b in wave] == list(graph.blocks)
    for name, unit in graph.units.items():
        assert graph.consumers(name) == scanned_consumers(graph, name)
        assert graph.incoming_weights(name) == scanned_incoming_weights(graph, name)
        fan_out = sum((c.fan_out() if c.kind == "weights" else 1 for c in scanned_consumers(graph, name)), 0)
        assert (graph.fan_out(name) == fan_out).all()


def test_consumer_queries_return_copies_and_know_nothing_of_unknown_blocks():
    graph = skip_two_losses()
    graph.consumers("h0").clear()
    assert [b.name for b in graph.consumers("h0")] == ["relu0"]
    assert graph.consumers("nope") == [] and graph.incoming_weights("nope") == []
    assert [(w.name, w.src) for w in graph.incoming_weights("h1")] == [("h1_from_input", "input"), ("h1", "relu0")]


def test_freeform_blocks_may_come_in_any_order():
    """Activation, softmax and loss blocks take their size from the block they read, which the
    spec may list later: every order of the blocks builds the same graph."""
    net = gf.FreeForm()
    h = net.neurons(4, name="h")
    net.connect(net.input(3, name="x"), h)
    out = net.neurons(2, name="out")
    net.connect(net.activation(h, "tanh", name="a"), out)
    net.loss(net.softmax(out, name="p"), "ce", name="xent")
    blocks = net.spec().model_dump()["blocks"]
    expected = gf.build(net)
    for order in (blocks[::-1], blocks[1:] + blocks[:1], sorted(blocks, key=lambda b: b["kind"])):
        graph = gf.build({"kind": "freeform", "blocks": order})
        assert graph.stats() == expected.stats()
        assert {n: b.size for n, b in graph.units.items()} == {n: b.size for n, b in expected.units.items()}
        assert [[b.name for b in w] for w in graph.waves][-2:] == [["p"], ["xent"]]


def test_block_sizes_of_a_spec_that_reads_in_a_cycle_are_zero_and_build_names_the_error():
    from graphflow.graph.build import block_sizes

    spec = {"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 2},
        {"kind": "activation", "name": "a", "src": "b", "fn": "relu"},
        {"kind": "activation", "name": "b", "src": "a", "fn": "relu"}]}
    assert [(b.name, b.units) for b in block_sizes(spec)] == [("x", 2), ("a", 0), ("b", 0)]
    with pytest.raises(gf.GraphError, match="activation 'a': src 'b' is an activation block; activations read neuron blocks"):
        gf.build(spec)
