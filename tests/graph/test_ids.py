"""Stable node ids (``dense2/w[3,7]``) and glob patterns over them."""

import numpy as np
import pytest

import graphflow as gf
from graphflow.graph.ids import format_id, match_index, parse_pattern


@pytest.fixture(scope="module")
def mlp():
    """4 -> 8 relu -> 8 sigmoid -> 3 softmax, cross-entropy: layers dense0 .. loss6."""
    return gf.build(gf.stack(4, gf.Dense(8), gf.ReLU(), gf.Dense(8), gf.Sigmoid(), gf.Dense(3), gf.Softmax(),
                             gf.CrossEntropy()))


def test_format_id():
    assert format_id("dense2", "w", 3, 7) == "dense2/w[3,7]"
    assert format_id("dense2", "b", np.int64(7)) == "dense2/b[7]"


@pytest.mark.parametrize("pattern, parsed", [
    ("dense2/w[3,7]", ("dense2", "w", ("3", "7"))),
    ("dense2/w[*, 7]", ("dense2", "w", ("*", "7"))),
    ("loss4/*", ("loss4", "*", None)),
    ("dense*/b[0:3]", ("dense*", "b", ("0:3",))),
])
def test_parse_pattern(pattern, parsed):
    assert parse_pattern(pattern) == parsed


@pytest.mark.parametrize("bad", ["dense2", "dense2/w/x", "/w[1]", "dense2/w[1"])
def test_parse_pattern_rejects_what_is_not_an_id_and_says_what_is(bad):
    with pytest.raises(gf.GraphError, match=r"expected <block>/<label>\[<index>\]"):
        parse_pattern(bad)


@pytest.mark.parametrize("part, expected", [
    ("*", [0, 1, 2, 3, 4, 5]), ("", [0, 1, 2, 3, 4, 5]), ("4", [4]), ("2:4", [2, 3]), (":2", [0, 1]),
    ("4:", [4, 5]), ("1?", []), ("[13]", [1, 3]),
])
def test_match_index(part, expected):
    assert np.nonzero(match_index(part, np.arange(6)))[0].tolist() == expected


def test_layers_are_named_kind_and_position(mlp):
    assert list(mlp.units) == ["input", "target", "dense0", "relu1", "dense2", "sigmoid3", "dense4", "softmax5", "loss6"]
    assert list(mlp.weights) == ["dense0", "dense2", "dense4"]
    assert mlp.parts() == ["input/x", "target/y", "dense0/w", "dense0/sum", "dense0/b", "relu1/act", "dense2/w",
                           "dense2/sum", "dense2/b", "sigmoid3/act", "dense4/w", "dense4/sum", "dense4/b",
                           "softmax5/unit", "loss6/loss"]


def test_named_layers_keep_their_names():
    g = gf.build(gf.stack(2, gf.Dense(3, name="hidden"), gf.Tanh(name="squash"), gf.Dense(1, name="out"),
                          gf.L1Loss(name="err")))
    assert g.select("hidden/w[1,2]").ids() == ["hidden/w[1,2]"]
    assert g.select("squash/act[*]").ids() == ["squash/act[0]", "squash/act[1]", "squash/act[2]"]
    assert g.select("err/loss[0]").ids() == ["err/loss[0]"]


@pytest.mark.parametrize("node", ["dense2/w[3,7]", "dense2/b[7]", "dense2/sum[7]", "relu1/act[5]",
                                  "softmax5/unit[2]", "loss6/loss[0]", "input/x[3]", "target/y[2]"])
def test_every_node_kind_is_addressable_by_its_id(mlp, node):
    assert mlp.select(node).ids() == [node]


def test_node_id_of_dense_weights_is_row_major(mlp):
    assert mlp.node_id("dense2/w", 0) == "dense2/w[0,0]"
    assert mlp.node_id("dense2/w", 7) == "dense2/w[0,7]"
    assert mlp.node_id("dense2/w", 3 * 8 + 7) == "dense2/w[3,7]"
    assert mlp.node_id("relu1/act", 5) == "relu1/act[5]"
    with pytest.raises(gf.GraphError, match=r"dense2/w: node 64 out of range \(size 64\)"):
        mlp.node_id("dense2/w", 64)


def test_node_ids_round_trip_through_select_for_every_node(mlp):
    for part in mlp.parts():
        ids = [mlp.node_id(part, k) for k in range(mlp.part_size(part))]
        assert len(set(ids)) == len(ids)
        for k, node in enumerate(ids):
            selection = mlp.select(node)
            assert list(selection.parts) == [part] and selection.parts[part].tolist() == [k]


def test_glob_over_one_weight_column(mlp):
    selection = mlp.select("dense2/w[*,7]")
    assert selection.ids() == [f"dense2/w[{i},7]" for i in range(8)]
    assert selection.parts["dense2/w"].tolist() == [i * 8 + 7 for i in range(8)]
    assert len(selection) == 8


def test_glob_over_blocks_labels_and_ranges(mlp):
    assert list(mlp.select("dense*/b[0:2]").parts) == ["dense0/b", "dense2/b", "dense4/b"]
    assert len(mlp.select("dense*/b[0:2]")) == 6
    assert mlp.select("loss6/*").ids() == ["loss6/loss[0]", "loss6/loss[1]", "loss6/loss[2]"]
    assert len(mlp.select("*/w")) == 4 * 8 + 8 * 8 + 8 * 3
    assert len(mlp.select("dense0/w[3,*]")) == 8


@pytest.mark.parametrize("pattern, message", [
    ("dense2/w[1]", r"weight ids take two indices, as in 'dense2/w\[i,j\]'"),
    ("relu1/act[1,2]", r"'relu1/act' ids take one index"),
    ("nope/w[*]", r"matches no node; parts of this graph: input/x, target/y, dense0/w"),
    ("dense2/w[9,9]", "matches no node"),
])
def test_select_errors_say_what_is_wrong(mlp, pattern, message):
    with pytest.raises(gf.GraphError, match=message):
        mlp.select(pattern)


def test_sparse_weights_are_addressed_by_their_edges():
    net = gf.FreeForm()
    x, h = net.input(3), net.neurons(2, name="h")
    net.connect(x, h, mask=[[0, 1], [1, 0], [1, 1]])
    net.loss(h, "l2")
    g = gf.build(net)
    assert [g.node_id("h/w", k) for k in range(4)] == ["h/w[0,1]", "h/w[1,0]", "h/w[2,0]", "h/w[2,1]"]
    assert g.select("h/w[*,0]").ids() == ["h/w[1,0]", "h/w[2,0]"]
    assert g.select("h/w[2,*]").parts["h/w"].tolist() == [2, 3]
