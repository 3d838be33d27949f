"""``graphflow inspect`` and ``graphflow explore`` on run files and checkpoints, and ``mplp replay --inspect``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.inspect import load_run

TINY_EXPERIMENT = {
    "name": "tiny", "graph": {"kind": "stack", "inputs": 1, "layers": [
        {"kind": "dense", "units": 4}, {"kind": "activation", "fn": "relu"},
        {"kind": "dense", "units": 1}, {"kind": "loss", "fn": "l2"}]},
    "learner": {"message_size": 2, "hidden": 2, "mlp_hidden": [8, 8]},
    "meta": {"steps": 1, "outer_batch": 2, "inner_steps": 3, "shots": 5, "init_pool": 4, "normalization_rounds": 1},
    "eval_tasks": 2,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A graphflow training checkpoint after one meta-step of a tiny experiment."""
    from graphflow.meta.trainer import Trainer
    from graphflow.spec import ExperimentSpec

    folder = tmp_path_factory.mktemp("train")
    Trainer(ExperimentSpec.model_validate(TINY_EXPERIMENT), folder).train(progress=False)
    return folder / "checkpoint.npz"


def test_inspect_a_checkpoint_records_a_run(checkpoint, tmp_path, capsys):
    run_file, report = tmp_path / "run.npz", tmp_path / "report.json"
    code = main(["inspect", str(checkpoint), "--nodes", "dense2/w[*,0],dense2/b[0]", "--seed", "3",
                 "--save-run", str(run_file), "--json", str(report), "--steps", "0,2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "dense2/w[1,0]  (weight node, learner group dense2/w)" in out and "-gradient" in out
    assert "changed most" in out and "learned update and message vs the backprop gradient" in out
    run = load_run(run_file)
    assert run.steps == 3 and run.has_gradients and run.header["meta"]["seed"] == 3
    data = json.loads(report.read_text())
    assert data["steps"] == [0, 2] and set(data["nodes"]) == set(run.node_ids())
    update = data["nodes"]["dense2/w[1,0]"]["update"]
    assert update["dims"] == ["step", "task"] and update["coords"]["step"] == [0, 2]
    np.testing.assert_allclose(update["values"], run.node("dense2/w[1,0]")["update"].values[[0, 2]], rtol=1e-6)
    assert len(data["message_vs_gradient"]["update_correlation"]) == 3
    # the same seed records the same run
    again = tmp_path / "again.npz"
    assert main(["inspect", str(checkpoint), "--nodes", "dense2/b[0]", "--seed", "3", "--save-run", str(again)]) == 0
    np.testing.assert_array_equal(load_run(again).loss.values, run.loss.values)


@pytest.mark.parametrize("kind", ["report", "curve", "heatmap", "graph", "scatter", "groups"])
def test_inspect_draws_every_kind_of_picture(checkpoint, tmp_path, kind):
    run_file = tmp_path / "run.npz"
    assert main(["inspect", str(checkpoint), "--nodes", "dense2/*,relu1/act[*]", "--save-run", str(run_file)]) == 0
    picture = tmp_path / f"{kind}.png"
    assert main(["inspect", str(run_file), "--nodes", "dense2/w[*,0]", "--plot", str(picture), "--kind", kind,
                 "--steps", "1"]) == 0
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_inspect_errors_name_what_the_user_wrote(checkpoint, tmp_path, capsys):
    assert main(["inspect", str(checkpoint)]) == 2
    assert "say which nodes to record (--nodes PATTERN)" in capsys.readouterr().err
    run_file = tmp_path / "run.npz"
    assert main(["inspect", str(checkpoint), "--nodes", "dense2/b[0]", "--save-run", str(run_file)]) == 0
    assert main(["inspect", str(run_file), "--steps", "0,7"]) == 2
    assert "--steps: step 7 is out of range; the run has steps 0..2" in capsys.readouterr().err
    assert main(["inspect", str(run_file), "--nodes", "dense0/w[*,*]"]) == 2
    assert "'dense0/w[*,*]' matches no recorded node" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.npz"), "--nodes", "x/y"]) == 2
    assert "no such run or checkpoint file" in capsys.readouterr().err
    assert main(["inspect", str(run_file), "--plot", str(tmp_path / "p.gif")]) == 2
    assert "pictures are written as .png or .svg" in capsys.readouterr().err


def test_explore_writes_one_html_file(checkpoint, tmp_path):
    run_file = tmp_path / "run.npz"
    assert main(["inspect", str(checkpoint), "--nodes", "dense2/*", "--save-run", str(run_file)]) == 0
    assert main(["explore", str(run_file)]) == 0
    html = run_file.with_suffix(".html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "dense2/w[3,0]" in html
    assert main(["explore", str(checkpoint), "--nodes", "relu1/act[*]", "--out", str(tmp_path / "x.html")]) == 0
    assert "relu1/act[2]" in (tmp_path / "x.html").read_text()


def test_replay_inspect_writes_run_files_through_the_same_code_path(reference_dir, tmp_path):
    out, insp = tmp_path / "r.npz", tmp_path / "i.json"
    code = main(["mplp", "replay", "--preset", "sinusoid", "--checkpoint",
                 str(reference_dir / "sinusoid_weights_00035869.npy"),
                 "--trace", str(reference_dir / "sinusoid_5x10_trace.npz"), "--out", str(out),
                 "--inspect", "dense4/w[*,0],dense4/b[0]", "--inspect-out", str(insp)])
    assert code == 0
    data = json.loads(insp.read_text())
    assert sorted(data["runs"]) == ["case0", "case1", "case2"]
    run = load_run(data["runs"]["case1"])
    assert run.header["meta"]["case"] == "case1"
    np.testing.assert_allclose(data["cases"]["case1"]["dense4/w[5,0]"]["update"],
                               run.node("dense4/w[5,0]")["update"].values)
    assert main(["inspect", data["runs"]["case0"], "--nodes", "dense4/b[0]"]) == 0


def test_inspect_a_reference_checkpoint_with_its_preset(reference_dir, tmp_path, capsys):
    checkpoint = reference_dir / "sinusoid_weights_00035869.npy"
    run_file = tmp_path / "ref.npz"
    assert main(["inspect", str(checkpoint), "--nodes", "dense4/w[*,0]", "--seed", "2", "--tasks", "2",
                 "--save-run", str(run_file)]) == 2
    assert "needs --preset" in capsys.readouterr().err
    assert main(["inspect", str(checkpoint), "--preset", "sinusoid", "--nodes", "dense4/w[*,0]", "--seed", "2",
                 "--tasks", "2", "--save-run", str(run_file)]) == 0
    run = load_run(run_file)
    assert (run.steps, run.header["tasks"], run.header["batch"]) == (5, 2, 10)
    assert run.mean_loss()[-1] < run.mean_loss()[0]  # the published protocol fits the sine


def test_inspect_draws_the_meta_training_log_of_a_training_run(checkpoint, tmp_path, capsys):
    """--kind meta: the source is the training run's folder (the checkpoint fixture's) or its log.jsonl."""
    folder, picture = checkpoint.parent, tmp_path / "meta.png"
    assert main(["inspect", str(folder), "--kind", "meta", "--plot", str(picture)]) == 0
    assert picture.read_bytes()[:4] == b"\x89PNG"
    captured = capsys.readouterr()
    assert f"{folder / 'log.jsonl'}: 1 meta-step(s) (1..1)" in captured.out
    assert "1 eval(s); the last, at meta-step 1: l2" in captured.out and "after 3 inner steps" in captured.out
    assert f"wrote {picture}" in captured.err
    svg = tmp_path / "meta.svg"
    assert main(["inspect", str(folder / "log.jsonl"), "--kind", "meta", "--plot", str(svg)]) == 0
    assert "<svg" in svg.read_text()
    assert main(["inspect", str(folder), "--kind", "meta"]) == 0          # no --plot: the summary only
    assert "1 meta-step(s)" in capsys.readouterr().out


def test_inspect_meta_log_errors_name_the_log(checkpoint, tmp_path, capsys):
    picture = tmp_path / "meta.png"

    def error(source, *options) -> str:
        assert main(["inspect", str(source), *map(str, options)]) == 2
        return capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty / 'log.jsonl'}: no such log file" in error(empty, "--kind", "meta", "--plot", picture)
    assert f"{tmp_path / 'gone.jsonl'}: no such log file" in error(tmp_path / "gone.jsonl", "--kind", "meta")
    log = tmp_path / "log.jsonl"
    malformed = {
        '{"step": 1, "meta_loss": 0.1}\nnot json\n': f"{log}:2: not a JSON line",
        '[1, 2]\n': f"{log}:1: not a JSON object",
        '{"meta_loss": 0.1}\n': f"{log}:1: a meta-step record without a whole-number 'step'",
        '{"step": 1, "meta_loss": "high"}\n': f"{log}:1: 'meta_loss' is 'high', not a number",
        '{"step": 1, "meta_loss": 0.1}\n{"step": 1, "eval": {"metric": "l2"}}\n':
            f"{log}:2: an eval record needs 'steps' and 'mean' lists",
        '{"step": 3, "event": "rollback", "reason": "nan"}\n': f"{log}: no meta-step records",
    }
    for text, message in malformed.items():
        log.write_text(text)
        assert message in error(log, "--kind", "meta", "--plot", picture), text
    assert f"{checkpoint}: not a text file" in error(checkpoint, "--kind", "meta", "--plot", picture)
    assert not picture.exists()
    # a log or run folder without --kind meta, and run options with it
    err = error(checkpoint.parent, "--plot", picture)
    assert f"{checkpoint.parent} is a training run folder: say which nodes" in err and "--kind meta --plot F" in err
    assert "--nodes: not for --kind meta" in error(checkpoint.parent, "--kind", "meta", "--nodes", "dense2/b[0]")
