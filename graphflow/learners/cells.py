"""Learner cells as pure functions of (parameters, standardized input streams, carry).

A node's learner input is the concatenation of its streams (message, then each state). The
first layer of every cell is linear in that input, so it is computed stream by stream,
``sum_s stream_s @ W[rows of s]``, each at its own natural shape (a weight's message varies along
its output neuron, its input along its input unit) and broadcast together: the B x N x M input
matrix is never built. ``xp`` is the array module (numpy, CuPy or a tracing namespace); only
operators and a few ``xp`` functions are used, so that the same code can be traced for
meta-gradients.
"""

from __future__ import annotations


def linear(a, w):
    """``a @ w`` for a 2-D kernel, as one large matmul over all leading axes (numpy would otherwise
    loop over them with many small matrix products).

    >>> import numpy as np
    >>> linear(np.ones((2, 3, 4)), np.ones((4, 5))).shape
    (2, 3, 5)
    """
    if a.ndim <= 2:
        return a @ w
    lead = a.shape[:-1]
    return (a.reshape(-1, a.shape[-1]) @ w).reshape(lead + (w.shape[-1],))


def first_layer(xp, streams, kernel, widths):
    """``concat(streams) @ kernel`` without the concatenation; streams broadcast together.

    >>> import numpy as np
    >>> s = [np.ones((2, 1, 3)), np.ones((1, 4, 1))]
    >>> first_layer(np, s, np.ones((4, 5)), [3, 1]).shape
    (2, 4, 5)
    """
    out = None
    row = 0
    for stream, width in zip(streams, widths):
        rows = kernel[row:row + width]
        term = stream * rows[0] if width == 1 else linear(stream, rows)
        out = term if out is None else out + term
        row += width
    return out


def relu(xp, a):
    return xp.maximum(a, 0)


def sigmoid(xp, a):
    """Logistic function in its overflow-free tanh form."""
    return 0.5 + 0.5 * xp.tanh(0.5 * a)


def stateless_cell(xp, p, streams, widths):
    """MLPs f and g: 80 -> 40 -> out, ReLU, ReLU, tanh. Returns (f output [..., 1], g output [..., k]).

    ``f`` is skipped (None) when the node has no parameter (``p`` has no ``f.*`` entries).
    """
    g0 = first_layer(xp, streams, p["g.dense0.kernel"], widths) + p["g.dense0.bias"]
    g1 = relu(xp, linear(relu(xp, g0), p["g.dense1.kernel"]) + p["g.dense1.bias"])
    msg = xp.tanh(linear(g1, p["g.dense2.kernel"]) + p["g.dense2.bias"])
    if "f.dense0.kernel" not in p:
        return None, msg
    f0 = first_layer(xp, streams, p["f.dense0.kernel"], widths) + p["f.dense0.bias"]
    f1 = relu(xp, linear(relu(xp, f0), p["f.dense1.kernel"]) + p["f.dense1.bias"])
    upd = xp.tanh(linear(f1, p["f.dense2.kernel"]) + p["f.dense2.bias"])
    return upd, msg


def gru_cell(xp, p, streams, widths, carry, mlp_activation: str = "tanh"):
    """The GRU-like cell of MPLP_SPEC.md; returns the new carry.

    u = sigmoid(x Wux + c Wuc + bu), r = sigmoid(x Wrx + c Wrc + br),
    c' = u * c + (1 - u) * tanh(MLPx(x) + MLPc(r * c) + bn).
    The three layers that read x (update gate, reset gate, MLPx's first layer) run as one, stream
    by stream (:func:`first_layer` with their kernels side by side); the rest is one fused stage
    (:func:`gru_core_forward`) that a differentiating namespace runs with its own VJP.
    """
    kernel = xp.concatenate([p["gru.W_update_x"], p["gru.W_reset_x"], p["gru.next_x_net.dense0.kernel"]], axis=1)
    xa = first_layer(xp, streams, kernel, widths)
    inputs = (xa, carry) + tuple(p[name] for name in GRU_CORE_PARAMS)
    fused = getattr(xp, "fused", None)
    if fused is None:
        return gru_core_forward(xp, mlp_activation, *inputs)[0]
    return fused(lambda xp_, *a: gru_core_forward(xp_, mlp_activation, *a),
                 lambda xp_, a, res, g: gru_core_backward(xp_, mlp_activation, a, res, g), inputs)


# ------------------------------------------------------------------------------------------------
# The GRU core as one fused stage with its own vector-Jacobian product.
#
# Everything after the cell's first layers (the gates, both MLPs, the blend) runs as one stage
# when a tracing namespace differentiates it: the forward keeps its intermediates and the backward
# below returns the gradient of every input at once, instead of ~40 recorded operations.

GRU_CORE_PARAMS = (
    "gru.W_update_c", "gru.b_update", "gru.W_reset_c", "gru.b_reset", "gru.b_next",
    "gru.next_x_net.dense0.bias", "gru.next_x_net.dense1.kernel", "gru.next_x_net.dense1.bias",
    "gru.next_x_net.dense2.kernel",
    "gru.next_c_net.dense0.kernel", "gru.next_c_net.dense0.bias", "gru.next_c_net.dense1.kernel",
    "gru.next_c_net.dense1.bias", "gru.next_c_net.dense2.kernel",
)


def _act_grad(mlp_activation: str, h):
    """d act / d pre-activation, from the activation's output h."""
    return 1.0 - h * h if mlp_activation == "tanh" else (h > 0).astype(h.dtype)


def gru_core_forward(xp, mlp_activation, xa, c, Wuc, bu, Wrc, br, bn, b0x, K1x, b1x, K2x,
                     K0c, b0c, K1c, b1c, K2c):
    """``xa`` holds x's terms of the update gate, the reset gate and MLPx's first layer side by side."""
    act = xp.tanh if mlp_activation == "tanh" else (lambda a: xp.maximum(a, 0))
    width = c.shape[-1]
    xu, xr, xh = xa[..., :width], xa[..., width:2 * width], xa[..., 2 * width:]
    u = sigmoid(xp, xu + linear(c, Wuc) + bu)
    r = sigmoid(xp, xr + linear(c, Wrc) + br)
    h1 = act(xh + b0x)
    h2 = act(linear(h1, K1x) + b1x)
    rc = r * c
    g1 = act(linear(rc, K0c) + b0c)
    g2 = act(linear(g1, K1c) + b1c)
    n = xp.tanh(linear(h2, K2x) + linear(g2, K2c) + bn)
    out = u * c + (1.0 - u) * n
    return out, (u, r, h1, h2, rc, g1, g2, n)


def _rows(a):
    return a.reshape(-1, a.shape[-1])


def gru_core_backward(xp, mlp_activation, inputs, residuals, g):
    """Gradients of every input of :func:`gru_core_forward` given the output cotangent ``g``."""
    xa, c, Wuc, bu, Wrc, br, bn, b0x, K1x, b1x, K2x, K0c, b0c, K1c, b1c, K2c = inputs
    u, r, h1, h2, rc, g1, g2, n = residuals
    du = g * (c - n) * u * (1.0 - u)           # through the update gate's sigmoid
    dn = g * (1.0 - u) * (1.0 - n * n)         # through tanh of the candidate
    dc = g * u
    gK2x = _rows(h2).T @ _rows(dn)
    dh2 = linear(dn, K2x.T) * _act_grad(mlp_activation, h2)
    gK1x = _rows(h1).T @ _rows(dh2)
    dh1 = linear(dh2, K1x.T) * _act_grad(mlp_activation, h1)
    gK2c = _rows(g2).T @ _rows(dn)
    dg2 = linear(dn, K2c.T) * _act_grad(mlp_activation, g2)
    gK1c = _rows(g1).T @ _rows(dg2)
    dg1 = linear(dg2, K1c.T) * _act_grad(mlp_activation, g1)
    gK0c = _rows(rc).T @ _rows(dg1)
    drc = linear(dg1, K0c.T)
    dr = drc * c * r * (1.0 - r)               # through the reset gate's sigmoid
    dc = dc + drc * r + linear(du, Wuc.T) + linear(dr, Wrc.T)

    def colsum(a):
        return _rows(a).sum(axis=0)

    return (xp.concatenate([du, dr, dh1], axis=-1), dc, _rows(c).T @ _rows(du), colsum(du),
            _rows(c).T @ _rows(dr), colsum(dr),
            colsum(dn), colsum(dh1), gK1x, colsum(dh2), gK2x, gK0c, colsum(dg1), gK1c, colsum(dg2), gK2c)
