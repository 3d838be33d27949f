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
    """
    act = xp.tanh if mlp_activation == "tanh" else (lambda a: relu(xp, a))
    u = sigmoid(xp, first_layer(xp, streams, p["gru.W_update_x"], widths) + linear(carry, p["gru.W_update_c"]) + p["gru.b_update"])
    r = sigmoid(xp, first_layer(xp, streams, p["gru.W_reset_x"], widths) + linear(carry, p["gru.W_reset_c"]) + p["gru.b_reset"])
    hx = act(first_layer(xp, streams, p["gru.next_x_net.dense0.kernel"], widths) + p["gru.next_x_net.dense0.bias"])
    hx = act(linear(hx, p["gru.next_x_net.dense1.kernel"]) + p["gru.next_x_net.dense1.bias"])
    hx = linear(hx, p["gru.next_x_net.dense2.kernel"])
    hc = act(linear(r * carry, p["gru.next_c_net.dense0.kernel"]) + p["gru.next_c_net.dense0.bias"])
    hc = act(linear(hc, p["gru.next_c_net.dense1.kernel"]) + p["gru.next_c_net.dense1.bias"])
    hc = linear(hc, p["gru.next_c_net.dense2.kernel"])
    return u * carry + (1.0 - u) * xp.tanh(hx + hc + p["gru.b_next"])
