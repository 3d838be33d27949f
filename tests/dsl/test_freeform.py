"""The free-form DSL: single neurons, skip connections, sparse masks, mixed activations, several losses."""

import pytest

import graphflow as gf
from graphflow.dsl import Units


def test_default_names_and_handles():
    net = gf.FreeForm()
    x = net.input(3)
    h = net.neurons(4)
    a = net.activation(h, "tanh")
    s = net.softmax(net.neurons(2))
    loss = net.loss(s, "ce")
    assert (x, h, a, s, loss) == (Units("input", size=3), Units("h0", size=4), Units("tanh0", size=4),
                                  Units("softmax0", size=2), Units("loss0", size=2))
    assert [b["name"] for b in net.spec().model_dump()["blocks"]] == ["input", "h0", "tanh0", "h1", "softmax0",
                                                                        "loss0_target", "loss0"]


def test_default_names_skip_names_given_explicitly():
    net = gf.FreeForm()
    assert net.neurons(1, name="h0").block == "h0"
    assert net.neurons(1).block == "h1"
    assert net.input(1).block == "input" and net.input(1).block == "input0"


def test_units_indexing():
    h = Units("h", size=5)
    assert h[2].index == (2,) and h[-1].index == (4,)
    assert h[1:3].index == (1, 2) and h[3:].index == (3, 4) and h[::2].index == (0, 2, 4)
    assert h[[0, 4]].index == (0, 4)
    assert str(h[1]) == "h" and h[1].size == 5
    with pytest.raises(IndexError, match=r"h\[5\]: 'h' has 5 units"):
        h[5]
    with pytest.raises(IndexError, match="the size of 'g' is unknown; give the end"):
        Units("g")[2:]
    assert Units("g")[0:2].index == (0, 1)


def test_connect_whole_blocks_densely_or_through_a_mask():
    net = gf.FreeForm()
    x, h = net.input(3), net.neurons(2)
    assert net.connect(x, h, mask=[[1, 0], [0, 1], [True, False]]) == "h0"
    assert net.connect(x, h) == "h0_from_input"          # a second block into h0 gets its own name
    net.loss(h, "l2")
    blocks = {b.name: b for b in net.spec().blocks if b.kind == "weights"}
    assert blocks["h0"].mask == [[1, 0], [0, 1], [1, 0]] and blocks["h0_from_input"].mask is None
    assert gf.build(net).stats()["nodes"]["weight"] == 3 + 6


def test_connect_individual_neurons():
    net = gf.FreeForm()
    x, h = net.input(3), net.neurons(2)
    net.connect(x[0], h[1])
    net.connect(x[1:], h[0])                               # all pairs of the given units
    net.connect(x[0], h[1])                                # already there: no duplicate
    net.loss(h, "l2")
    (weights,) = [b for b in net.spec().blocks if b.kind == "weights"]
    assert weights.edges == [(0, 1), (1, 0), (2, 0)]
    g = gf.build(net)
    assert [g.node_id("h0/w", k) for k in range(3)] == ["h0/w[0,1]", "h0/w[1,0]", "h0/w[2,0]"]


def test_adding_single_weights_to_a_masked_block_keeps_the_mask_edges():
    net = gf.FreeForm()
    x, h = net.input(2), net.neurons(2)
    net.connect(x, h, mask=[[1, 0], [0, 1]])
    net.connect(x[1], h[0])
    net.loss(h, "l2")
    (weights,) = [b for b in net.spec().blocks if b.kind == "weights"]
    assert weights.mask is None and weights.edges == [(0, 0), (1, 1), (1, 0)]


def test_skip_connection_sparse_mask_and_mixed_activations():
    net = gf.FreeForm()
    x = net.input(3)
    h = net.neurons(4)
    net.connect(x, h, mask=[[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    a = net.activation(h, ["relu", "relu", "tanh", "sigmoid"])
    out = net.neurons(1)
    net.connect(a, out)
    net.connect(x, out)                                    # skip connection
    net.loss(out, "l2")
    g = gf.build(net)
    assert {w.name: (w.src, w.dst, w.size) for w in g.weights.values()} == {
        "h0": ("input", "h0", 6), "h1": ("mixed0", "h1", 4), "h1_from_input": ("input", "h1", 3)}
    assert g.units["mixed0"].fns == ("relu", "relu", "tanh", "sigmoid")
    assert g.fan_out("input").tolist() == [2 + 1, 2 + 1, 2 + 1]
    assert g.select("h1_from_input/w[*,0]").ids() == ["h1_from_input/w[0,0]", "h1_from_input/w[1,0]",
                                                       "h1_from_input/w[2,0]"]


def test_two_losses_in_one_free_form_graph():
    net = gf.FreeForm()
    x = net.input(4)
    h = net.neurons(3)
    net.connect(x, h)
    regression = net.neurons(1, name="value")
    net.connect(net.activation(h, "relu"), regression)
    classes = net.neurons(2, name="logits")
    net.connect(x, classes)
    net.loss(regression, "l2", name="mse")
    labels = net.target(2, name="labels")
    net.loss(net.softmax(classes), "ce", target=labels, name="xent")
    g = gf.build(net)
    assert sorted((b.name, b.fn, b.target) for b in g.losses) == [("mse", "l2", "mse_target"), ("xent", "ce", "labels")]
    assert sorted(t.name for t in g.targets) == ["labels", "mse_target"]
    assert g.stats()["nodes"]["loss"] == 3
    assert {"mse/loss", "xent/loss"} <= set(g.groups)
    assert g.to_spec() == net.spec()


def test_sharing_and_groups_reach_the_spec():
    net = gf.FreeForm(sharing="kind", groups={"h0/b": "biases"})
    h = net.neurons(1)
    net.connect(net.input(1), h)
    net.loss(h, "l2")
    g = gf.build(net)
    assert g.groups == {"W": ["h0/w"], "biases": ["h0/b"], "loss0/loss": ["loss0/loss"]}


def test_invalid_builder_content_is_a_spec_error_naming_the_block():
    net = gf.FreeForm()
    h = net.neurons(1)
    net.connect(net.input(1), h)
    net.activation(h, "gelu")
    with pytest.raises(gf.SpecError, match=r"blocks\.3\.fn: Input should be 'relu'.* \(got 'gelu'\)"):
        net.spec()


def test_forward_references_resolve_at_build_time():
    net = gf.FreeForm()
    net.loss(net.activation(Units("later"), "relu"), "l2", target=Units("t"))
    h = net.neurons(2, name="later")
    net.connect(net.input(2), h)
    net.target(2, name="t")
    assert gf.build(net).stats()["nodes"]["activation"] == 2
