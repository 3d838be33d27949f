"""Drawings of graphs: what they show (boxes, arrows, groups), DOT text, and both renderers."""

import re

import numpy as np
import pytest

import graphflow as gf
from graphflow.errors import GraphflowError
from graphflow.presets import mnist
from graphflow.viz import COLLAPSE_ABOVE, choose_backend, draw_graph, drawing_of, graph_to_dot
from graphflow.viz import dot as dot_module
from graphflow.viz.drawing import BACKWARD_COLOUR, group_colours, layered_positions, should_collapse

needs_dot = pytest.mark.skipif(dot_module.dot_program() is None, reason="Graphviz 'dot' is not installed")


@pytest.fixture(scope="module")
def small():
    """21 nodes: 3 -> 2 relu -> 1, L2."""
    return gf.build(gf.stack(3, gf.Dense(2), gf.ReLU(), gf.Dense(1), gf.L2Loss()))


@pytest.fixture(scope="module")
def skip_graph():
    net = gf.FreeForm()
    x, h = net.input(2, name="x"), net.neurons(2, name="h")
    net.connect(x, h, mask=[[1, 0], [1, 1]])
    out = net.neurons(1, name="out")
    net.connect(net.activation(h, ["relu", "tanh"], name="mix"), out)
    net.connect(x, out, name="skip")
    net.loss(out, "l1", name="err")
    return gf.build(net)


def test_small_graphs_are_drawn_per_node_and_large_ones_collapsed(small):
    big = gf.build(mnist())
    assert should_collapse(small) is False and should_collapse(big) is True
    assert should_collapse(small, collapsed=True) is True and should_collapse(big, collapsed=False) is False
    assert should_collapse(small, threshold=10) is True
    assert COLLAPSE_ABOVE == 300


def test_per_node_drawing_boxes_and_arrows(small):
    d = drawing_of(small)
    stats = small.stats()
    assert not d.collapsed and len(d.boxes) == stats["total_nodes"]
    labels = {b.id: b.label for b in d.boxes}
    assert labels["dense0/w[2,1]"] == "w[2,1]" and labels["dense0/b[1]"] == "b[1]"
    assert labels["dense0/sum[0]"] == "Σ[0]" and labels["relu1/act[1]"] == "relu[1]"
    assert labels["loss3/loss[0]"] == "l2[0]" and labels["input/x[2]"] == "x[2]" and labels["target/y[0]"] == "y[0]"
    directions = [a.direction for a in d.arrows]
    assert directions.count("forward") == stats["forward_arrows"]
    assert directions.count("backward") == stats["backward_arrows"]
    assert {b.group for b in d.boxes if b.kind in ("input", "target", "neuron")} == {None}


def test_mixed_activations_show_their_own_function(skip_graph):
    labels = {b.id: b.label for b in drawing_of(skip_graph).boxes}
    assert (labels["mix/act[0]"], labels["mix/act[1]"]) == ("relu[0]", "tanh[1]")
    collapsed = {b.id: b.label for b in drawing_of(skip_graph, collapsed=True).boxes}
    assert collapsed["mix/act"] == "mix/act\n2 activations: 1 relu, 1 tanh"


def test_collapsed_drawing_boxes_carry_node_counts():
    d = drawing_of(gf.build(mnist()))
    labels = {b.id: b.label for b in d.boxes}
    assert labels["dense0/w"] == "dense0/w\n7,200 weights"
    assert labels["dense2/b"] == "dense2/b\n10 biases" and labels["dense0/sum"] == "dense0/sum\n50 sums"
    assert labels["sigmoid1/act"] == "sigmoid1/act\n50 sigmoid"
    assert labels["softmax3/unit"] == "softmax3/unit\n10 softmax units" and labels["loss4/loss"] == "loss4/loss\n10 ce losses"
    assert sum(b.count for b in d.boxes) == 8044
    singular = {b.id: b.label for b in drawing_of(gf.build(gf.stack(1, gf.Dense(1), gf.L2Loss())), collapsed=True).boxes}
    assert singular["dense0/b"] == "dense0/b\n1 bias" and singular["loss1/loss"] == "loss1/loss\n1 l2 loss"


def test_learner_groups_get_distinct_colours_and_a_legend():
    d = drawing_of(gf.build(mnist()))
    assert [entry.group for entry in d.legend] == ["W", "b", "sigmoid1/act", "softmax3/unit", "loss4/loss"]
    assert d.legend[0].text == "W = dense0/w + dense2/w (weight, 7,700 nodes)"
    assert d.legend[-1].text == "loss4/loss (ce loss, 10 nodes)"
    assert len(set(d.colours.values())) == len(d.legend)
    fills = {b.id: d.fill(b) for b in d.boxes}
    assert fills["dense0/w"] == fills["dense2/w"] == d.colours["W"]
    assert fills["dense0/b"] != fills["dense0/w"]
    many = group_colours([f"g{k}" for k in range(40)])
    assert len(set(many.values())) == 40 and all(re.fullmatch("#[0-9a-f]{6}", c) for c in many.values())


def test_layered_layout_runs_forward_arrows_left_to_right(small, skip_graph):
    for graph in (small, skip_graph):
        d = drawing_of(graph)
        pos = layered_positions(d)
        assert set(pos) == {b.id for b in d.boxes}
        for arrow in d.arrows:
            if arrow.direction == "forward":
                assert pos[arrow.dst][0] > pos[arrow.src][0], arrow
        ranks = {}
        for node, (layer, rank) in pos.items():
            ranks.setdefault(layer, []).append(rank)
        assert all(sorted(r) == list(range(len(r))) for r in ranks.values())
    pos = layered_positions(drawing_of(skip_graph))
    assert pos["x/x[0]"][0] == 0
    # the skip weights sit next to the neurons they feed, not next to the inputs
    assert pos["skip/w[0,0]"][0] == pos["out/sum[0]"][0] - 1
    assert pos["err_target/y[0]"][0] == pos["err/loss[0]"][0] - 1              # targets next to their losses


def test_layout_keeps_the_nodes_of_one_block_part_together(skip_graph):
    d = drawing_of(skip_graph)
    pos = layered_positions(d)
    parts = {b.id: b.part for b in d.boxes}
    column = sorted((rank, parts[n]) for n, (layer, rank) in pos.items() if layer == pos["skip/w[0,0]"][0])
    sequence = [part for _, part in column]
    assert sequence == sorted(sequence, key=sequence.index)        # each part is one contiguous run


def test_dot_text(small):
    text = graph_to_dot(small)
    stats = small.stats()
    assert text.startswith("digraph graphflow {") and text.rstrip().endswith("}")
    assert "rankdir=LR" in text
    forward = re.findall(r'^  "[^"]+" -> "[^"]+" \[color="#000000"\];$', text, re.M)
    backward = re.findall(rf'^  "[^"]+" -> "[^"]+" \[color="{BACKWARD_COLOUR}", style=dashed, constraint=false\];$',
                          text, re.M)
    assert (len(forward), len(backward)) == (stats["forward_arrows"], stats["backward_arrows"])
    colours = drawing_of(small).colours
    assert re.search(rf'"dense0/w\[2,1\]" \[label="w\[2,1\]", shape=ellipse, style=filled, fillcolor="{colours["dense0/w"]}"', text)
    assert text.count("subgraph cluster_") == len(small.parts())
    for entry in drawing_of(small).legend:                            # legend: one swatch per group
        assert f'bgcolor="{entry.colour}"' in text and entry.text in text
    assert "backward arrow (messages; dashed)" in text


def test_collapsed_dot_has_one_node_per_part():
    text = graph_to_dot(gf.build(mnist()))
    assert "subgraph" not in text
    assert '"dense0/w" [label="dense0/w\\n7,200 weights"' in text
    assert len(re.findall(r"^  \"[^\"]+\" \[label=", text, re.M)) == len(gf.build(mnist()).parts())


def colour_pixels(png_path, hex_colour, tolerance=0.04):
    import matplotlib.image

    image = matplotlib.image.imread(png_path)[..., :3]
    target = np.array([int(hex_colour[k:k + 2], 16) / 255 for k in (1, 3, 5)])
    return int((np.abs(image - target).max(axis=-1) < tolerance).sum())


def check_png(path, drawing):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert colour_pixels(path, BACKWARD_COLOUR, tolerance=0.15) > 20          # dashed red arrows are there
    for entry in drawing.legend:                                               # every group colour is there
        assert colour_pixels(path, entry.colour) > 50, entry.group


def test_matplotlib_fallback_png_and_svg(small, tmp_path):
    png = draw_graph(small, tmp_path / "small.png", backend="matplotlib")
    check_png(png, drawing_of(small))
    svg = draw_graph(gf.build(mnist()), tmp_path / "deep" / "mnist.svg", backend="matplotlib")
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text
    assert "7,200 weights" in text and "W = dense0/w + dense2/w" in text


def test_environment_variable_forces_the_fallback(small, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_DRAW_BACKEND", "matplotlib")
    assert choose_backend() == "matplotlib"
    calls = []
    monkeypatch.setattr("graphflow.viz.graph_drawing.render_dot", lambda *a: calls.append(a))
    draw_graph(small, tmp_path / "g.svg")
    assert calls == [] and "<svg" in (tmp_path / "g.svg").read_text()


def test_auto_backend_follows_the_dot_program(monkeypatch):
    monkeypatch.delenv("GRAPHFLOW_DRAW_BACKEND", raising=False)
    monkeypatch.setattr("graphflow.viz.graph_drawing.dot_program", lambda: None)
    assert choose_backend() == "matplotlib"
    monkeypatch.setattr("graphflow.viz.graph_drawing.dot_program", lambda: "/usr/bin/dot")
    assert choose_backend() == "graphviz" and choose_backend("auto") == "graphviz"


def test_forcing_graphviz_without_dot_says_what_to_do(small, tmp_path, monkeypatch):
    monkeypatch.setattr("graphflow.viz.dot.dot_program", lambda: None)
    with pytest.raises(GraphflowError, match=r"Graphviz 'dot' is not installed .* backend='matplotlib'"):
        draw_graph(small, tmp_path / "g.png", backend="graphviz")


def test_dot_files_need_no_graphviz(small, tmp_path, monkeypatch):
    monkeypatch.setattr("graphflow.viz.dot.dot_program", lambda: None)
    path = draw_graph(small, tmp_path / "g.gv")
    assert path.read_text() == graph_to_dot(small)
    assert draw_graph(small, tmp_path / "noext", fmt="dot").read_text() == graph_to_dot(small)


@pytest.mark.parametrize("kwargs, message", [
    ({"path": "g.jpg"}, r"g\.jpg: cannot tell the picture format from the suffix; use one of \.png, \.svg, \.dot, \.gv"),
    ({"path": "g.png", "backend": "cairo"}, r"backend='cairo': unknown drawing backend; choose one of auto, graphviz, matplotlib"),
    ({"path": "g.png", "fmt": "pdf"}, r"fmt='pdf': unknown picture format"),
])
def test_drawing_errors(small, tmp_path, kwargs, message):
    kwargs["path"] = tmp_path / kwargs["path"]
    with pytest.raises(GraphflowError, match=message):
        draw_graph(small, **kwargs)


def test_unknown_backend_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_DRAW_BACKEND", "tikz")
    with pytest.raises(GraphflowError, match="GRAPHFLOW_DRAW_BACKEND='tikz': unknown drawing backend"):
        choose_backend()


@needs_dot
def test_graphviz_png_and_svg(small, tmp_path):
    png = draw_graph(small, tmp_path / "small.png", backend="graphviz")
    check_png(png, drawing_of(small))
    svg = draw_graph(small, tmp_path / "small.svg", backend="graphviz").read_text()
    assert "<svg" in svg and "dense0/w[2,1]" in svg and "w[2,1]" in svg and 'stroke-dasharray' in svg
    collapsed = draw_graph(gf.build(mnist()), tmp_path / "mnist.svg", backend="graphviz").read_text()
    assert "7,200 weights" in collapsed and "loss4/loss" in collapsed


@needs_dot
def test_graphviz_failure_is_reported(tmp_path):
    with pytest.raises(GraphflowError, match="dot failed rendering"):
        dot_module.render_dot("digraph { a -> }", tmp_path / "x.svg", "svg")
