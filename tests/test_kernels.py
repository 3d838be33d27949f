"""The learner cells' kernels: the compiled (numba) chains against the array operations.

The array kernels are the oracle: the compiled ones must give the same inner steps and
meta-gradients within 1e-5, keep NaN and inf as IEEE does, and be chosen as documented.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphs import mnist, sinusoid, skip_two_losses

import graphflow as gf
from graphflow.backend import Backend, get_backend
from graphflow.engine import Engine
from graphflow.errors import GraphflowError
from graphflow.kernels import choose_kernels, numba_available
from graphflow.kernels.generic import ArrayKernels
from graphflow.learners.protocol import Protocol
from graphflow.meta.metaloss import MetaBatch, MetaGradient

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed (pip install 'graphflow[fast]')")


def _kernels():
    from graphflow.kernels.cpu_numba import NumbaKernels

    return ArrayKernels(np), NumbaKernels(np)


def _backend(kind: str) -> Backend:
    return Backend("numpy", np, np.float32, kernels=choose_kernels("numpy", np, np.float32, kind))


def _close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(a).max(), 1e-30)
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


def test_the_rational_tanh_is_within_4e_7_of_tanh_everywhere():
    _, fast = _kernels()
    x = np.linspace(-30, 30, 3_000_001, dtype=np.float32)[None]
    y = fast.act_(x.copy(), "tanh")
    assert np.abs(y.astype(np.float64) - np.tanh(x.astype(np.float64))).max() < 4e-7
    assert np.abs(y).max() <= 1.0
    # odd, exact at 0, and tiny arguments are not flushed
    assert np.array_equal(fast.act_(-x.copy(), "tanh"), -y)
    tiny = np.array([[0.0, 1e-30, -1e-20]], np.float32)
    assert np.array_equal(fast.act_(tiny.copy(), "tanh"), tiny)


def test_nan_and_inf_keep_their_meaning():
    plain, fast = _kernels()
    x = np.array([[np.nan, np.inf, -np.inf, 0.5, -2.0]], np.float32)
    zero = np.zeros(5, np.float32)
    for act in ("tanh", "relu"):
        np.testing.assert_allclose(fast.bias_act_(x.copy(), zero, act), plain.bias_act_(x.copy(), zero, act), rtol=1e-6)
        d = np.array([[np.nan, 1.0, np.inf, 2.0, 3.0]], np.float32)
        h = plain.act_(x.copy(), act)
        np.testing.assert_allclose(fast.times_act_grad_(d.copy(), h, act), plain.times_act_grad_(d.copy(), h, act), rtol=1e-6)
    g = np.full((1, 5), np.nan, np.float32)
    assert np.isnan(fast.gru_out_grads(g, x, x, x)[0]).all()


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_every_kernel_agrees_with_the_array_operations(act):
    plain, fast = _kernels()
    rng = np.random.default_rng(0)
    lead, width = (2, 3, 5, 7), 6

    def arr(*shape):
        return (rng.standard_normal(shape) * 2).astype(np.float32)

    a, b, xa = arr(*lead, width), arr(width), arr(*lead, 3 * width + 4)
    _close(fast.bias_act_(a.copy(), b, act), plain.bias_act_(a.copy(), b, act))
    _close(fast.act_(a.copy(), act), plain.act_(a.copy(), act))
    b4 = arr(width + 4)
    _close(fast.add_bias_act(xa, 2 * width, b4, act), plain.add_bias_act(xa, 2 * width, b4, act))
    for lo in (0, width):
        _close(fast.gate_(a.copy(), xa, lo, b), plain.gate_(a.copy(), xa, lo, b))
    c, n, u, g, h = (arr(*lead, width) for _ in range(5))
    n, u, h = np.tanh(n), 1 / (1 + np.exp(-u)), plain.act_(h, act)
    _close(fast.blend(c, n, u), plain.blend(c, n, u))
    _close(fast.times_act_grad_(g.copy(), h, act), plain.times_act_grad_(g.copy(), h, act))
    _close(fast.tanh_grad(n, xa[..., :width]), plain.tanh_grad(n, xa[..., :width]))
    for got, want in zip(fast.gru_out_grads(g, c, n, u), plain.gru_out_grads(g, c, n, u)):
        _close(got, want)
    drc_f, drc_p = g.copy(), g.copy()
    dr_f, _ = fast.reset_grads_(drc_f, c, u)
    dr_p, _ = plain.reset_grads_(drc_p, c, u)
    _close(dr_f, dr_p)
    _close(drc_f, drc_p)
    # broadcast operands (a carry shared along an axis) are read at their broadcast shape
    c1 = arr(2, 1, 5, 7, width)
    _close(fast.blend(c1, n, u), plain.blend(c1, n, u))


def test_add_bias_act_reads_its_window_of_the_wide_array():
    plain, fast = _kernels()
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((4, 3, 10)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    _close(fast.add_bias_act(xa, 6, b, "tanh"), np.tanh(xa[..., 6:10] + b))
    _close(plain.add_bias_act(xa, 6, b, "tanh"), np.tanh(xa[..., 6:10] + b))


def test_in_place_kernels_work_on_strided_arrays_too():
    plain, fast = _kernels()
    base = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    b = np.ones(3, np.float32)
    a_fast, a_plain = base.copy(), base.copy()
    fast.bias_act_(a_fast[:, ::2], b, "tanh")
    plain.bias_act_(a_plain[:, ::2], b, "tanh")
    _close(a_fast, a_plain)
    assert np.array_equal(a_fast[:, 1::2], base[:, 1::2])  # the other columns are untouched


def _inner(graph, protocol, kind, x, y, steps=4):
    eng = Engine(graph, protocol, backend=_backend(kind), threads=1)
    state = eng.init_network(np.random.default_rng(3), tasks=x.shape[0])
    losses = []
    for _ in range(steps):
        state, res = eng.step(state, x, y)
        losses.append(res.loss)
    return state, losses


@pytest.mark.parametrize("case", ["sinusoid-stateful", "mnist-stateful", "freeform-stateless"])
def test_inner_steps_agree_within_1e_5(case):
    rng = np.random.default_rng(2)
    if case == "sinusoid-stateful":
        graph, spec = sinusoid(), gf.LearnerSpec(kind="stateful", hidden=15, message_size=8)
        x = rng.uniform(-5, 5, (3, 10, 1)).astype(np.float32)
        y = np.sin(x)
    elif case == "mnist-stateful":
        graph, spec = mnist(), gf.LearnerSpec(kind="stateful", hidden=7, message_size=4)
        x = rng.standard_normal((1, 8, 144)).astype(np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, (1, 8))]
    else:
        graph, spec = skip_two_losses(), gf.LearnerSpec(kind="stateless", message_size=3)
        x = rng.standard_normal((2, 6, 3)).astype(np.float32)
        y = {b.name: rng.uniform(0, 1, (2, 6, b.size)).astype(np.float32) for b in graph.targets}
    protocol = Protocol.init(graph, spec, seed=4)
    (s_plain, l_plain), (s_fast, l_fast) = (_inner(graph, protocol, k, x, y) for k in ("numpy", "numba"))
    for key in s_plain.params:
        _close(s_fast.params[key], s_plain.params[key])
    for a, b in zip(l_fast, l_plain):
        _close(a, b)


def test_meta_gradients_agree_within_1e_5():
    graph = sinusoid()
    protocol = Protocol.init(graph, gf.LearnerSpec(kind="stateful", hidden=15, message_size=8), seed=5)
    rng = np.random.default_rng(6)
    x = rng.uniform(-5, 5, (2, 3, 10, 1)).astype(np.float32)
    xe = rng.uniform(-5, 5, (2, 10, 1)).astype(np.float32)
    batch = MetaBatch(x, np.sin(x), xe, np.sin(xe))
    init = Engine(graph, protocol).init_network(np.random.default_rng(7), tasks=2).params
    (l_plain, g_plain), (l_fast, g_fast) = (
        MetaGradient(graph, protocol, backend=_backend(k), threads=1)(protocol, batch, dict(init)) for k in ("numpy", "numba"))
    assert abs(l_fast - l_plain) <= 1e-5 * abs(l_plain)
    assert g_fast.keys() == g_plain.keys()
    flat_p = np.concatenate([g.ravel() for g in g_plain.values()])
    flat_f = np.concatenate([g.ravel() for g in g_fast.values()])
    _close(flat_f, flat_p)


def test_the_backend_chooses_the_kernels(monkeypatch):
    monkeypatch.delenv("GRAPHFLOW_KERNELS", raising=False)
    assert get_backend("numpy").kernels.name == "numba"
    assert get_backend("numpy", np.float64).kernels.name == "numpy"  # finite-difference checks stay exact
    monkeypatch.setenv("GRAPHFLOW_KERNELS", "numpy")
    assert get_backend("numpy").kernels.name == "numpy"
    monkeypatch.setenv("GRAPHFLOW_KERNELS", "fastest")
    with pytest.raises(GraphflowError, match="GRAPHFLOW_KERNELS='fastest'"):
        get_backend("numpy")


def test_asking_for_numba_without_it_names_the_extra(monkeypatch):
    import graphflow.kernels as kernels

    monkeypatch.setattr(kernels, "numba_available", lambda: False)
    monkeypatch.setenv("GRAPHFLOW_KERNELS", "numba")
    with pytest.raises(GraphflowError, match=r"pip install 'graphflow\[fast\]'"):
        get_backend("numpy")
    monkeypatch.setenv("GRAPHFLOW_KERNELS", "auto")
    assert get_backend("numpy").kernels.name == "numpy"
