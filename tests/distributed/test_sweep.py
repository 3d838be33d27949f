"""Sweeps: a 2x2 grid of the tiny experiment (2 meta-steps a point), its run folders and tables, a
rerun that skips finished points and resumes an unfinished one exactly, the same points as Ray
tasks, and sweep files that are refused with the field at fault named."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import statistics
import threading
import time
from pathlib import Path

import pytest

from graphflow.cli import main
from graphflow.distributed.sweep import load_sweep, run_sweep
from graphflow.io import read_records
from graphflow.meta.trainer import Trainer
from graphflow.spec import ExperimentSpec
from tests.cli_output import one_error_line
from tests.meta.test_trainer import tiny_experiment

GRID = {"learner.message_size": [1, 2], "seed": [0, 1]}
LABELS = ["learner.message_size=1,seed=0", "learner.message_size=1,seed=1", "learner.message_size=2,seed=0",
          "learner.message_size=2,seed=1"]


def base_experiment() -> dict:
    return tiny_experiment().model_dump(mode="json")


def write_sweep(folder: Path, grid: dict | None = None, **fields) -> Path:
    """``folder/base.json`` (the tiny experiment) and ``folder/sweep.json`` naming it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.json").write_text(json.dumps(base_experiment()))
    data = {"name": "tiny-grid", "base": "base.json", "fixed": {"meta.steps": 2, "eval_tasks": 3},
            "grid": grid if grid is not None else GRID, **fields}
    (folder / "sweep.json").write_text(json.dumps(data))
    return folder / "sweep.json"


def meta_losses(folder: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["meta_loss"]) for r in read_records(folder / "log.jsonl") if "meta_loss" in r]


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """The 2x2 sweep run to the end in this process: (its sweep file, its folder, its results)."""
    root = tmp_path_factory.mktemp("sweep")
    path = write_sweep(root)
    results = run_sweep(load_sweep(path), root / "out")
    return path, root / "out", results


def test_every_point_is_a_run_folder_of_its_experiment(complete):
    path, out, results = complete
    sweep = load_sweep(path)
    assert [p.label for p in sweep.points] == LABELS == [r["point"] for r in results["points"]]
    for point in sweep.points:
        folder = out / "points" / point.label
        experiment = ExperimentSpec.model_validate_json((folder / "experiment.json").read_text())
        assert experiment == point.experiment
        assert (experiment.learner.message_size, experiment.seed) == (point.values["learner.message_size"],
                                                                      point.values["seed"])
        assert experiment.meta.steps == 2 and experiment.eval_tasks == 3 and experiment.learner.hidden == 2
        assert [s for s, _ in meta_losses(folder)] == [1, 2]
    assert all(r["status"] == "finished" and r["step"] == 2 and r["ran"] == "ran" for r in results["points"])
    assert json.loads((out / "sweep.json").read_text())["base"]["learner"]["hidden"] == 2


def test_the_tables_hold_each_point_and_mean_and_std_across_seeds(complete):
    _, out, results = complete
    assert json.loads((out / "results.json").read_text()) == results
    finals = {}
    for label in LABELS:  # the oracle: each run's own log
        records = read_records(out / "points" / label / "log.jsonl")
        finals[label] = [r for r in records if "eval" in r][-1]["eval"]["mean"]
        seconds = statistics.median(r["seconds"] for r in records if "meta_loss" in r)
        point = next(r for r in results["points"] if r["point"] == label)
        assert point["seconds_per_step"] == seconds
        assert point["meta_loss_curve"] == {"steps": [1, 2], "mean": [loss for _, loss in meta_losses(out / "points" / label)]}
    assert [c["config"] for c in results["configs"]] == [{"learner.message_size": 1}, {"learner.message_size": 2}]
    for c, labels in zip(results["configs"], (LABELS[:2], LABELS[2:])):
        assert c["n"] == 2 and c["seeds"] == [0, 1] and c["eval_steps"] == [0, 1, 2]
        per_step = list(zip(*(finals[label] for label in labels)))
        assert c["eval_mean"] == pytest.approx([statistics.fmean(v) for v in per_step], rel=1e-12)
        assert c["eval_std"] == pytest.approx([statistics.stdev(v) for v in per_step], rel=1e-12)
        curves = [next(r for r in results["points"] if r["point"] == label)["meta_loss_curve"]["mean"] for label in labels]
        assert c["meta_loss_steps"] == [1, 2]
        assert c["meta_loss_mean"] == pytest.approx([statistics.fmean(v) for v in zip(*curves)], rel=1e-12)
        assert c["meta_loss_std"] == pytest.approx([statistics.stdev(v) for v in zip(*curves)], rel=1e-12)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["point"] for r in rows] == LABELS and [r["seed"] for r in rows] == ["0", "1", "0", "1"]
    assert float(rows[3]["eval_step_2"]) == pytest.approx(finals[LABELS[3]][2], rel=1e-5)
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["learner.message_size"], r["seeds"]) for r in summary] == [("1", "2/2"), ("2", "2/2")]
    assert float(summary[1]["eval_step_2_std"]) == pytest.approx(results["configs"][1]["eval_std"][2], rel=1e-5)
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_skips_finished_points_and_resumes_an_unfinished_one(complete, tmp_path):
    path, done, _ = complete
    sweep = load_sweep(path)
    out = tmp_path / "out"
    first, second = sweep.points[0], sweep.points[1]
    Trainer(first.experiment, out / "points" / first.label).train(steps=1, progress=False)  # stopped at step 1
    shutil.copytree(done / "points" / second.label, out / "points" / second.label)  # finished before
    stamp = (out / "points" / second.label / "checkpoint.npz").stat().st_mtime_ns
    results = run_sweep(sweep, out)
    assert [r["ran"] for r in results["points"]] == ["resumed", "skipped", "ran", "ran"]
    for label in LABELS:  # resumed exactly: the losses of the uninterrupted sweep
        assert meta_losses(out / "points" / label) == meta_losses(done / "points" / label)
    assert (out / "points" / second.label / "checkpoint.npz").stat().st_mtime_ns == stamp
    again = run_sweep(sweep, out)
    assert [r["ran"] for r in again["points"]] == ["skipped"] * 4
    assert again["configs"] == results["configs"]


def test_a_finished_point_without_its_checkpoint_is_still_finished(complete, tmp_path):
    """A sweep kept in git keeps the logs of its finished points, not their checkpoints; an
    unfinished point without one starts again."""
    path, done, results = complete
    out = tmp_path / "out"
    shutil.copytree(done, out)
    for label in LABELS[:3]:
        (out / "points" / label / "checkpoint.npz").unlink()
    log = out / "points" / LABELS[2] / "log.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()[:1]))  # stopped at step 1
    again = run_sweep(load_sweep(path), out)
    assert [r["ran"] for r in again["points"]] == ["skipped", "skipped", "ran", "skipped"]
    assert [c["eval_mean"] for c in again["configs"]] == [c["eval_mean"] for c in results["configs"]]
    assert meta_losses(out / "points" / LABELS[2]) == meta_losses(done / "points" / LABELS[2])


def test_points_run_as_ray_tasks_are_the_points_run_here(ray_instance, complete, tmp_path):
    path, done, results = complete
    on_ray = run_sweep(load_sweep(path), tmp_path / "out", workers=2)
    for label in LABELS:
        assert meta_losses(tmp_path / "out" / "points" / label) == meta_losses(done / "points" / label)
    assert [c["eval_mean"] for c in on_ray["configs"]] == [c["eval_mean"] for c in results["configs"]]


def test_a_point_whose_ray_task_is_killed_resumes_its_checkpoint(ray_instance, tmp_path):
    """Ray retries the task of a killed process; the retry resumes the point's checkpoint, so the
    log has every meta-step once, with the losses of an uninterrupted run."""
    path = write_sweep(tmp_path, grid={"seed": [0]}, fixed={"meta.steps": 30, "checkpoint_every": 2, "eval_tasks": 3})
    point = load_sweep(path).points[0]
    folder = tmp_path / "out" / "points" / point.label
    killed = []

    def kill_the_task_after_its_first_checkpoint():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if (folder / "checkpoint.npz").exists() and (folder / ".lock").exists():
                pid = int((folder / ".lock").read_text().split()[0])  # the trainer's process: the Ray task's
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_task_after_its_first_checkpoint)
    killer.start()
    try:
        results = run_sweep(load_sweep(path), tmp_path / "out", workers=2)
    finally:
        killed.append(None)  # stop the killer if it never fired
        killer.join()
    assert isinstance(killed[0], int) and killed[0] != os.getpid()
    assert results["points"][0]["ran"] == "resumed" and results["points"][0]["step"] == 30
    Trainer(point.experiment, tmp_path / "whole").train(progress=False)
    assert meta_losses(folder) == meta_losses(tmp_path / "whole")


def test_the_command_prints_the_table_and_a_failed_point_is_an_error(complete, tmp_path, capsys):
    path, done, _ = complete
    assert main(["sweep", str(path), "--out", str(done)]) == 0
    out, err = capsys.readouterr()
    assert "learner.message_size=1,seed=0: finished before (meta-step 2), skipped" in err
    assert "learner.message_size=2" in out and "2/2" in out and "results.json" in out
    # a point whose folder holds a run of another experiment fails; the others still run
    other = tmp_path / "out" / "points" / LABELS[0]
    Trainer(tiny_experiment(seed=7).model_copy(update={"checkpoint_every": 1}), other).train(steps=1, progress=False)
    code = main(["sweep", str(path), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and f"error: 1 of 4 grid points failed: {LABELS[0]}: " in err
    assert "is a checkpoint of another experiment than the config" in err
    assert [r["status"] for r in json.loads((tmp_path / "out" / "results.json").read_text())["points"]] == \
        ["failed", "finished", "finished", "finished"]


# ----------------------------------------------------------------------------------------------
# bad sweep files


BASE = "base.json"

BAD_SWEEPS = {
    "unknown field": ({"base": BASE, "grid": {"learner.mesage_size": [1]}},
                      "grid: learner.mesage_size is not a field of the experiment (learner has no 'mesage_size'"),
    "a value below a field": ({"base": BASE, "grid": {"meta.steps.x": [1]}},
                              "meta.steps.x is not a field of the experiment (meta.steps is a value"),
    "a value the experiment refuses": ({"base": BASE, "grid": {"learner.message_size": [2, 0]}},
                                       "grid point learner.message_size=0: invalid experiment spec:\n"
                                       "  learner.message_size: Input should be greater than 0 (got 0)"),
    "an unknown sweep field": ({"base": BASE, "grids": {"seed": [0]}}, "grids: Extra inputs are not permitted"),
    "no grid": ({"base": BASE}, "grid: Field required"),
    "an empty grid": ({"base": BASE, "grid": {}}, "grid: Dictionary should have at least 1 item"),
    "a field with no values": ({"base": BASE, "grid": {"seed": []}}, "seed: no values"),
    "values twice": ({"base": BASE, "grid": {"seed": [0, 1, 0]}}, "seed: 0 given more than once"),
    "values not a list": ({"base": BASE, "grid": {"seed": 3}}, "grid.seed: Input should be a valid list"),
    "fixed and in the grid": ({"base": BASE, "fixed": {"seed": 1}, "grid": {"seed": [0]}},
                              "seed is both fixed and in the grid"),
    "a missing base": ({"base": "nowhere.json", "grid": {"seed": [0]}}, "nowhere.json"),
    "a base that is no experiment": ({"base": {"graph": {"kind": "stack"}}, "grid": {"seed": [0]}},
                                     "base: invalid experiment spec:"),
}


@pytest.mark.parametrize("case", list(BAD_SWEEPS))
def test_a_bad_sweep_file_is_one_error_naming_the_field(case, tmp_path, capsys):
    data, expected = BAD_SWEEPS[case]
    (tmp_path / BASE).write_text(json.dumps(base_experiment()))
    (tmp_path / "sweep.json").write_text(json.dumps(data))
    code = main(["sweep", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2, err
    one_error_line(err, out)
    assert expected in err and str(tmp_path / "sweep.json") in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_sweep_file_that_is_not_json_is_named(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text("{grid: 1")
    assert main(["sweep", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert "sweep.json: not valid JSON" in one_error_line(err, out)


def test_an_address_without_workers_is_refused(tmp_path, capsys):
    assert main(["sweep", str(write_sweep(tmp_path)), "--out", str(tmp_path / "out"), "--address", "auto"]) == 2
    out, err = capsys.readouterr()
    assert "--address: a sweep runs on Ray only with --workers 2 or more" in one_error_line(err, out)
