"""Training state that cannot be lost or corrupted (issue 14): every case an adversarial user found.

Huge outer learning rates stop after a bounded number of rollbacks without ever writing a
non-finite checkpoint; rollbacks restore the state of the step before, kept in memory; log
truncation is atomic and a torn last line is dropped with a warning; a second process on a run
folder is refused; the checksum covers the header; a checkpoint of another experiment is refused
on resume with the differing fields named; arrays must fit the specs; temporary files are cleaned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.errors import GraphflowError
from graphflow.io import FolderLock
from graphflow.meta import checkpoint as ckpt
from graphflow.meta.checkpoint import load_checkpoint, non_finite_arrays, save_checkpoint
from graphflow.meta.trainer import MAX_FAILURES_IN_A_ROW, NonFiniteError, Trainer
from graphflow.spec import ExperimentSpec
from tests.cli_output import one_error_line
from tests.meta.test_trainer import log_records, meta_losses, poison, tiny_experiment

REPO = Path(__file__).resolve().parents[2]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------------------
# 1. huge learning rates, rollbacks from memory


@pytest.mark.filterwarnings("ignore:.*(overflow|invalid value).*:RuntimeWarning")
@pytest.mark.parametrize("lr", [1e30, 1e308])
def test_a_huge_learning_rate_stops_after_bounded_rollbacks(lr, tmp_path):
    exp = tiny_experiment(learning_rate=lr, steps=50)
    exp = exp.model_copy(update={"checkpoint_every": 1})
    started = time.monotonic()
    with pytest.raises(NonFiniteError, match=f"stopped after {MAX_FAILURES_IN_A_ROW} failures in a row"):
        Trainer(exp, tmp_path).train(progress=False)
    assert time.monotonic() - started < 60
    log = log_records(tmp_path)
    assert sum(r.get("event") == "rollback" for r in log) == MAX_FAILURES_IN_A_ROW - 1
    steps = [r["step"] for r in log if "meta_loss" in r]
    assert steps == sorted(set(steps))  # nothing logged twice
    if (tmp_path / "checkpoint.npz").exists():
        arrays, _ = load_checkpoint(tmp_path / "checkpoint.npz")
        assert non_finite_arrays(arrays) == []


@pytest.mark.filterwarnings("ignore:.*overflow.*:RuntimeWarning")
def test_non_finite_parameters_after_an_update_are_a_failure(tmp_path):
    trainer = Trainer(tiny_experiment(learning_rate=1e308, on_nonfinite="stop"), tmp_path)
    with pytest.raises(NonFiniteError, match=r"meta-step 1: the update \(learning rate 1e\+308\) made .* non-finite"):
        trainer.train(progress=False)
    assert trainer.step == 0 and not non_finite_arrays(trainer.state_arrays())
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_checkpoint_is_never_written_with_non_finite_values(tmp_path):
    with pytest.raises(GraphflowError, match="non-finite values in protocol/a"):
        save_checkpoint(tmp_path / "c.npz", {"protocol/a": np.array([1.0, np.nan], np.float32)}, {"step": 1})
    assert list(tmp_path.iterdir()) == []


def test_rollback_restores_the_step_before_not_the_last_checkpoint(monkeypatch, tmp_path):
    """Checkpoints every 100 steps: a failure at step 5 goes back to step 4 (in memory), so no step is
    redone and logged twice."""
    poison(monkeypatch, {5})
    exp = tiny_experiment(steps=8).model_copy(update={"checkpoint_every": 100})
    Trainer(exp, tmp_path).train(progress=False)
    assert [s for s, _ in meta_losses(tmp_path)] == list(range(1, 9))
    assert [r["step"] for r in log_records(tmp_path) if r.get("event") == "rollback"] == [4]


def test_stop_without_any_good_step_says_nothing_was_saved(monkeypatch, tmp_path):
    poison(monkeypatch, {1})
    with pytest.raises(NonFiniteError, match="no meta-step succeeded; no checkpoint was written"):
        Trainer(tiny_experiment(on_nonfinite="stop"), tmp_path).train(progress=False)


def test_a_stop_saves_the_last_good_state_for_resume(monkeypatch, tmp_path):
    poison(monkeypatch, {4})
    exp = tiny_experiment(on_nonfinite="stop").model_copy(update={"checkpoint_every": 100})
    with pytest.raises(NonFiniteError, match="last good state: meta-step 3, saved in"):
        Trainer(exp, tmp_path).train(progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.npz")[1]["step"] == 3


# ----------------------------------------------------------------------------------------------
# 2. the log: atomic truncation, torn last lines


def test_a_torn_last_line_is_dropped_with_a_warning_on_resume(uninterrupted_4, tmp_path):
    folder = uninterrupted_4(tmp_path)
    with open(folder / "log.jsonl", "a") as f:
        f.write('{"step": 5, "meta_lo')  # a full disk or a kill mid-line
    with pytest.warns(UserWarning, match="torn last line"):
        Trainer.resume(folder / "checkpoint.npz").train(progress=False)
    assert [s for s, _ in meta_losses(folder)] == [1, 2, 3, 4, 5, 6]


def test_a_damaged_line_inside_the_log_is_an_error_naming_the_line(uninterrupted_4, tmp_path):
    folder = uninterrupted_4(tmp_path)
    lines = (folder / "log.jsonl").read_text().splitlines()
    lines[1] = lines[1][:10]
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(GraphflowError, match=r"log.jsonl:2: not a JSON line"):
        Trainer.resume(folder / "checkpoint.npz").train(progress=False)


def test_log_truncation_is_atomic(uninterrupted_4, tmp_path, monkeypatch):
    """A crash while the log is rewritten leaves the old log whole."""
    from graphflow.io import atomic

    folder = uninterrupted_4(tmp_path)
    with open(folder / "log.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "meta_loss": 0.1}) + "\n")  # past the checkpoint: to be dropped
    before = (folder / "log.jsonl").read_bytes()

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", dies)
    with pytest.raises(KeyboardInterrupt):
        Trainer.resume(folder / "checkpoint.npz").train(progress=False)
    assert (folder / "log.jsonl").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.npz", "experiment.json", "log.jsonl"]


@pytest.fixture
def uninterrupted_4():
    def make(tmp_path: Path) -> Path:
        folder = tmp_path / "run"
        Trainer(tiny_experiment(), folder).train(steps=4, progress=False)
        return folder

    return make


# ----------------------------------------------------------------------------------------------
# 3. one process per run folder


def test_a_second_trainer_on_one_folder_is_refused(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(tiny_experiment().model_dump_json())
    with FolderLock(tmp_path / "run"):
        code, _, err = cli(capsys, "train", config, "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and one_error_line(err) == f"error: {tmp_path / 'run'} is in use by pid {os.getpid()}"
    assert not (tmp_path / "run" / "log.jsonl").exists()


HOLDS_THE_LOCK = """
import sys, time
from graphflow.io import FolderLock
with FolderLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_process_is_refused_until_the_first_dies(tmp_path, capsys):
    config, folder = tmp_path / "tiny.json", tmp_path / "run"
    config.write_text(tiny_experiment(steps=2).model_dump_json())
    holder = subprocess.Popen([sys.executable, "-c", HOLDS_THE_LOCK, str(folder)], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        code, _, err = cli(capsys, "train", config, "--out", folder, "--no-progress")
        assert code == 2 and one_error_line(err) == f"error: {folder} is in use by pid {holder.pid}"
    finally:
        holder.kill()
        holder.wait()
    code, _, err = cli(capsys, "train", config, "--out", folder, "--no-progress")  # the kill released it
    assert code == 0, err
    assert not (folder / ".lock").exists()


# ----------------------------------------------------------------------------------------------
# 4. headers, other experiments, array shapes


def _rewrite(path: Path, arrays: dict, header: dict) -> None:
    np.savez(path, **arrays, **{ckpt.META_KEY: np.array(json.dumps(header))})


@pytest.mark.parametrize("edit", [
    lambda h: h.update(step=-3),
    lambda h: h.update(step=h["step"] + 1),
    lambda h: h["rng"]["state"].update(state=12345),
    lambda h: h["experiment"]["meta"].update(learning_rate=0.5),
    lambda h: h["experiment"]["graph"]["layers"][0].update(units=9),
])
def test_the_checksum_covers_the_header(uninterrupted_4, tmp_path, edit, capsys):
    folder = uninterrupted_4(tmp_path)
    path = folder / "checkpoint.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != ckpt.META_KEY}
        header = json.loads(str(data[ckpt.META_KEY]))
    edit(header)
    _rewrite(path, arrays, header)
    with pytest.raises(GraphflowError, match="checksum mismatch"):
        load_checkpoint(path)
    (tmp_path / "c.json").write_text(tiny_experiment().model_dump_json())
    for args in (["train", tmp_path / "c.json", "--out", folder, "--resume", "--no-progress"],
                 ["eval", path, "--tasks", 2, "--json"], ["inspect", path, "--nodes", "dense4/w[0,0]", "--steps=1"],
                 ["explore", path, "--nodes", "dense4/w[0,0]", "--out", tmp_path / "x.html"]):
        code, _, err = cli(capsys, *args)
        assert code == 2 and "checksum mismatch" in one_error_line(err), (args, err)
    assert not (tmp_path / "x.html").exists()


def test_a_checkpoint_of_another_experiment_is_refused_with_the_fields_named(uninterrupted_4, tmp_path, capsys):
    folder = uninterrupted_4(tmp_path)
    config = tmp_path / "other.json"
    config.write_text(tiny_experiment(seed=3, learning_rate=3e-3).model_dump_json())
    code, _, err = cli(capsys, "train", config, "--out", folder, "--resume", "--no-progress")
    line = one_error_line(err)
    assert code == 2 and "meta.learning_rate: 0.0001 -> 0.003" in line and "seed: 0 -> 3" in line
    assert "--accept-checkpoint" in line
    code, out, err = cli(capsys, "train", config, "--out", folder, "--resume", "--accept-checkpoint", "--no-progress")
    assert code == 0, err
    assert ExperimentSpec.model_validate_json((folder / "experiment.json").read_text()) == tiny_experiment()


def test_runtime_fields_of_the_config_win_on_resume(uninterrupted_4, tmp_path, capsys):
    folder = uninterrupted_4(tmp_path)
    config = tmp_path / "c.json"
    config.write_text(tiny_experiment().model_copy(update={"eval_every": 1}).model_dump_json())
    code, _, err = cli(capsys, "train", config, "--out", folder, "--resume", "--no-progress")
    assert code == 0, err
    assert [r["step"] for r in log_records(folder) if "eval" in r] == [4, 5, 6]  # the end of each run, then every step


def test_resume_at_or_past_the_last_step_says_so(uninterrupted_4, tmp_path, capsys):
    folder = uninterrupted_4(tmp_path)
    config = tmp_path / "c.json"
    config.write_text(tiny_experiment().model_dump_json())
    code, _, err = cli(capsys, "train", config, "--out", folder, "--resume", "--steps", 4, "--no-progress")
    assert code == 2 and "at meta-step 4" in one_error_line(err) and "nothing to do" in err


@pytest.mark.parametrize("damage,message", [
    (lambda a: a.update({"protocol/norm::dense0/w::in_scale": np.ones(7, np.float32)}),
     r"protocol array norm::dense0/w::in_scale has shape \[7\]"),
    (lambda a: a.pop("protocol/norm::dense0/w::in_scale"), "missing norm::dense0/w::in_scale"),
    (lambda a: a.update({"protocol/learner::extra::x": np.ones(2, np.float32)}), "unknown array learner::extra::x"),
    (lambda a: a.update({"optimizer/t": np.float32(1.5)}), "optimizer/t must be a non-negative integer"),
    (lambda a: a.update({"optimizer/m::learner::nope::x": np.ones(2)}), "optimizer/m::learner::nope::x is not"),
    (lambda a: a.update({"init/dense0/w": np.ones((1, 20), np.float32)}), "an initial network .* maml False"),
])
def test_arrays_must_fit_the_specs(uninterrupted_4, tmp_path, damage, message):
    """Well-formed, correctly checksummed checkpoints whose arrays do not fit the graph and learner."""
    folder = uninterrupted_4(tmp_path)
    arrays, meta = load_checkpoint(folder / "checkpoint.npz")
    damage(arrays)
    save_checkpoint(folder / "checkpoint.npz", arrays, {k: v for k, v in meta.items() if k not in ("checksum",)})
    with pytest.raises(GraphflowError, match=message):
        Trainer.resume(folder / "checkpoint.npz")


@pytest.mark.parametrize("header", [[1, 2], "text", 3, {"kind": "graphflow-training-checkpoint"},
                                    {"kind": "graphflow-training-checkpoint", "step": 1, "rng": {}, "experiment": {}}])
def test_malformed_headers_are_clear_errors(tmp_path, header, capsys):
    path = tmp_path / "c.npz"
    arrays = {"protocol/a": np.ones(2, np.float32)}
    if isinstance(header, dict):
        save_checkpoint(path, arrays, header)
    else:
        _rewrite(path, arrays, header)
    with pytest.raises(GraphflowError):
        Trainer.resume(path)
    code, _, err = cli(capsys, "eval", path, "--tasks", 2)
    assert code == 2
    one_error_line(err)


def test_an_older_format_names_the_upgrade(tmp_path):
    path = tmp_path / "c.npz"
    arrays = {"protocol/a": np.ones(2, np.float32)}
    _rewrite(path, arrays, {"step": 1, "checksum": ckpt.checksum(arrays)})
    with pytest.raises(GraphflowError, match="older graphflow.*python -m graphflow.meta.checkpoint upgrade"):
        load_checkpoint(path)
    ckpt.upgrade_checkpoint(path)
    assert load_checkpoint(path)[1]["step"] == 1


def test_a_plain_npy_named_npz_and_damaged_zips_are_clear_errors(tmp_path):
    path = tmp_path / "c.npz"
    np.save(tmp_path / "c.npy", np.ones(3))
    (tmp_path / "c.npy").rename(path)
    with pytest.raises(GraphflowError, match=r"a single array \(.npy\)"):
        load_checkpoint(path)
    save_checkpoint(path, {"protocol/a": np.ones(300, np.float32)}, {"step": 1})
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 10] = 99  # compression method 99 in the central directory: zipfile raises NotImplementedError
    path.write_bytes(bytes(data))
    with pytest.raises(GraphflowError, match="unreadable checkpoint"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------------------------
# 5. temporary files


def test_temporary_files_of_killed_writers_are_removed_on_start(uninterrupted_4, tmp_path):
    folder = uninterrupted_4(tmp_path)
    for name in ("checkpoint.npz.k2j3.tmp", "log.jsonl.x8a.tmp", "experiment.json.aa.tmp"):
        (folder / name).write_bytes(b"half")
    (folder / "notes.tmp").write_text("mine")
    Trainer.resume(folder / "checkpoint.npz").train(progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.npz", "experiment.json", "log.jsonl", "notes.tmp"]
    assert zipfile.is_zipfile(folder / "checkpoint.npz")


# ----------------------------------------------------------------------------------------------
# the kill campaign: SIGKILL at named points, resume each time, same result as no kill


KILLS = ["meta-step:2", "checkpoint-write:2", "log-append:3", "log-rewrite:1", "checkpoint-write:1", "log-append:2",
         "meta-step:1"]
"""Where each run of the campaign dies (``GRAPHFLOW_KILL_AT``); ``log-rewrite`` needs a log to
truncate, which the kill before it (at a meta-step past the checkpoint) leaves."""


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_the_kill_campaign_ends_with_the_uninterrupted_log_and_checkpoint(tmp_path):
    exp = tiny_experiment(steps=10).model_copy(update={"checkpoint_every": 3, "eval_every": 4})
    config = tmp_path / "tiny.json"
    config.write_text(exp.model_dump_json())
    reference = tmp_path / "reference"
    Trainer(exp, reference).train(progress=False)

    folder = tmp_path / "killed"
    kills = 0
    for point in KILLS + [None]:
        env = dict(os.environ, GRAPHFLOW_KILL_AT=point or "")
        args = ["train", str(config), "--out", str(folder), "--no-progress"]
        if (folder / "checkpoint.npz").exists():
            args.append("--resume")
        proc = subprocess.run([sys.executable, "-m", "graphflow.cli", *args], cwd=REPO, env=env, capture_output=True,
                              timeout=300)
        if point is None:
            assert proc.returncode == 0, proc.stderr.decode()[-3000:]
        else:
            assert proc.returncode == -9, (point, proc.returncode, proc.stderr.decode()[-3000:])
            kills += 1
    assert kills >= 5
    assert _without_timing(log_records(folder)) == _without_timing(log_records(reference))
    got, want = load_checkpoint(folder / "checkpoint.npz"), load_checkpoint(reference / "checkpoint.npz")
    assert got[1]["step"] == want[1]["step"] == 10 and got[1]["rng"] == want[1]["rng"]
    assert set(got[0]) == set(want[0]) and all(np.array_equal(got[0][k], want[0][k]) for k in want[0])
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.npz", "experiment.json", "log.jsonl"]
