"""graphflow train --workers N: the meta-losses of one process, a resume that changes the number
of workers, and a worker killed mid-run that leaves the final checkpoint as it would have been."""

from __future__ import annotations

import json

import pytest

from graphflow.cli import main
from graphflow.meta.checkpoint import load_checkpoint
from graphflow.meta.trainer import Trainer
from graphflow.spec import parse_experiment_spec
from tests.cli_output import one_error_line
from tests.distributed.conftest import (assert_losses_close, assert_same_checkpoints, experiment, train,
                                        train_killing_a_worker, write)
from tests.distributed.test_sweep import meta_losses


def test_two_workers_log_the_meta_losses_of_one_process(ray_instance, tmp_path, capsys):
    config = write(tmp_path / "tiny.json", experiment())
    train(config, tmp_path / "one")
    train(config, tmp_path / "two", "--workers", "2")
    capsys.readouterr()
    assert_losses_close(meta_losses(tmp_path / "two"), meta_losses(tmp_path / "one"))
    written = json.loads((tmp_path / "two" / "experiment.json").read_text())
    assert written["distributed"] == {"engine": "ray", "workers": 2, "address": None}
    # a run started in one process resumes on workers: how the work is split is a runtime field
    train(config, tmp_path / "mixed", "--steps", "2")
    train(config, tmp_path / "mixed", "--resume", "--workers", "2")
    capsys.readouterr()
    assert_losses_close(meta_losses(tmp_path / "mixed"), meta_losses(tmp_path / "one"))


def test_the_spec_field_alone_runs_on_workers(ray_instance, tmp_path, capsys):
    config = write(tmp_path / "tiny.json", experiment(steps=2, workers=2))
    trainer = Trainer(parse_experiment_spec(json.loads(open(config).read())), tmp_path / "run")
    try:
        trainer.train(progress=False)
        sharded = trainer.metagrads[0]
        assert type(sharded).__name__ == "ShardedMetaGradient" and sharded.workers == 2
        assert len(sharded.stats.shard_seconds) == 2  # the outer batch of 2 tasks, one per worker
    finally:
        trainer.close()
    assert [s for s, _ in meta_losses(tmp_path / "run")] == [1, 2]


def test_a_worker_killed_mid_run_leaves_the_same_final_checkpoint(ray_instance, tmp_path):
    exp = parse_experiment_spec(experiment(steps=8, workers=2, inner_steps=6))
    uninterrupted = Trainer(exp, tmp_path / "whole")
    try:
        uninterrupted.train(progress=False)
    finally:
        uninterrupted.close()

    killed, restarts = train_killing_a_worker(Trainer(exp, tmp_path / "killed"), lambda t: t.metagrads[0], 1)
    assert killed and restarts == 1
    assert meta_losses(tmp_path / "killed") == meta_losses(tmp_path / "whole")  # no gap, no duplicate, same bits
    assert [s for s, _ in meta_losses(tmp_path / "killed")] == list(range(1, 9))
    assert_same_checkpoints(tmp_path / "whole", tmp_path / "killed")
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.npz")[1]["step"] == 8


@pytest.mark.parametrize("args, message", [
    (["--address", "auto"], "--address: say how many Ray workers the run uses (--workers N)"),
    (["--workers", "0", "--address", "auto"], "--address: a run joins a Ray cluster only with --workers 1 or more"),
])
def test_an_address_needs_workers(args, message, tmp_path, capsys):
    config = write(tmp_path / "tiny.json", experiment())
    assert main(["train", config, "--out", str(tmp_path / "run"), *args]) == 2
    out, err = capsys.readouterr()
    assert message in one_error_line(err, out)
    assert not (tmp_path / "run").exists()
