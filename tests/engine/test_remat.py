"""Recomputed learner cells (``remat_cells``): the same meta-gradient, with no cell residuals kept."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from graphs import mnist

import graphflow as gf
from graphflow.engine import Engine
from graphflow.learners.protocol import Protocol
from graphflow.meta.metaloss import MetaBatch, MetaGradient


def _setup(kind: str, dtype=np.float64):
    graph = mnist()
    protocol = Protocol.init(graph, gf.LearnerSpec(kind=kind, message_size=2, hidden=3, mlp_hidden=(8, 6)), seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 4, 144)).astype(dtype)
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, (1, 3, 4))]
    xe = rng.standard_normal((1, 4, 144)).astype(dtype)
    ye = np.eye(10, dtype=dtype)[rng.integers(0, 10, (1, 4))]
    init = Engine(graph, protocol).init_network(np.random.default_rng(3), tasks=1).params
    return graph, protocol, MetaBatch(x, y, xe, ye), dict(init)


@pytest.mark.parametrize("kind", ["stateful", "stateless"])
@pytest.mark.parametrize("block_rows", [64, 4096])
def test_recomputed_cells_give_the_same_meta_gradient(kind, block_rows):
    graph, protocol, batch, init = _setup(kind)
    kept = MetaGradient(graph, protocol, dtype=np.float64, threads=2, block_rows=block_rows, min_block_rows=0)
    remat = MetaGradient(graph, protocol, dtype=np.float64, threads=2, block_rows=block_rows, min_block_rows=0,
                         remat_cells=True)
    (l0, g0), (l1, g1) = kept(protocol, batch, init), remat(protocol, batch, init)
    assert l1 == l0
    for key in g0:
        np.testing.assert_allclose(g1[key], g0[key], rtol=1e-12, atol=1e-15, err_msg=key)


def test_recomputed_cells_keep_less_on_the_tape():
    graph, protocol, batch, init = _setup("stateful", np.float32)

    def peak(**options):
        metagrad = MetaGradient(graph, protocol, threads=1, **options)
        metagrad(protocol, batch, init)
        tracemalloc.start()
        metagrad(protocol, batch, init)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    assert peak(remat_cells=True) < 0.6 * peak()
