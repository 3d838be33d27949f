"""Truncated backprop on Ray workers: each worker keeps its task slots' inner networks across
truncations and differentiates their windows under its own tape; the meta-losses and checkpoints
of one process within float32 summation order, also after a resume (the checkpoint fetches every
slot's networks from the workers, the resume sends them back) and a worker killed mid-run."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from graphflow.meta.checkpoint import load_checkpoint
from graphflow.meta.trainer import Trainer
from graphflow.spec import parse_experiment_spec
from tests.distributed.conftest import (assert_losses_close, experiment, train, train_killing_a_worker,
                                        train_stopped_and_resumed, write)
from tests.distributed.test_sweep import meta_losses

TRUNCATED = {"kind": "truncated", "unroll": {"kind": "log_uniform", "low": 2, "high": 6},
             "truncation": {"kind": "log_uniform", "low": 1, "high": 3}}
"""Unrolls of 2-6 steps and truncations of 1-3, drawn: tasks restart during the run, start spread
out, and in some meta-steps a worker's two slots run windows of different lengths."""


def truncated_experiment(steps: int = 5, workers: int | None = None) -> dict:
    data = experiment(steps=steps, workers=workers, estimator=TRUNCATED)
    data["meta"]["outer_batch"] = 4  # 2 task slots a worker
    return data


def assert_close_checkpoints(a_dir, b_dir, rtol=1e-5, atol=5e-6):
    """The same entries; the tasks identical, the protocol and the inner networks within float32
    rounding (5 meta-steps apart from one process: 1.2e-6 at most, measured)."""
    (a, meta_a), (b, meta_b) = (load_checkpoint(d / "checkpoint.npz") for d in (a_dir, b_dir))
    assert meta_a["step"] == meta_b["step"] and sorted(a) == sorted(b)
    for key in a:
        if a[key].dtype.kind in "iu":
            assert np.array_equal(a[key], b[key]), key
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol, err_msg=key)
    states = [k for k in a if k.startswith("estimator/state/params/")]
    assert states and all(a[k].shape[:2] == (1, 4) for k in states)  # every slot's networks, from the workers


def test_truncated_on_two_workers_resumed_logs_the_one_process_meta_losses(ray_instance, tmp_path, capsys):
    config = write(tmp_path / "truncated.json", truncated_experiment())
    train(config, tmp_path / "one")
    train(config, tmp_path / "two", "--workers", "2")
    # 3 meta-steps on workers (checkpoints at steps 2 and 3), then resumed on workers to 5
    train_stopped_and_resumed(config, tmp_path / "resumed", steps=3)
    capsys.readouterr()
    want = meta_losses(tmp_path / "one")
    assert [s for s, _ in want] == [1, 2, 3, 4, 5] and len({loss for _, loss in want}) == 5
    assert_losses_close(meta_losses(tmp_path / "two"), want)
    assert_losses_close(meta_losses(tmp_path / "resumed"), want)
    assert_close_checkpoints(tmp_path / "one", tmp_path / "two")
    assert_close_checkpoints(tmp_path / "one", tmp_path / "resumed")


def test_the_slots_live_on_the_workers_and_a_lost_worker_says_so(ray_instance, tmp_path):
    from graphflow.distributed.truncated import DistributedTruncated
    from graphflow.errors import GraphflowError

    one = Trainer(parse_experiment_spec(truncated_experiment(steps=2)), tmp_path / "one")
    one.train(progress=False)
    one.meta_step()
    want = one.state_arrays()
    trainer = Trainer(parse_experiment_spec(truncated_experiment(steps=2, workers=2)), tmp_path / "run")
    try:
        trainer.train(progress=False)
        estimator = trainer.estimator
        assert isinstance(estimator, DistributedTruncated)
        assert [list(s) for s in estimator.shards.slices] == [[0, 1], [2, 3]]
        stats = estimator.shards.stats
        assert len(stats.shard_seconds) == 2 and all(b > 0 for b in stats.result_bytes)
        trainer.meta_step()  # no snapshot after it: the networks are on the workers only
        assert estimator.local.states == []
        # a worker lost before the networks are fetched: its replacement replays the step from the networks before it
        os.kill(estimator.shards.worker_pids()[0], signal.SIGKILL)
        got = trainer.state_arrays()
        assert estimator.shards.restarts == 1
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=5e-6, err_msg=key)
        # two steps with no snapshot: the driver holds neither the networks before the last step
        # nor those before the one before
        trainer.meta_step()
        trainer.meta_step()
        os.kill(estimator.shards.worker_pids()[1], signal.SIGKILL)
        with pytest.raises(GraphflowError, match=r"the Ray worker of truncated-backprop task slots 2-3 lost their "
                                                 r"inner networks .*graphflow train --resume"):
            trainer.meta_step()
    finally:
        trainer.close()


def test_a_truncated_worker_killed_mid_run_gets_its_slots_networks_back(ray_instance, tmp_path):
    """The trainer's snapshot after each meta-step fetched every slot's networks: the replacement
    gets its slots' and recomputes its slice; the log and checkpoint are the uninterrupted run's."""
    whole = Trainer(parse_experiment_spec(truncated_experiment(workers=2)), tmp_path / "whole")
    try:
        whole.train(progress=False)
    finally:
        whole.close()
    trainer = Trainer(parse_experiment_spec(truncated_experiment(workers=2)), tmp_path / "killed")
    killed, restarts = train_killing_a_worker(trainer, lambda t: t.estimator.shards, 0)
    assert killed and restarts == 1
    assert [s for s, _ in meta_losses(tmp_path / "killed")] == [1, 2, 3, 4, 5]
    assert meta_losses(tmp_path / "killed") == meta_losses(tmp_path / "whole")  # the same workers: the same bits
    assert_close_checkpoints(tmp_path / "whole", tmp_path / "killed", rtol=0, atol=0)
