"""PES populations on Ray workers: each worker keeps its members' inner networks across
truncations; the meta-losses and checkpoints of one process bit for bit, also after a resume
(the checkpoint fetches every member's networks from the workers, the resume sends them back)."""

from __future__ import annotations

import pytest

from graphflow.spec import parse_experiment_spec
from tests.distributed.conftest import (assert_same_checkpoints, experiment, train, train_killing_a_worker,
                                        train_stopped_and_resumed, write)
from tests.distributed.test_sweep import meta_losses

PES = {"kind": "pes", "unroll": 4, "truncation": 2, "population": 4, "sigma": 0.05}
"""Two pairs (one a worker); unrolls of 2 truncations, so tasks restart during the run."""


def test_pes_on_two_workers_resumed_logs_the_one_process_meta_losses(ray_instance, tmp_path, capsys):
    config = write(tmp_path / "pes.json", experiment(steps=5, estimator=PES))
    train(config, tmp_path / "one")
    # 3 meta-steps on workers (a checkpoint at step 2 and 3), then resumed on workers to 5
    train_stopped_and_resumed(config, tmp_path / "resumed", steps=3)
    capsys.readouterr()
    want = meta_losses(tmp_path / "one")
    assert [s for s, _ in want] == [1, 2, 3, 4, 5] and len({loss for _, loss in want}) == 5
    assert meta_losses(tmp_path / "resumed") == want  # identical, not close
    assert_same_checkpoints(tmp_path / "one", tmp_path / "resumed")  # every member's inner networks included


def test_a_pes_worker_killed_mid_run_gets_its_members_networks_back(ray_instance, tmp_path):
    """The trainer's snapshot after each meta-step fetched every member's networks: the
    replacement gets its members' and recomputes its slice; the log and checkpoint are as if
    nothing had happened."""
    from graphflow.meta.trainer import Trainer

    whole = Trainer(parse_experiment_spec(experiment(steps=5, estimator=PES)), tmp_path / "whole")
    whole.train(progress=False)
    trainer = Trainer(parse_experiment_spec(experiment(steps=5, workers=2, estimator=PES)), tmp_path / "killed")
    killed, restarts = train_killing_a_worker(trainer, lambda t: t.estimator.population, 0)
    assert killed and restarts == 1
    assert meta_losses(tmp_path / "killed") == meta_losses(tmp_path / "whole")
    assert [s for s, _ in meta_losses(tmp_path / "killed")] == [1, 2, 3, 4, 5]
    assert_same_checkpoints(tmp_path / "whole", tmp_path / "killed")


def test_the_networks_live_on_the_workers_and_a_lost_worker_says_so(ray_instance, tmp_path):
    import os
    import signal

    import numpy as np

    from graphflow.distributed.persistent import DistributedPes
    from graphflow.errors import GraphflowError
    from graphflow.meta.checkpoint import load_checkpoint
    from graphflow.meta.trainer import Trainer

    one = Trainer(parse_experiment_spec(experiment(steps=2, estimator=PES)), tmp_path / "one")
    one.train(progress=False)
    one.meta_step()
    want = one.state_arrays()
    trainer = Trainer(parse_experiment_spec(experiment(steps=2, workers=2, estimator=PES)), tmp_path / "run")
    try:
        trainer.train(progress=False)
        estimator = trainer.estimator
        assert isinstance(estimator, DistributedPes)
        assert [len(s) for s in estimator.population.slices] == [2, 2]
        assert len(estimator.population.stats.shard_seconds) == 2
        arrays, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
        states = [k for k in arrays if k.startswith("estimator/state/params/")]
        assert states and all(arrays[k].shape[:2] == (4, 2) for k in states)  # 4 members x 2 tasks, from the workers
        trainer.meta_step()  # no snapshot after it: the networks are on the workers only
        assert estimator.local.states == []
        # a worker lost before the networks are fetched: its replacement replays the step from the networks before it
        os.kill(estimator.population.worker_pids()[0], signal.SIGKILL)
        got = trainer.state_arrays()
        assert estimator.population.restarts == 1
        assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
        # two steps with no snapshot: the driver holds neither the networks before the last step nor before the one before
        trainer.meta_step()
        trainer.meta_step()
        os.kill(estimator.population.worker_pids()[1], signal.SIGKILL)
        with pytest.raises(GraphflowError, match=r"the Ray worker of PES members 2-3 lost their inner networks .*"
                                                 r"graphflow train --resume"):
            trainer.meta_step()
    finally:
        trainer.close()
