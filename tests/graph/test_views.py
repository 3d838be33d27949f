"""networkx views of a graph: per scalar node, and collapsed to block parts with node counts."""

import pytest

import graphflow as gf
from graphflow.presets import mnist


@pytest.fixture(scope="module")
def small():
    return gf.build(gf.stack(2, gf.Dense(2), gf.ReLU(), gf.Dense(1), gf.L2Loss()))


def test_per_scalar_view_carries_kind_group_part_and_label(small):
    view = small.to_networkx()
    assert view.nodes["dense0/w[1,0]"] == {"kind": "weight", "group": "dense0/w", "part": "dense0/w", "label": "w1,0"}
    assert view.nodes["dense0/b[1]"]["kind"] == "bias" and view.nodes["dense0/b[1]"]["group"] == "dense0/b"
    assert view.nodes["dense0/sum[1]"]["group"] is None
    assert view.nodes["relu1/act[0]"]["label"] == "relu"
    assert view.nodes["input/x[1]"]["kind"] == "input"
    assert all("kind" in data for _, data in view.nodes(data=True))


def test_per_scalar_view_refuses_huge_graphs():
    with pytest.raises(gf.GraphError, match="8044 nodes is too many to draw one by one .* use collapsed=True"):
        gf.build(mnist()).to_networkx(max_nodes=1000)


def test_collapsed_view_has_one_node_per_part_with_its_count():
    g = gf.build(mnist())
    view = g.to_networkx(collapsed=True)
    assert sorted(view.nodes) == sorted(g.parts())
    assert view.nodes["dense0/w"]["count"] == 7200 and view.nodes["dense0/w"]["group"] == "W"
    assert view.nodes["softmax3/unit"]["count"] == 10
    assert sum(data["count"] for _, data in view.nodes(data=True)) == g.stats()["total_nodes"]


def test_collapsed_view_arrows(small):
    view = small.to_networkx(collapsed=True)
    arrows = {(u, v, d["direction"]) for u, v, d in view.edges(data=True)}
    assert {("input/x", "dense0/w", "forward"), ("dense0/w", "dense0/sum", "forward"),
            ("dense0/sum", "dense0/b", "forward"), ("dense0/b", "relu1/act", "forward"),
            ("target/y", "loss3/loss", "forward")} <= arrows
    assert {("dense0/b", "dense0/w", "backward"), ("dense0/w", "input/x", "backward"),
            ("relu1/act", "dense0/b", "backward"), ("loss3/loss", "dense2/b", "backward")} <= arrows
    assert not any(d == "backward" and v.endswith("/sum") for _, v, d in arrows)
