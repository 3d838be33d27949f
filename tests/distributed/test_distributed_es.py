"""ES populations on Ray workers: workers get a seed and member indices and return fitness values;
the meta-losses of one process bit for bit (in one call, in a training run, after a resume), and a
worker killed mid-run changes nothing."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from graphflow.distributed.population import DistributedEs, EsPopulation, member_slices
from graphflow.meta.estimators import EngineLoop, EsEstimator
from graphflow.meta.trainer import Trainer
from graphflow.spec import parse_experiment_spec
from tests.distributed.conftest import (assert_same_checkpoints, experiment, train, train_killing_a_worker,
                                        train_stopped_and_resumed, write)
from tests.distributed.test_sharded import Problem
from tests.distributed.test_sweep import meta_losses

ES = {"kind": "es", "population": 6, "sigma": 0.05}
"""Three antithetic pairs: two workers get two pairs and one."""


def es_experiment(steps: int = 4, workers: int | None = None, **meta) -> dict:
    return experiment(steps=steps, workers=workers, estimator=ES, **meta)


# ----------------------------------------------------------------------------------------------
# one call


@pytest.fixture(scope="module")
def es_problem():
    problem = Problem()
    loop = EngineLoop(problem.graph, problem.protocol, problem.protocol.trainable(), threads=1)
    estimator = EsEstimator(loop, tasks=3, steps=3, population=ES["population"], sigma=ES["sigma"])
    return problem, estimator


@pytest.fixture
def population(ray_instance, es_problem):
    """Two workers of half a CPU each, stopped after each test: the training tests need the instance's 2 CPUs."""
    with EsPopulation(es_problem[1], workers=2, cpus_per_worker=0.5) as pool:
        yield pool


def test_member_slices_keep_pairs_whole():
    assert member_slices(6, 2) == [range(0, 4), range(4, 6)]
    assert member_slices(64, 2) == [range(0, 32), range(32, 64)]
    assert [len(s) for s in member_slices(10, 4)] == [4, 2, 2, 2]


def test_two_workers_give_the_one_process_estimate_bit_for_bit(population, es_problem):
    problem, estimator = es_problem
    batch, init = problem.batch(tasks=3, seed=7)
    want = estimator.gradient(problem.protocol, batch, init, seed=11)
    got = DistributedEs(estimator, population).gradient(problem.protocol, batch, init, seed=11)
    assert got[0] == want[0] and list(got[1]) == list(want[1])
    assert all(got[1][k].dtype == want[1][k].dtype and np.array_equal(got[1][k], want[1][k]) for k in want[1])
    stats = population.stats
    assert len(stats.shard_seconds) == 2 and all(cpu > 0 for cpu in stats.shard_cpu_seconds)
    # what comes back is one float64 per member: fitness values, not noise arrays
    assert stats.result_bytes == [4 * 8, 2 * 8]
    assert stats.shard_bytes[0] == sum(a.nbytes for a in (batch.x, batch.y, batch.xe, batch.ye)) + \
        sum(v.nbytes for v in init.values())
    # another seed, other noise: the workers do not answer from a cache
    other = population.losses(problem.protocol, batch, init, seed=12)
    assert np.array_equal(other, estimator.member_losses(estimator.loop.parameters(problem.protocol), batch, init,
                                                         12, range(ES["population"])))
    assert not np.array_equal(other, population.losses(problem.protocol, batch, init, seed=11))


def test_a_killed_es_worker_is_replaced_and_its_members_recomputed(population, es_problem):
    problem, _ = es_problem
    batch, init = problem.batch(tasks=3, seed=8)
    before = population.losses(problem.protocol, batch, init, seed=5)
    pids, restarts = population.worker_pids(), population.restarts
    os.kill(pids[0], signal.SIGKILL)
    after = population.losses(problem.protocol, batch, init, seed=5)
    assert np.array_equal(after, before)
    assert population.restarts == restarts + 1 and population.events[-1]["pid"] == pids[0]
    assert population.worker_pids()[1] == pids[1] and population.worker_pids()[0] not in pids


# ----------------------------------------------------------------------------------------------
# training runs


def test_es_on_two_workers_resumed_logs_the_one_process_meta_losses(ray_instance, tmp_path, capsys):
    config = write(tmp_path / "es.json", es_experiment())
    train(config, tmp_path / "one")
    train_stopped_and_resumed(config, tmp_path / "resumed", steps=2)  # stopped after 2 meta-steps on workers
    capsys.readouterr()
    want = meta_losses(tmp_path / "one")
    assert [s for s, _ in want] == [1, 2, 3, 4] and len({loss for _, loss in want}) == 4
    assert meta_losses(tmp_path / "resumed") == want  # identical, not close
    assert_same_checkpoints(tmp_path / "one", tmp_path / "resumed")


def test_an_es_worker_killed_mid_run_leaves_the_same_log_and_checkpoint(ray_instance, tmp_path):
    exp = parse_experiment_spec(es_experiment(steps=6, workers=2))
    whole = Trainer(parse_experiment_spec(es_experiment(steps=6)), tmp_path / "whole")
    whole.train(progress=False)

    trainer = Trainer(exp, tmp_path / "killed")
    killed, restarts = train_killing_a_worker(trainer, lambda t: t.estimator.population, 1)
    assert isinstance(trainer.estimator, DistributedEs)
    assert killed and restarts == 1
    assert meta_losses(tmp_path / "killed") == meta_losses(tmp_path / "whole")  # no gap, no duplicate, same bits
    assert [s for s, _ in meta_losses(tmp_path / "killed")] == list(range(1, 7))
    assert_same_checkpoints(tmp_path / "whole", tmp_path / "killed")
