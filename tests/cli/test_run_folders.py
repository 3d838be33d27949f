"""A training run folder is accepted wherever a checkpoint is (eval, inspect, explore, export); bad
requests (a resume with nothing to do, a picture format that cannot be written) are refused in one
line before any work (issue 15)."""

from __future__ import annotations

import json

import pytest

from graphflow.cli import main
from graphflow.meta.trainer import Trainer
from tests.cli.test_bad_input import error_line
from tests.meta.test_trainer import tiny_experiment

NODES = "dense4/w[*,0]"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    Trainer(tiny_experiment(steps=2), folder).train(progress=False)
    return folder


def output(capsys, *args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_eval_of_a_run_folder_is_the_eval_of_its_checkpoint(capsys, trained):
    assert output(capsys, "eval", trained, "--tasks", "2", "--json") == \
        output(capsys, "eval", trained / "checkpoint.npz", "--tasks", "2", "--json")


def test_inspect_of_a_run_folder_records_its_checkpoint(capsys, trained):
    shown = output(capsys, "inspect", trained, "--nodes", NODES)
    assert shown == output(capsys, "inspect", trained / "checkpoint.npz", "--nodes", NODES)
    assert "dense4/w[0,0]" in shown and "loss per step" in shown


def test_explore_of_a_run_folder_writes_the_page_of_its_checkpoint(capsys, trained, tmp_path):
    page = trained.with_suffix(".html")  # beside the folder, not in it
    assert output(capsys, "explore", trained, "--nodes", NODES).startswith(f"wrote {page} ")
    assert sorted(p.name for p in trained.iterdir()) == ["checkpoint.npz", "experiment.json", "log.jsonl"]
    other = tmp_path / "of-the-checkpoint.html"
    output(capsys, "explore", trained / "checkpoint.npz", "--nodes", NODES, "--out", other)
    assert page.read_text() == other.read_text()
    page.unlink()


@pytest.mark.parametrize("command", ["explore", "inspect"])
def test_a_run_folder_without_nodes_says_what_to_add(capsys, trained, command):
    line = error_line(capsys, command, trained)
    assert line.startswith(f"error: {trained} is a training run folder: say which nodes to record from its "
                           f"checkpoint (--nodes PATTERN)")
    assert "is a checkpoint, not a run" not in line
    assert ("--kind meta" in line) == (command == "inspect")


@pytest.mark.parametrize("command", ["explore", "inspect", "eval"])
def test_a_folder_without_a_checkpoint_is_named(capsys, tmp_path, command):
    line = error_line(capsys, command, tmp_path, "--nodes", NODES) if command != "eval" else \
        error_line(capsys, command, tmp_path)
    assert str(tmp_path) in line and "checkpoint.npz" in line and "Is a directory" not in line


@pytest.mark.parametrize("args, message", [
    (["inspect", "{run}", "--nodes", NODES, "--plot", "x.jpg"], "--plot x.jpg: pictures are written as .png or .svg"),
    (["inspect", "{run}", "--kind", "meta", "--plot", "m.gif"], "--plot m.gif: pictures are written as .png or .svg"),
    (["eval", "{run}", "--plot", "x.jpg"], "--plot x.jpg: use a .png, .svg or .pdf file"),
    (["explore", "{run}", "--nodes", NODES, "--out", "x.jpg"], "--out x.jpg: the explorer is an HTML page; name it x.html"),
])
def test_an_unwritable_picture_is_refused_before_any_work(capsys, trained, tmp_path, monkeypatch, args, message):
    import graphflow.recording

    def no_work(*_args, **_kwargs):
        raise AssertionError("recorded a run before checking the picture's format")

    monkeypatch.setattr(graphflow.recording, "open_run", no_work)
    monkeypatch.chdir(tmp_path)
    code = main([a.format(run=trained) for a in args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err == f"error: {message}\n"
    assert not list(tmp_path.iterdir())


def test_resume_at_or_past_the_steps_asked_says_so(capsys, trained, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(tiny_experiment(steps=2).model_dump_json())
    before = (trained / "log.jsonl").read_text()
    for steps in (["--steps", "1"], ["--steps", "2"], []):
        line = error_line(capsys, "train", config, "--out", trained, "--resume", "--no-progress", *steps)
        asked = f"steps={steps[1]} (--steps)" if steps else "meta.steps is 2"
        assert line == (f"error: {trained / 'checkpoint.npz'} is at meta-step 2 and the run's {asked}: nothing to do "
                        f"(ask for more steps to continue it: --steps N, or steps=N)")
    assert (trained / "log.jsonl").read_text() == before
    assert json.loads(before.splitlines()[-1])["step"] == 2
