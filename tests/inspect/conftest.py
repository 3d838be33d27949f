"""Small recorded runs shared by the inspection tests (no reference files needed)."""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.learners import Protocol


def tiny_engine(hidden: int = 4, backend="numpy") -> Engine:
    """1 -> ``hidden`` relu -> 1, L2, with a small random stateful learner."""
    graph = gf.build(gf.stack(1, gf.Dense(hidden), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    return Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=3, message_size=3, mlp_hidden=(8, 8)), seed=1),
                  backend)


def sine_batches(steps: int = 4, tasks: int = 1, shots: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-3, 3, (steps, tasks, shots, 1)).astype(np.float32)
    return xs, (0.4 * np.sin(xs + 0.3)).astype(np.float32)


@pytest.fixture
def make_engine():
    return tiny_engine


@pytest.fixture
def batches():
    return sine_batches


@pytest.fixture
def engine() -> Engine:
    return tiny_engine()


@pytest.fixture
def tiny_run(engine):
    """4 steps of 2 tasks, every weight and bias of the last layer and the relu nodes, with gradients."""
    from graphflow.recording import record_run

    xs, ys = sine_batches(tasks=2)
    state = engine.init_network(np.random.default_rng(1), tasks=2, init_std=0.5)
    _, run = record_run(engine, state, xs, ys, "dense2/*,dense0/w[*,*],relu1/act[*]", gradients=True)
    return run
