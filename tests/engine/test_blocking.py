"""Large learner calls run in cache-sized blocks on threads: the results must not change."""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.learners import Protocol


def _graph(sparse: bool):
    if not sparse:
        return gf.build(gf.stack(12, gf.Dense(7), gf.Sigmoid(), gf.Dense(3), gf.Softmax(), gf.CrossEntropy()))
    net = gf.FreeForm()
    x = net.input(12)
    h = net.neurons(7)
    rng = np.random.default_rng(0)
    mask = (rng.random((12, 7)) < 0.5).astype(int)
    mask[:, 0] = 1
    mask[0, :] = 1
    net.connect(x, h, mask=mask)
    a = net.activation(h, "tanh")
    o = net.neurons(3)
    net.connect(a, o)
    net.loss(o, "l2")
    return gf.build(net)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("kind", ["stateful", "stateless"])
def test_blocked_learner_calls_match_one_piece(kind, sparse):
    g = _graph(sparse)
    protocol = Protocol.init(g, gf.LearnerSpec(kind=kind, message_size=3, hidden=2), seed=1)
    whole = Engine(g, protocol, threads=1, block_rows=10**9)
    blocked = Engine(g, protocol, threads=2, block_rows=16)
    rng = np.random.default_rng(2)
    s1 = whole.init_network(rng, tasks=2)
    s2 = whole.network_from_arrays({k: v.copy() for k, v in s1.params.items()})
    n_out = g.targets[0].size
    for _ in range(3):
        x = rng.normal(size=(2, 5, 12)).astype(np.float32)
        y = rng.random((2, 5, n_out)).astype(np.float32)
        s1, r1 = whole.step(s1, x, y)
        s2, r2 = blocked.step(s2, x, y)
        np.testing.assert_allclose(r1.pred, r2.pred, rtol=1e-5, atol=1e-8)
    for key in s1.params:
        np.testing.assert_allclose(s1.params[key], s2.params[key], rtol=1e-6, atol=1e-7)
    assert blocked._executor is not None  # the blocked path really ran on threads
