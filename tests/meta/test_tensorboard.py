"""TensorBoard event files of a run (graphflow.meta.tensorboard): read back, they hold log.jsonl's
meta-step and eval numbers at their meta-steps, histograms of every learner group at each eval, and a
resumed run (also one redoing meta-steps its checkpoint lost) appends without logging a step twice."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import graphflow as gf
from graphflow.errors import GraphflowError
from graphflow.graph import build
from graphflow.io import read_records
from graphflow.meta.tensorboard import FOLDER, MISSING, event_files, read_events
from tests.meta.test_trainer import tiny_experiment

pytest.importorskip("tensorboardX", reason="the tensorboard extra (in dev) is not installed")


def experiment(steps: int = 3):
    return tiny_experiment(steps=steps).model_copy(update={"eval_every": 2, "checkpoint_every": 2})


def points(events, tag: str) -> list[tuple[int, float]]:
    return list(events.all()[tag])


def check_against_log(folder, timings: bool = True) -> None:
    """Every meta-step and eval number of log.jsonl is in tb/, once, at its meta-step (float32 values;
    ``timings``: also the seconds, which a redone meta-step takes anew)."""
    log = read_records(folder / "log.jsonl")
    events = read_events(folder / FOLDER)
    steps = [r for r in log if "meta_loss" in r]
    for field in ("meta_loss", "grad_norm", "learning_rate", "seconds"):
        got = points(events, f"meta/{field}")
        assert [s for s, _ in got] == [r["step"] for r in steps], field
        if timings or field != "seconds":
            np.testing.assert_allclose([v for _, v in got], [r[field] for r in steps], rtol=1e-6)
    evals = [r for r in log if "eval" in r]
    assert evals
    for k in evals[0]["eval"]["steps"]:
        got = points(events, f"eval/l2/inner_step_{k}")
        assert [s for s, _ in got] == [r["step"] for r in evals]
        np.testing.assert_allclose([v for _, v in got], [r["eval"]["mean"][k] for r in evals], rtol=1e-6)
    graph = build(tiny_experiment().graph)
    with_parameters = {s.group for s in graph.slots.values() if s.has_parameter}
    assert {t for t in events.histograms if t.startswith("updates/")} == {f"updates/{g}" for g in with_parameters}
    assert {t for t in events.histograms if t.startswith("messages/")} == {f"messages/{s.group}"
                                                                          for s in graph.slots.values()}
    for tag, hists in events.histograms.items():
        assert [s for s, _ in hists] == [r["step"] for r in evals], tag
        assert all(h.num > 0 and sum(h.bucket) == h.num and h.min <= h.max for _, h in hists), tag


def test_train_writes_log_numbers_and_group_histograms(tmp_path):
    result = gf.train(experiment(3), out=tmp_path / "run", progress=False, tensorboard=True)
    assert len(event_files(tmp_path / "run" / FOLDER)) == 1
    check_against_log(tmp_path / "run")
    # the histograms' inner loop leaves the run as it was
    plain = gf.train(experiment(3), out=tmp_path / "plain", progress=False)
    assert result.meta_losses == plain.meta_losses
    hist = read_events(tmp_path / "run" / FOLDER).histograms["updates/dense2/w"]
    assert hist[0][1].num == 2 * 20 * 20  # 2 inner steps of one task, all 400 weights (under SAMPLE)


def test_a_resumed_run_appends_without_logging_a_step_twice(tmp_path):
    folder = tmp_path / "run"
    gf.train(experiment(), out=folder, progress=False, steps=2, tensorboard=True)
    at_two = tmp_path / "checkpoint-at-2.npz"
    shutil.copy(folder / "checkpoint.npz", at_two)
    gf.train(experiment(), out=folder, resume=True, progress=False, steps=4, tensorboard=True)
    first = read_events(folder / FOLDER).all()
    check_against_log(folder)
    # the run "dies" after logging meta-steps 3 and 4 but before their checkpoint: resuming redoes them
    shutil.copy(at_two, folder / "checkpoint.npz")
    gf.train(experiment(), out=folder, resume=True, progress=False, steps=5, tensorboard=True)
    assert len(event_files(folder / FOLDER)) == 3
    events = read_events(folder / FOLDER)
    check_against_log(folder, timings=False)  # meta-steps 3 and 4 as first logged, with the same numbers
    assert [s for s, _ in events.scalars["meta/meta_loss"]] == [1, 2, 3, 4, 5]
    assert events.scalars["meta/meta_loss"][:4] == first["meta/meta_loss"]


def test_a_fresh_run_drops_event_files_of_a_run_without_checkpoint(tmp_path):
    folder = tmp_path / "run"
    gf.train(experiment(2), out=folder, progress=False, tensorboard=True)
    (folder / "checkpoint.npz").unlink()  # as if the run had died before its first checkpoint
    gf.train(experiment(3), out=folder, progress=False, tensorboard=True)
    assert len(event_files(folder / FOLDER)) == 1
    check_against_log(folder)


def test_torn_and_damaged_event_files(tmp_path):
    folder = tmp_path / "run"
    gf.train(experiment(2), out=folder, progress=False, tensorboard=True)
    (path,) = event_files(folder / FOLDER)
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # a writer killed mid-record: the last record is left out
    assert [s for s, _ in read_events(folder / FOLDER).scalars["meta/meta_loss"]] == [1, 2]
    damaged = bytearray(whole)
    damaged[len(whole) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(GraphflowError, match=r"events\.out\.tfevents.*damaged event record at byte \d+"):
        read_events(folder / FOLDER)


def test_without_tensorboardx_one_clear_error_before_any_work(tmp_path, monkeypatch, capsys):
    from graphflow.cli import main

    monkeypatch.setitem(__import__("sys").modules, "tensorboardX", None)
    with pytest.raises(GraphflowError, match="pip install 'graphflow\\[tensorboard\\]'"):
        gf.train(experiment(2), out=tmp_path / "api", progress=False, tensorboard=True)
    config = tmp_path / "tiny.json"
    config.write_text(experiment(2).model_dump_json())
    assert main(["train", str(config), "--out", str(tmp_path / "cli"), "--tensorboard", "--no-progress"]) == 2
    assert capsys.readouterr().err == f"error: {MISSING}\n"
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()
