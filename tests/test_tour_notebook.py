"""examples/tour.ipynb runs from top to bottom in a Jupyter kernel, and shows what a notebook should.

The committed notebook has no outputs (running it never dirties the checkout): the test executes a
copy in a temporary folder with nbclient and ipykernel (the ``dev`` extra).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def outputs_of(cell) -> tuple[str, dict]:
    """A code cell's printed text and its rich display data (mime type -> content), merged."""
    text, data = "", {}
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            text += out["text"]
        elif out["output_type"] in ("execute_result", "display_data"):
            data.update(out["data"])
    return text, data


def test_the_committed_tour_has_no_outputs():
    nb = nbformat.read(TOUR, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 6
    assert all(not c.outputs and c.execution_count is None for c in code), "strip the notebook's outputs"


def test_the_tour_runs_and_shows_the_graph_the_evaluation_and_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where the kernel's tempfile puts the training run
    (tmp_path / "tmp").mkdir()
    copy = tmp_path / "tour.ipynb"
    shutil.copyfile(TOUR, copy)
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [outputs_of(c) for c in nb.cells if c.cell_type == "code"]
    assert not any(out["output_type"] == "error" for c in nb.cells if c.cell_type == "code" for out in c.outputs)

    graph_cell = next(data for text, data in shown if "image/svg+xml" in data)
    assert "<svg" in graph_cell["image/svg+xml"] and "dense0/w" in graph_cell["image/svg+xml"]
    assert graph_cell["text/plain"] == "Graph(45 nodes, 8 blocks, 6 learner groups)"

    printed = "".join(text for text, _ in shown)
    assert "TrainResult(" in printed and "at meta-step 10" in printed
    table = next(text for text, _ in shown if text.startswith("step") and "adam" in text).splitlines()
    final = table[6].split()
    assert final[0] == "5" and float(final[1]) < float(final[4]), "the bundled protocol beats Adam at step 5"

    run_cell = next(data for text, data in shown if "text/html" in data)
    assert run_cell["text/html"].startswith("<div>") and "Run(5 steps" in run_cell["text/html"]
    assert "dense4/w" in run_cell["text/html"] and "corr(update, -grad)" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp", "tour.ipynb"], "the tour writes beside itself"
    (run_folder,) = (tmp_path / "tmp").glob("graphflow-tour-*")
    assert (run_folder / "checkpoint.npz").is_file() and (run_folder / "log.jsonl").is_file()
