"""graphflow train --workers N: the meta-losses of one process, a resume that changes the number
of workers, and a worker killed mid-run that leaves the final checkpoint as it would have been."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.meta.checkpoint import load_checkpoint
from graphflow.meta.trainer import Trainer
from graphflow.spec import parse_experiment_spec
from tests.cli_output import one_error_line
from tests.distributed.test_sweep import meta_losses
from tests.meta.test_trainer import tiny_experiment


def experiment(steps: int = 4, workers: int | None = None, **meta) -> dict:
    data = tiny_experiment(steps=steps, **meta).model_dump(mode="json")
    if workers:
        data["distributed"] = {"engine": "ray", "workers": workers, "address": None}
    return data


def write(path, data: dict):
    path.write_text(json.dumps(data))
    return str(path)


def assert_losses_close(got, want, rtol=1e-6):
    assert [s for s, _ in got] == [s for s, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert abs(a - b) <= rtol * abs(b), (a, b)


def test_two_workers_log_the_meta_losses_of_one_process(ray_instance, tmp_path, capsys):
    config = write(tmp_path / "tiny.json", experiment())
    assert main(["train", config, "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["train", config, "--out", str(tmp_path / "two"), "--workers", "2", "--no-progress"]) == 0
    capsys.readouterr()
    assert_losses_close(meta_losses(tmp_path / "two"), meta_losses(tmp_path / "one"))
    written = json.loads((tmp_path / "two" / "experiment.json").read_text())
    assert written["distributed"] == {"engine": "ray", "workers": 2, "address": None}
    # a run started in one process resumes on workers: how the work is split is a runtime field
    assert main(["train", config, "--out", str(tmp_path / "mixed"), "--steps", "2", "--no-progress"]) == 0
    assert main(["train", config, "--out", str(tmp_path / "mixed"), "--resume", "--workers", "2", "--no-progress"]) == 0
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

    trainer = Trainer(exp, tmp_path / "killed")
    killed = []

    def kill_a_worker_after_step_2():
        log = tmp_path / "killed" / "log.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.exists() and any(json.loads(line).get("step", 0) >= 2 for line in log.read_text().splitlines()
                                    if line.endswith("}")):
                pid = trainer.metagrads[0].worker_pids()[1]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_worker_after_step_2)
    killer.start()
    try:
        trainer.train(progress=False)
        restarts = trainer.metagrads[0].restarts
    finally:
        killer.join()
        trainer.close()
    assert killed and restarts == 1
    assert meta_losses(tmp_path / "killed") == meta_losses(tmp_path / "whole")  # no gap, no duplicate, same bits
    assert [s for s, _ in meta_losses(tmp_path / "killed")] == list(range(1, 9))
    (a, meta_a), (b, meta_b) = (load_checkpoint(tmp_path / name / "checkpoint.npz") for name in ("whole", "killed"))
    assert meta_a["step"] == meta_b["step"] == 8 and sorted(a) == sorted(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)


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
