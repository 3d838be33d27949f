"""The Ray instance the distributed tests share: 2 CPUs, started once per session; and the helpers
of their training runs (experiments, runs stopped and resumed, a worker killed mid-run).

Tests that need Ray skip with the reason when it is not installed (``pip install 'graphflow[ray]'``),
except under CI=true, where CI installs the extra and a missing Ray is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.distributed.cluster import INSTALL_HINT, ray_available
from graphflow.meta.checkpoint import load_checkpoint


def require_ray_for_tests():
    if not ray_available():
        reason = f"Ray is not installed ({INSTALL_HINT})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    import ray

    return ray


@pytest.fixture(scope="session")
def ray_instance():
    """A local Ray instance of 2 CPUs for the session (the machine has 2 cores, shared with other work)."""
    ray = require_ray_for_tests()
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


# ----------------------------------------------------------------------------------------------
# what the training-run tests share


def experiment(steps: int = 4, workers: int | None = None, **meta) -> dict:
    """The tiny experiment of tests/meta/test_trainer.py as JSON data; ``workers``: on that many Ray workers."""
    from tests.meta.test_trainer import tiny_experiment

    data = tiny_experiment(steps=steps, **meta).model_dump(mode="json")
    if workers:
        data["distributed"] = {"engine": "ray", "workers": workers, "address": None}
    return data


def write(path, data: dict) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def train(config: str, out, *args: str) -> None:
    """``graphflow train config --out out *args --no-progress``, which must succeed."""
    assert main(["train", config, "--out", str(out), *args, "--no-progress"]) == 0


def train_stopped_and_resumed(config: str, out, steps: int, workers: int = 2) -> None:
    """``config`` trained into ``out`` on ``workers`` workers for ``steps`` meta-steps, then resumed on them to its end."""
    train(config, out, "--steps", str(steps), "--workers", str(workers))
    train(config, out, "--resume", "--workers", str(workers))


def assert_losses_close(got, want, rtol=1e-6):
    assert [s for s, _ in got] == [s for s, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert abs(a - b) <= rtol * abs(b), (a, b)


def assert_same_checkpoints(a_dir, b_dir):
    """The checkpoints of two runs: the same step and entries, every entry bit for bit."""
    (a, meta_a), (b, meta_b) = (load_checkpoint(d / "checkpoint.npz") for d in (a_dir, b_dir))
    assert meta_a["step"] == meta_b["step"] and sorted(a) == sorted(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def train_killing_a_worker(trainer, pool, worker: int, after_step: int = 2) -> tuple[list[int], int]:
    """Train ``trainer`` to its end while a thread kills worker ``worker`` of ``pool(trainer)``
    (its ActorPool, there once the run has started) as soon as the run's log has meta-step
    ``after_step``; then close it. (the pids killed, the pool's restarts)."""
    log = trainer.out / "log.jsonl"
    killed = []

    def kill_a_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.exists() and any(json.loads(line).get("step", 0) >= after_step
                                    for line in log.read_text().splitlines() if line.endswith("}")):
                pid = pool(trainer).worker_pids()[worker]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        trainer.train(progress=False)
        restarts = pool(trainer).restarts
    finally:
        killer.join()
        trainer.close()
    return killed, restarts
