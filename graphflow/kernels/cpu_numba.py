"""The learner cells' elementwise chains as compiled loops (numba; ``pip install 'graphflow[fast]'``).

Each chain of :class:`~graphflow.kernels.generic.ArrayKernels` becomes one loop over the rows
of its arrays: one pass over memory instead of one per operation, and a tanh that the compiler
vectorizes. numpy's float32 tanh costs about 3 ns per element on the machines this was tuned on
(no AVX-512); the rational tanh below about 0.4 ns.

**The tanh.** Lambert's continued fraction ``tanh x = x / (1 + x^2 / (3 + x^2 / (5 + ...)))``,
cut after :data:`TANH_TERMS` terms, is a ratio of two polynomials in ``x^2`` whose coefficients
are all positive (so Horner's rule in float32 has no cancellation). With ``x`` clamped to
``[-9, 9]`` (tanh(9) rounds to 1 in float32) and the result to ``[-1, 1]`` it is within 4e-7 of
tanh everywhere (``tests/test_kernels.py`` checks it on a dense grid). The kernels' backward
passes use the same formulas as the array kernels (``1 - h^2`` from the output), so the
meta-gradient is that of the array kernels' network to float32 rounding.

The loops release the GIL: the engine runs blocks of a large learner call on its own threads.
"""

from __future__ import annotations

import numpy as np

import numba

TANH_TERMS = 12
"""Terms of the continued fraction: the smallest count whose float32 error stays under 4e-7."""


def tanh_coefficients(terms: int = TANH_TERMS) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(numerator, denominator) coefficients in ascending powers of ``y = x^2`` of the
    continued fraction's convergent, ``tanh x ~ x P(y) / Q(y)``, scaled so that ``Q(0) = 1``.

    >>> p, q = tanh_coefficients(1)  # x / (1 + x^2 / 3) = x * 3 / (3 + y)
    >>> p, q
    ((1.0,), (1.0, 0.3333333333333333))
    """
    num, den = [2 * terms + 1], [1]  # the innermost tail, 2K + 1, as num / den
    for k in range(terms - 1, -1, -1):  # tail_k = (2k + 1) + y / tail_{k+1}
        shifted = [0] + den
        width = max(len(num), len(shifted))
        num, den = [(2 * k + 1) * (num[i] if i < len(num) else 0) + (shifted[i] if i < len(shifted) else 0)
                    for i in range(width)], num
    p, q = den, num  # tanh x = x / tail_0 = x * den / num
    return tuple(c / q[0] for c in p), tuple(c / q[0] for c in q)


_P, _Q = tanh_coefficients()
_P_HIGH_FIRST = tuple(np.float32(c) for c in reversed(_P))
_Q_HIGH_FIRST = tuple(np.float32(c) for c in reversed(_Q))
_CLAMP = np.float32(9.0)
_ONE, _HALF = np.float32(1.0), np.float32(0.5)

# error_model="numpy": a division does not test for zero (that test keeps loops from being
# vectorized). Of the fast-math flags only contraction into FMAs and approximate reciprocals:
# NaN and inf keep their IEEE meaning, so a diverging inner loop still shows as NaN.
_jit = numba.njit(fastmath={"contract", "arcp"}, nogil=True, error_model="numpy", cache=True)


@_jit
def _tanh(x):
    # Comparisons rather than min/max: NaN fails both and stays NaN.
    if x > _CLAMP:
        x = _CLAMP
    elif x < -_CLAMP:
        x = -_CLAMP
    y = x * x
    p = _P_HIGH_FIRST[0]
    for c in _P_HIGH_FIRST[1:]:  # Horner's rule: a fixed trip count, unrolled by the compiler
        p = p * y + c
    q = _Q_HIGH_FIRST[0]
    for c in _Q_HIGH_FIRST[1:]:
        q = q * y + c
    t = x * p / q
    if t > _ONE:
        return _ONE
    if t < -_ONE:
        return -_ONE
    return t


@_jit
def _relu(x):
    return np.float32(0.0) if x < 0 else x  # NaN stays NaN, as with numpy's maximum


# One loop per activation: a flag tested inside the loop would keep it from being vectorized.

@_jit
def _bias_tanh(a, b):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = _tanh(a[i, j] + b[j])


@_jit
def _bias_relu(a, b):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = _relu(a[i, j] + b[j])


# ``xa`` holds several layers' inputs side by side; the loops read their columns lo .. lo + width
# of the whole (contiguous) array, which the compiler vectorizes, rather than a strided view.

@_jit
def _add_bias_tanh(out, xa, lo, b):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = _tanh(xa[i, lo + j] + b[j])


@_jit
def _add_bias_relu(out, xa, lo, b):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = _relu(xa[i, lo + j] + b[j])


@_jit
def _gate(a, xa, lo, b):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = _HALF + _HALF * _tanh(_HALF * (a[i, j] + xa[i, lo + j] + b[j]))


@_jit
def _blend(out, c, n, u):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = n[i, j] + u[i, j] * (c[i, j] - n[i, j])


@_jit
def _times_tanh_grad(d, h):
    for i in range(d.shape[0]):
        for j in range(d.shape[1]):
            d[i, j] = d[i, j] * (_ONE - h[i, j] * h[i, j])


@_jit
def _times_relu_grad(d, h):
    for i in range(d.shape[0]):
        for j in range(d.shape[1]):
            d[i, j] = d[i, j] * (_ONE if h[i, j] > 0 else np.float32(0.0))  # NaN * 0 stays NaN


_BIAS_ACT = {"tanh": _bias_tanh, "relu": _bias_relu}
_ADD_BIAS_ACT = {"tanh": _add_bias_tanh, "relu": _add_bias_relu}
_TIMES_ACT_GRAD = {"tanh": _times_tanh_grad, "relu": _times_relu_grad}


@_jit
def _tanh_grad(out, o, g):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (_ONE - o[i, j] * o[i, j]) * g[i, j]


@_jit
def _gru_out_grads(du, dn, dc, g, c, n, u):
    for i in range(du.shape[0]):
        for j in range(du.shape[1]):
            gij, uij, nij = g[i, j], u[i, j], n[i, j]
            du[i, j] = (c[i, j] - nij) * gij * uij * (_ONE - uij)
            dn[i, j] = (_ONE - nij * nij) * gij * (_ONE - uij)
            dc[i, j] = gij * uij


@_jit
def _reset_grads(dr, drc, c, r):
    for i in range(dr.shape[0]):
        for j in range(dr.shape[1]):
            rij = r[i, j]
            dr[i, j] = drc[i, j] * c[i, j] * rij * (_ONE - rij)
            drc[i, j] = drc[i, j] * rij


def _inplace(kernel, a, *operands):
    """``kernel(rows of a, *operands)`` where the kernel writes ``a``'s rows in place; an ``a`` that
    is not C-contiguous (a ufunc's result on strided inputs can keep their layout) goes through a
    contiguous copy that is written back."""
    if a.flags.c_contiguous:
        kernel(a.reshape(-1, a.shape[-1]), *operands)
        return a
    rows = np.ascontiguousarray(a)
    kernel(rows.reshape(-1, a.shape[-1]), *operands)
    a[...] = rows
    return a


def _rows(a, like=None):
    """``a`` as rows [R, width] (a view where numpy can make one), its leading axes broadcast to
    ``like``'s first."""
    if like is not None and a.shape[:-1] != like.shape[:-1]:
        a = np.broadcast_to(a, like.shape[:-1] + a.shape[-1:])
    return a.reshape(-1, a.shape[-1])


def _vector(b, dtype):
    return np.ascontiguousarray(b, dtype=dtype).reshape(-1)


class NumbaKernels:
    """The chains as compiled loops; the same methods as :class:`~graphflow.kernels.generic.ArrayKernels`."""

    name = "numba"

    def __init__(self, xp):
        self.xp = xp

    def act_(self, a, act: str):
        return self.bias_act_(a, np.zeros(a.shape[-1], a.dtype), act)

    def bias_act_(self, a, b, act: str):
        return _inplace(_BIAS_ACT[act], a, _vector(b, a.dtype))

    def add_bias_act(self, xa, lo: int, b, act: str):
        out = np.empty(xa.shape[:-1] + (b.shape[-1],), dtype=xa.dtype)
        _ADD_BIAS_ACT[act](_rows(out), _rows(xa), lo, _vector(b, xa.dtype))
        return out

    def gate_(self, a, xa, lo: int, b):
        return _inplace(_gate, a, _rows(xa, a), lo, _vector(b, a.dtype))

    def blend(self, c, n, u):
        out = np.empty(n.shape, dtype=n.dtype)
        _blend(_rows(out), _rows(c, out), _rows(n), _rows(u, out))
        return out

    def times_act_grad_(self, d, h, act: str):
        return _inplace(_TIMES_ACT_GRAD[act], d, _rows(h, d))

    def tanh_grad(self, o, g):
        out = np.empty(o.shape, dtype=o.dtype)
        _tanh_grad(_rows(out), _rows(o), _rows(g, out))
        return out

    def gru_out_grads(self, g, c, n, u):
        du, dn, dc = (np.empty(n.shape, dtype=n.dtype) for _ in range(3))
        _gru_out_grads(_rows(du), _rows(dn), _rows(dc), _rows(g, n), _rows(c, n), _rows(n), _rows(u, n))
        return du, dn, dc

    def reset_grads_(self, drc, c, r):
        dr = np.empty(drc.shape, dtype=drc.dtype)
        _inplace(lambda rows, *rest: _reset_grads(_rows(dr), rows, *rest), drc, _rows(c, drc), _rows(r, drc))
        return dr, drc
