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


@pytest.mark.parametrize("split", ["blocks", "one-per-thread"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("kind", ["stateful", "stateless"])
def test_blocked_learner_calls_match_one_piece(kind, sparse, split):
    g = _graph(sparse)
    protocol = Protocol.init(g, gf.LearnerSpec(kind=kind, message_size=3, hidden=2), seed=1)
    whole = Engine(g, protocol, threads=1, block_rows=10**9)
    # blocks of 16 rows; or calls under 2 x block_rows split in two halves (min_block_rows)
    blocked = (Engine(g, protocol, threads=2, block_rows=16) if split == "blocks"
               else Engine(g, protocol, threads=2, block_rows=10**9, min_block_rows=16))
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


@pytest.mark.parametrize("block_rows", [16, 80])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("kind", ["stateful", "stateless"])
def test_blocked_meta_gradient_matches_one_piece(kind, sparse, block_rows):
    """The traced learner stage (GRU cell, or the f and g MLPs) runs forward and backward block by
    block (16 rows: blocks of single weights, cutting both node axes; 80 rows: ranges of input
    units); every gradient, of the protocol and of a MAML initial network, equals the one-piece
    gradient (float64)."""
    from graphflow.meta.metaloss import MetaBatch, MetaGradient

    g = _graph(sparse)
    protocol = Protocol.init(g, gf.LearnerSpec(kind=kind, message_size=3, hidden=2), seed=1)
    rng = np.random.default_rng(3)
    n_out = g.targets[0].size
    tasks, steps, batch = 2, 2, 5
    data = MetaBatch(rng.normal(size=(tasks, steps, batch, 12)), rng.random((tasks, steps, batch, n_out)),
                     rng.normal(size=(tasks, 4, 12)), rng.random((tasks, 4, n_out)))
    init = {k: np.asarray(v[0], np.float64) for k, v in Engine(g, protocol).init_network(rng, 1).params.items()}
    trainable = protocol.trainable() + [f"init::{k}" for k in init]
    whole = MetaGradient(g, protocol, dtype=np.float64, trainable=trainable, threads=1, block_rows=10**9)
    blocked = MetaGradient(g, protocol, dtype=np.float64, trainable=trainable, threads=2, block_rows=block_rows)
    loss1, g1 = whole(protocol, data, init, init_trainable=True)
    loss2, g2 = blocked(protocol, data, init, init_trainable=True)
    assert loss1 == pytest.approx(loss2, rel=1e-12)
    assert g1.keys() == g2.keys() and any(k.startswith("init::") for k in g1)
    for key in g1:
        np.testing.assert_allclose(g2[key], g1[key], rtol=1e-9, atol=1e-13, err_msg=key)
    assert blocked.engine._executor is not None  # the blocked path really ran on threads
    assert any(np.abs(v).max() > 0 for v in g1.values())


def test_node_blocks_cover_every_row_once():
    from graphflow.backend import block_part, node_blocks

    for shape, rows in [((2, 5, 12, 7), 16), ((2, 5, 12, 7), 80), ((1, 8, 3, 1000), 500), ((2, 3, 40), 10),
                        ((1, 2, 1, 50), 10), ((1, 1, 1, 1), 1)]:
        seen = np.zeros(shape, np.int64)
        blocks = node_blocks(shape, rows)
        for block in blocks:
            block_part(seen[..., None], block)[...] += 1
        assert (seen == 1).all(), (shape, rows)
        if len(blocks) > 1:  # no block much above the asked size, unless one node is bigger
            biggest = max(block_part(seen[..., None], b).size for b in blocks)
            assert biggest <= max(rows, np.prod(shape[:2]))
