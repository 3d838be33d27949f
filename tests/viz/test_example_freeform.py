"""examples/freeform_graph.py builds its free-form graph and draws it where it is told."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "freeform_graph.py"


@pytest.mark.parametrize("backend, suffix", [("matplotlib", "png"), ("auto", "svg")])
def test_example_draws_into_the_given_path(tmp_path, backend, suffix):
    picture = tmp_path / f"freeform.{suffix}"
    env = {**os.environ, "GRAPHFLOW_DRAW_BACKEND": backend}
    result = subprocess.run([sys.executable, str(EXAMPLE), str(picture)], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Graph(43 nodes, 9 blocks, 7 learner groups): 20 weights" in result.stdout
    assert "learner groups: h/w, skip/w, h/b, mix/act, out/w, out/b, loss/loss" in result.stdout
    assert f"wrote {picture}" in result.stdout
    data = picture.read_bytes()
    assert data[:4] == b"\x89PNG" if suffix == "png" else b"mix/act" in data


def test_example_graph_has_a_skip_connection_a_sparse_mask_and_two_activation_kinds():
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import freeform_graph
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    import graphflow as gf

    graph = gf.build(freeform_graph.freeform_net())
    assert graph.weights["skip"].src == "x" and graph.weights["skip"].dst == "out"
    assert graph.weights["h"].connectivity == "mask" and graph.weights["h"].size == 6
    assert set(graph.units["mix"].fns) == {"relu", "tanh"}
    assert freeform_graph.DEFAULT_PICTURE.parts[-2:] == ("docs", "freeform_graph.png")
