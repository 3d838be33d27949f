"""Pictures a person can read (issue 15), checked on the drawn figures through the renderer:
block names in the fallback's labels, nothing cut at the figure's edge, no title over the graph,
big graphs bounded and saying how they were drawn, legends off the data, colour bars without
offset text, heatmap ticks that are indices, the scatter's channel per step, labelled losses."""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.evaluation import EvalCurve
from graphflow.inspect import message_vs_gradient
from graphflow.inspect._example import example_run
from graphflow.learners import Protocol
from graphflow.presets import mnist
from graphflow.recording import record_run
from graphflow.viz import curves, drawing_of, figures, graph_drawing, matplotlib_drawing, run_plots


@pytest.fixture
def drawn(monkeypatch):
    """Every figure the plot functions save, kept for inspection (the files still go to tmp_path)."""
    saved = []
    save = figures.save

    def keep(fig, path, *args, **kwargs):
        saved.append(fig)
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures, "save", keep)
    return saved


def _recorded(graph, pattern: str, steps: int = 3, batch: int = 6):
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=3, mlp_hidden=(8, 8))))
    rng = np.random.default_rng(0)
    n_in = graph.units["input"].size
    xs = rng.uniform(-2, 2, (steps, 1, batch, n_in)).astype(np.float32)
    ys = np.repeat(np.sin(xs.sum(axis=-1, keepdims=True)), graph.units["target"].size, axis=-1)
    return record_run(engine, engine.init_network(rng, 1, init_std=0.5), xs, ys, pattern, gradients=True)[1]


@pytest.fixture(scope="module")
def run():
    graph = gf.build(gf.stack(1, gf.Dense(5), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    return _recorded(graph, "dense2/*,dense0/*,tanh1/act[*]", steps=4)


# ------------------------------------------------------------------------------ the graph fallback
def _texts(fig):
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


def _check_inside_the_figure(fig):
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    for artist in _texts(fig) + list(fig.axes[0].patches):
        box = _extent(artist, renderer)
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, \
            (getattr(artist, "get_text", lambda: artist)(), box, (width, height))
    return renderer


def test_fallback_labels_carry_block_names_and_nothing_is_cut_or_covered():
    net = gf.FreeForm()
    x, h = net.input(3, name="x"), net.neurons(2, name="h")
    net.connect(x, h)
    out = net.neurons(1, name="out")
    net.connect(net.activation(h, ["relu", "tanh"], name="mix"), out)
    net.connect(x, out, name="skip")                          # a long backward arc, bowed outward
    net.loss(out, "l2", name="fit")
    drawing = drawing_of(gf.build(net))
    fig = matplotlib_drawing.figure_of(drawing)
    texts = {t.get_gid(): t.get_text() for t in _texts(fig) if t.get_gid()}
    assert texts["h/w[0,0]"] == "h w[0,0]" and texts["skip/w[0,0]"] == "skip w[0,0]"
    assert texts["mix/act[1]"] == "mix tanh[1]" and texts["h/sum[0]"] == "h Σ[0]"
    assert len(set(texts.values())) == len(texts) == len(drawing.boxes)        # no two boxes read the same
    renderer = _check_inside_the_figure(fig)
    graph_area = fig.axes[0].get_window_extent(renderer)
    header = next(t for t in _texts(fig) if t.get_text().startswith(drawing.title))
    assert _extent(header, renderer).y0 >= graph_area.y1 - 1                 # the title sits above the graph
    for patch in fig.axes[0].patches:                                          # every arrow inside the graph area
        box = _extent(patch, renderer)
        assert box.y1 <= graph_area.y1 + 1 and box.y0 >= graph_area.y0 - 1 and box.x0 >= graph_area.x0 - 1


def test_a_layer_of_many_nodes_is_laid_out_in_tiles_and_the_picture_says_so(tmp_path):
    graph = gf.build(gf.stack(50, gf.Dense(2), gf.L2Loss()))               # 100 weights in one layer
    drawing = drawing_of(graph, collapsed=False)
    fig = matplotlib_drawing.figure_of(drawing)
    width, height = fig.get_size_inches()
    tall = 100 * matplotlib_drawing.ROW_GAP[False]                           # the weights in one column
    assert height < tall / 2 and height < 20 and width < 30, (width, height)
    assert any("laid out in tiles" in t.get_text() for t in _texts(fig))
    _check_inside_the_figure(fig)
    xy, tiled = matplotlib_drawing.tile_positions(drawing)
    assert tiled and max(sum(1 for p in xy.values() if p[0] == x) for x in {p[0] for p in xy.values()}) \
        <= matplotlib_drawing.MAX_ROWS


def test_big_graphs_collapse_and_say_why(monkeypatch, tmp_path):
    big = gf.build(mnist())
    notes = drawing_of(big).notes
    assert len(notes) == 1 and "8,044 nodes are more than the 300" in notes[0] and "collapsed=False" in notes[0]
    assert "as asked" in drawing_of(big, collapsed=True).notes[0] and drawing_of(big, collapsed=False).notes == ()
    seen = []
    monkeypatch.setattr(graph_drawing, "render_matplotlib", lambda d, path, fmt: seen.append(d))
    graph_drawing.draw_graph(big, tmp_path / "big.png", collapsed=False, backend="matplotlib")
    assert seen[0].collapsed and "more than the 1,200 the matplotlib fallback draws" in seen[0].notes[0]
    fig = matplotlib_drawing.figure_of(drawing_of(big))
    assert any(notes[0] in t.get_text() for t in _texts(fig))
    assert max(fig.get_size_inches()) < 25


# ------------------------------------------------------------------------------ legends off the data
def _data_points(fig):
    """Display coordinates of every plotted point: line vertices, scatter offsets, bar corners."""
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle

    points = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for line in ax.get_lines():
            xy = line.get_xydata()
            if len(xy) > 2 or not (np.ptp(xy[:, 0]) == 0 or np.ptp(xy[:, 1]) == 0):  # not axhline / axvline
                points.append(ax.transData.transform(xy))
        for coll in ax.collections:
            if isinstance(coll, PathCollection) and len(coll.get_offsets()):
                points.append(ax.transData.transform(coll.get_offsets()))
        for patch in ax.patches:
            if isinstance(patch, Rectangle) and patch.get_height() != 0:
                x, y, w, h = patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height()
                points.append(ax.transData.transform([(x, y), (x + w, y + h), (x + w / 2, y + h)]))
    return np.concatenate(points) if points else np.zeros((0, 2))


def _check_legends_cover_no_data(fig):
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    assert legends, "the picture has no legend"
    points = _data_points(fig)
    assert len(points)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        inside = (points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
        assert not inside.any(), f"the legend {[t.get_text() for t in legend.get_texts()]} covers {points[inside][:3]}"


def test_legends_cover_no_data(run, drawn, tmp_path):
    run_plots.plot_inner_curve(run, tmp_path / "curve.png")
    run_plots.plot_node_report(run, tmp_path / "report.png", ["dense2/w[3,0]", "dense2/b[0]"])
    run_plots.plot_message_vs_gradient(run, tmp_path / "scatter.png", "dense2/w[*,0]")
    run_plots.plot_group_distribution(run, tmp_path / "groups.png")
    evals = {"graphflow": EvalCurve("l2", [0, 1, 2], [0.03, 0.01, 0.002], [0.02, 0.01, 0.004], 10),
             "adam": EvalCurve("l2", [0, 1, 2], [0.03, 0.029, 0.028], [0.02, 0.02, 0.02], 10)}
    curves.plot_eval_curves(evals, tmp_path / "eval.png", protocol="demo.npz")
    grid = np.linspace(-5, 5, 50)
    traces = {"graphflow": [np.sin(grid) * k / 5 for k in range(6)], "adam": [np.zeros(50)] * 6}
    curves.plot_demo(grid, np.sin(grid), traces, grid[::5], np.sin(grid[::5]), evals, tmp_path / "demo.png",
                     {"trained_steps": 10})
    assert len(drawn) == 6
    for fig in drawn:
        _check_legends_cover_no_data(fig)


def test_the_eval_title_says_what_it_shows(drawn, tmp_path):
    evals = {"graphflow": EvalCurve("l2", [0, 1], [0.03, 0.01], [0.0, 0.0], 100),
             "sgd": EvalCurve("l2", [0, 1], [0.03, 0.03], [0.0, 0.0], 100)}
    curves.plot_eval_curves(evals, tmp_path / "eval.svg", protocol="sinusoid-5x10 (sinusoid_demo.npz)")
    title = drawn[0].axes[0].get_title()
    assert title.startswith("sinusoid-5x10 (sinusoid_demo.npz): eval l2 loss after each inner step")
    assert "100 fresh tasks" in title and "baselines" in title


# ------------------------------------------------------------------------------ heatmaps
def _colour_bars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_a_one_by_one_layer_gets_a_colour_bar_of_plain_numbers(drawn, tmp_path):
    run = _recorded(gf.build(gf.stack(1, gf.Dense(1), gf.L2Loss())), "dense0/*")
    run_plots.plot_layer_heatmaps(run, tmp_path / "h.png", ("update", "message_out", "abs_update"))
    fig = drawn[0]
    fig.draw(fig.canvas.get_renderer())
    bars = _colour_bars(fig)
    assert len(bars) == 3
    for bar in bars:
        assert bar.yaxis.get_offset_text().get_text() == ""
        labels = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
        assert labels and all("e-12" not in label and "+" not in label for label in labels), labels
        for label in labels:
            float(label.split("\n")[0].replace("−", "-"))                  # plain numbers


def test_constant_values_get_one_tick_at_their_value():
    values = np.full(2, 1.125237522)
    fig = figures.figure(3, 3, 72)
    ax = fig.add_subplot()
    image = ax.imshow(values.reshape(1, -1), norm=run_plots._norm("message_out", values))
    bar = run_plots._colour_bar(fig, image, ax, values)
    fig.draw(fig.canvas.get_renderer())
    assert [t.get_text() for t in bar.ax.get_yticklabels()] == ["1.125\n(every cell)"]
    assert bar.ax.yaxis.get_offset_text().get_text() == ""


def test_heatmap_ticks_are_indices(drawn, tmp_path):
    graph = gf.build(gf.stack(25, gf.Dense(8), gf.L2Loss()))
    run_plots.plot_layer_heatmaps(_recorded(graph, "dense0/w[*,*],dense0/b[*]", steps=2, batch=3), tmp_path / "h.png",
                                  ("update",))
    fig = drawn[0]
    fig.draw(fig.canvas.get_renderer())
    matrix, bias = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    rows = matrix.get_yticks()
    assert [t.get_text() for t in matrix.get_yticklabels()] == [str(int(r)) for r in rows] == \
        [str(i) for i in range(0, 25, 2)]
    assert "every 2nd index" in matrix.get_ylabel()
    assert [t.get_text() for t in bias.get_xticklabels()] == [str(j) for j in range(8)]   # every neuron
    assert "every" not in bias.get_xlabel()
    ticks, stride = figures.index_ticks(250)
    assert stride == 20 and ticks == list(range(0, 250, 20))


# ------------------------------------------------------------------------------ scatter and losses
def test_the_scatter_shows_each_steps_best_channel(run, drawn, tmp_path):
    run_plots.plot_message_vs_gradient(run, tmp_path / "s.png", "dense2/w[*,0]")
    cmp = message_vs_gradient(run, "dense2/w[*,0]")
    middle = drawn[0].axes[1]
    names = cmp.message.labels("channel")
    labels = [t.get_text() for t in middle.get_legend().get_texts()]
    for s, points in enumerate(middle.collections):
        best = cmp.best_channel[s]
        np.testing.assert_allclose(points.get_offsets()[:, 1], cmp.message.values[s, ..., best].ravel(), rtol=1e-6)
        assert labels[s].startswith(f"step {s}: {names[best]} ")


def test_two_losses_are_plotted_and_printed_by_name(drawn, tmp_path):
    from graphflow.cli.inspect_cmd import _loss_lines

    run = example_run()
    first = next(iter(run.losses))
    run.losses["xent"] = 2 * run.losses[first]
    run_plots.plot_inner_curve(run, tmp_path / "c.png")
    ax = drawn[0].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "total of the 2 losses" and f"{first} (l2 loss)" in labels and "xent" in labels
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["total of the 2 losses"], lines[f"{first} (l2 loss)"] + lines["xent"], rtol=1e-6)
    printed = _loss_lines(run, [0, 1]).splitlines()
    assert printed[0] == f"loss per step, total of {first} + xent: 0: 1.5000  1: 0.7500"
    assert printed[1].split() == [first, "0:", "0.5000", "1:", "0.2500"]
    assert printed[2].split() == ["xent", "0:", "1.0000", "1:", "0.5000"]
    one = example_run()
    assert _loss_lines(one, [0]) == "loss per step: 0: 0.5000"
