"""The sharded meta-gradient: the single-process MetaGradient's result from 2 Ray workers, also when
a worker's process is killed (between calls and in the middle of one)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from graphflow.distributed.sharded import ShardedMetaGradient, array_bytes, shard_slices
from graphflow.engine import Engine
from graphflow.errors import GraphflowError
from graphflow.graph import build
from graphflow.learners.protocol import ParamKey, Protocol
from graphflow.meta.metaloss import MetaBatch, MetaGradient
from graphflow.tasks import sample_sinusoid_meta_batch
from tests.meta.test_trainer import tiny_experiment


class Problem:
    """The tiny sinusoid experiment's graph and a random protocol; outer batches of its tasks."""

    def __init__(self):
        exp = tiny_experiment()
        self.graph = build(exp.graph)
        self.protocol = Protocol.init(self.graph, exp.learner, 0)
        self.engine = Engine(self.graph, self.protocol)
        shapes = self.engine.parameter_shapes()
        self.trainable = self.protocol.trainable() + [str(ParamKey.init(k)) for k in shapes]

    def batch(self, tasks: int, steps: int = 3, seed: int = 0):
        rng = np.random.default_rng(seed)
        b = sample_sinusoid_meta_batch(rng, tasks, steps, 10, 10)
        init = {k: self.engine.be.to_numpy(v) for k, v in self.engine.init_network(rng, tasks).params.items()}
        return MetaBatch(b["x"], b["y"], b["xe"], b["ye"]), init

    def single(self, batch, init, dtype=np.float32, **kwargs):
        """The single-process result, on one thread as the test workers (threads cut learner calls
        into blocks, which changes the float32 summation order)."""
        return MetaGradient(self.graph, self.protocol, dtype=dtype, trainable=self.trainable, threads=1)(
            self.protocol, batch, init, **kwargs)


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem()


CPUS = 0.5
"""CPUs each test worker asks of Ray: the instance has 2, and a test may hold 4 workers at once."""


@pytest.fixture(scope="module")
def sharded(ray_instance, problem):
    with ShardedMetaGradient(problem.graph, problem.protocol, trainable=problem.trainable, workers=2,
                             cpus_per_worker=CPUS) as mg:
        yield mg


def flat(grads: dict) -> np.ndarray:
    return np.concatenate([np.ravel(g).astype(np.float64) for g in grads.values()])


def assert_close(got, want, rtol):
    (loss, grads), (want_loss, want_grads) = got, want
    assert list(grads) == list(want_grads)  # the same keys, in MetaGradient's order
    assert all(grads[k].dtype == want_grads[k].dtype and grads[k].shape == want_grads[k].shape for k in grads)
    assert abs(loss - want_loss) <= rtol * abs(want_loss)
    assert np.linalg.norm(flat(grads) - flat(want_grads)) <= rtol * np.linalg.norm(flat(want_grads))


def assert_identical(got, want):
    assert got[0] == want[0] and list(got[1]) == list(want[1])
    assert all(np.array_equal(got[1][k], want[1][k]) for k in want[1])


# ----------------------------------------------------------------------------------------------
# the same result as one process


def test_two_workers_give_the_single_process_meta_gradient(sharded, problem):
    batch, init = problem.batch(tasks=5)  # shards of 3 and 2 tasks: the weights are not equal
    got = sharded(problem.protocol, batch, init, 0.7, 0.3)
    assert_close(got, problem.single(batch, init), rtol=1e-6)
    assert sharded.stats.shard_seconds and len(sharded.stats.shard_seconds) == 2
    assert sharded.stats.shard_bytes == [array_bytes((batch.select(s), {k: v[s] for k, v in init.items()}))
                                         for s in shard_slices(5, 2)]
    assert sharded.stats.protocol_bytes == array_bytes(problem.protocol.flat())


def test_in_float64_the_reduction_is_exact_to_rounding(ray_instance, problem):
    """float32 hides a wrong weighting below its rounding; float64 does not."""
    batch, init = problem.batch(tasks=3, seed=1)
    with ShardedMetaGradient(problem.graph, problem.protocol, dtype=np.float64, trainable=problem.trainable,
                             workers=2, cpus_per_worker=CPUS) as mg:
        got = mg(problem.protocol, batch, init, 0.5, 0.5)
    assert_close(got, problem.single(batch, init, np.float64, hint_weight=0.5, heldout_weight=0.5), rtol=1e-12)


def test_a_shared_initial_network_is_differentiated_as_in_one_process(sharded, problem):
    """MAML: one initial network for all tasks, sent whole to every worker; its gradient is the
    weighted sum of the shards'."""
    batch, init = problem.batch(tasks=4, seed=2)
    shared = {k: v[0] for k, v in init.items()}
    got = sharded(problem.protocol, batch, shared, init_trainable=True)
    want = problem.single(batch, shared, init_trainable=True)
    assert any(k.startswith("init::") for k in want[1])
    assert_close(got, want, rtol=1e-6)


def test_fewer_tasks_than_workers_is_one_shard_and_the_same_bits(sharded, problem):
    batch, init = problem.batch(tasks=1, seed=3)
    assert_identical(sharded(problem.protocol, batch, init), problem.single(batch, init))
    assert len(sharded.stats.shard_seconds) == 1


def test_a_workers_own_error_is_raised_as_itself(sharded, problem):
    batch, init = problem.batch(tasks=2)
    init.pop(next(iter(init)))
    with pytest.raises(ValueError, match="initial network: missing"):
        sharded(problem.protocol, batch, init)


# ----------------------------------------------------------------------------------------------
# faults


def test_a_killed_worker_is_replaced_and_its_shard_recomputed(sharded, problem):
    batch, init = problem.batch(tasks=4, seed=4)
    before = sharded(problem.protocol, batch, init)
    pids, restarts = sharded.worker_pids(), sharded.restarts
    assert all(isinstance(p, int) for p in pids) and os.getpid() not in pids
    os.kill(pids[1], signal.SIGKILL)
    after = sharded(problem.protocol, batch, init)
    assert_identical(after, before)
    assert sharded.restarts == restarts + 1 and sharded.stats.restarts == 1
    assert sharded.events[-1]["worker"] == 1 and sharded.events[-1]["pid"] == pids[1]
    assert sharded.worker_pids()[0] == pids[0] and sharded.worker_pids()[1] not in pids


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc to see the worker compute")
def test_a_worker_killed_in_the_middle_of_its_shard_changes_nothing(sharded, problem):
    batch, init = problem.batch(tasks=2, steps=40, seed=5)  # a shard of ~1 s: long enough to be killed in
    want = sharded(problem.protocol, batch, init)
    victim = sharded.worker_pids()[0]
    idle = cpu_seconds(victim)
    killed = threading.Event()

    def kill_once_computing():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and cpu_seconds(victim) < idle + 0.1:
            time.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_once_computing)
    restarts = sharded.restarts
    killer.start()
    got = sharded(problem.protocol, batch, init)
    killer.join()
    assert killed.is_set() and sharded.restarts == restarts + 1
    assert_identical(got, want)


def test_workers_that_cannot_start_are_a_clear_error(ray_instance, problem):
    with pytest.raises(GraphflowError, match=r"2 of 2 Ray workers did not start within 1 s: 2 workers of 3 CPU\(s\) "
                                             r"each need 6 CPUs, and a local Ray instance has 2"):
        ShardedMetaGradient(problem.graph, problem.protocol, workers=2, cpus_per_worker=3, start_timeout=1)


def test_bad_settings_are_refused_before_any_worker_starts(problem):
    for bad in (0, 1.5, True):
        with pytest.raises(GraphflowError, match="workers: expected a whole number of at least 1"):
            ShardedMetaGradient(problem.graph, problem.protocol, workers=bad)


def test_a_closed_sharded_meta_gradient_says_so(ray_instance, problem):
    mg = ShardedMetaGradient(problem.graph, problem.protocol, workers=1, cpus_per_worker=CPUS)
    mg.close()
    batch, init = problem.batch(tasks=1)
    with pytest.raises(GraphflowError, match="closed"):
        mg(problem.protocol, batch, init)
