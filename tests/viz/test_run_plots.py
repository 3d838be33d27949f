"""Pictures of recorded runs and of meta-training logs: every function writes readable PNG and SVG."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.errors import GraphflowError
from graphflow.inspect._example import example_run
from graphflow.learners import Protocol
from graphflow.recording import record_run
from graphflow.viz import run_plots


@pytest.fixture(scope="module")
def run():
    graph = gf.build(gf.stack(1, gf.Dense(5), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=3, mlp_hidden=(8, 8))))
    rng = np.random.default_rng(0)
    xs = rng.uniform(-2, 2, (3, 2, 6, 1)).astype(np.float32)
    _, recorded = record_run(engine, engine.init_network(rng, 2, init_std=0.5), xs, np.sin(xs),
                             "dense2/*,dense0/w[0,1:4],tanh1/act[*]", gradients=True)
    return recorded


def _is_picture(path) -> bool:
    data = path.read_bytes()
    return data[:4] == b"\x89PNG" if path.suffix == ".png" else b"<svg" in data[:2000]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_every_picture_of_a_run(run, tmp_path, suffix):
    calls = {
        "curve": lambda p: run_plots.plot_inner_curve(run, p),
        "heatmap": lambda p: run_plots.plot_layer_heatmaps(run, p, ("update", "gradient", "message_in")),
        "heatmap_step": lambda p: run_plots.plot_layer_heatmaps(run, p, step=1),
        "graph": lambda p: run_plots.plot_graph_quantity(run, p, "message_out", step=2),
        "graph_collapsed": lambda p: run_plots.plot_graph_quantity(run, p, "update", collapsed=True),
        "scatter": lambda p: run_plots.plot_message_vs_gradient(run, p),
        "report": lambda p: run_plots.plot_node_report(run, p, ["dense2/w[3,0]", "tanh1/act[0]"]),
        "groups": lambda p: run_plots.plot_group_distribution(run, p),
    }
    for name, draw in calls.items():
        path = draw(tmp_path / f"{name}{suffix}")
        assert path.exists() and _is_picture(path), name


def test_graph_colouring_uses_the_recorded_nodes(run):
    drawing, values = run_plots.box_values(run, "abs_update", None)
    assert not drawing.collapsed
    assert set(values) == set(run.select("dense2/w[*,*]") + run.select("dense2/b[*]") + run.select("dense0/w[*,*]"))
    np.testing.assert_allclose(values["dense2/b[0]"], abs(run.node("dense2/b[0]")["update"].values.sum(0).mean()),
                               rtol=1e-5)
    drawing, parts = run_plots.box_values(run, "message_out", 0, collapsed=True)
    assert drawing.collapsed and set(parts) == {"dense0/w", "dense2/w", "dense2/b", "tanh1/act"}


def test_heatmap_cells_sit_at_their_weights(run):
    graph = run.graph
    cells = run_plots._cells(graph, "dense0/w", np.array([1.0, 2.0, 3.0]), run.parts["dense0/w"].nodes)
    assert cells.shape == (1, 5) and cells[0, 1:4].tolist() == [1.0, 2.0, 3.0] and np.isnan(cells[0, [0, 4]]).all()


def test_meta_training_log(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [{"step": k, "meta_loss": 0.05 / k, "grad_norm": 1.0, "seconds": 0.1} for k in range(1, 41)]
    lines.insert(20, {"step": 20, "eval": {"metric": "l2", "steps": [0, 1, 2], "mean": [0.03, 0.02, 0.01],
                                           "std": [0, 0, 0], "tasks": 5}})
    lines.insert(10, {"step": 10, "event": "rollback", "reason": "meta-loss nan"})
    lines.append({"step": 40, "eval": {"metric": "l2", "steps": [0, 1, 2], "mean": [0.03, 0.01, 0.005],
                                       "std": [0, 0, 0], "tasks": 5}})
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    parsed = run_plots.read_meta_log(log)
    assert len(parsed["step"]) == 40 and parsed["eval_step"] == [20, 40] and parsed["rollback"] == [10]
    assert _is_picture(run_plots.plot_meta_log(log, tmp_path / "meta.png"))
    log.write_text('{"step": 1, "meta_loss": 0.1}\nnot json\n')
    with pytest.raises(GraphflowError, match="log.jsonl:2: not a JSON line"):
        run_plots.read_meta_log(log)


def test_clear_errors(run, tmp_path):
    with pytest.raises(GraphflowError, match="written as .png or .svg"):
        run_plots.plot_inner_curve(run, tmp_path / "x.jpg")
    only_loss = example_run()
    only_loss.parts.clear()
    with pytest.raises(GraphflowError, match="no weight or bias node was recorded"):
        run_plots.plot_layer_heatmaps(only_loss, tmp_path / "h.png")
