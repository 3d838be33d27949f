"""Learner cells as pure functions of (parameters, standardized input streams, carry).

A node's learner input is the concatenation of its streams (message, then each state). The
first layer of every cell is linear in that input, so it is computed stream by stream,
``sum_s stream_s @ W[rows of s]``, each at its own natural shape (a weight's message varies along
its output neuron, its input along its input unit) and broadcast together: the B x N x M input
matrix is never built. ``xp`` is the array module (numpy, CuPy or a tracing namespace); only
operators and a few ``xp`` functions are used, so that the same code can be traced for
meta-gradients.

**Population members.** The forward cells also run P protocols at once (the members of an ES
population, :meth:`graphflow.engine.Engine.set_member_parameters`): every array then has a leading
member axis (streams and carry [P, T, B, *nodes, width]), kernels are [P, in, out] and vectors
[P, 1, ..., 1, width] (:func:`member_parameters`), each :func:`linear` is one batched matrix
product over the members (``[P, rows, in] @ [P, in, out]``) and the bias chains add each member's
bias as an array operation before the backend's chain (:class:`MemberBiases`). Without a member
axis every function computes what it did before, the same way.
"""

from __future__ import annotations


def linear(a, w):
    """``a @ w`` for a 2-D kernel, as one large matmul over all leading axes (numpy would otherwise
    loop over them with many small matrix products).

    >>> import numpy as np
    >>> linear(np.ones((2, 3, 4)), np.ones((4, 5))).shape
    (2, 3, 5)
    """
    if w.ndim == 3:  # one kernel per population member [P, in, out]; ``a`` [P, ..., in]: a batched matmul
        lead = a.shape[:-1]
        return (a.reshape(lead[0], -1, a.shape[-1]) @ w).reshape((w.shape[0],) + lead[1:] + (w.shape[-1],))
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
        rows = kernel[..., row:row + width, :]
        if width > 1:
            term = linear(stream, rows)
        elif kernel.ndim == 2:
            term = stream * rows[0]
        else:  # each member's row [P, out], against the stream's member axis
            term = stream * _member_vector(rows[:, 0], stream.ndim)
        out = term if out is None else out + term
        row += width
    return out


def _member_vector(v, ndim: int):
    """Per-member vectors [P, width] shaped to broadcast against arrays [P, ..., width] of ``ndim`` axes."""
    return v.reshape((v.shape[0],) + (1,) * (ndim - 2) + (v.shape[-1],))


def member_parameters(p: dict, ndim: int, members: slice | None = None) -> dict:
    """A learner's per-member parameters (every entry [P, *shape]) for cells on arrays [P, ..., width]
    of ``ndim`` axes: the members ``members`` (all when None), kernels [P, in, out] as they are, vectors
    [P, 1, ..., 1, width].

    >>> import numpy as np
    >>> p = member_parameters({"k": np.ones((3, 4, 5)), "b": np.ones((3, 5))}, ndim=5, members=slice(1, 3))
    >>> p["k"].shape, p["b"].shape
    ((2, 4, 5), (2, 1, 1, 1, 5))
    """
    out = {}
    for name, a in p.items():
        a = a if members is None else a[members]
        out[name] = _member_vector(a, ndim) if a.ndim == 2 else a
    return out


class MemberBiases:
    """The backend's elementwise chains (:mod:`graphflow.kernels`) for per-member biases
    [P, 1, ..., 1, width] (:func:`member_parameters`). The compiled chains take one bias vector:
    for one member (a block of a large call) the chain runs on that member's arrays with its
    vector, as for one protocol; for several, each member's bias is added as an array operation
    and the chain runs with none. The chains without a bias are the backend's."""

    def __init__(self, kernels):
        self.kernels = kernels
        self.name = f"{kernels.name}+member-biases"

    def __getattr__(self, name):
        return getattr(self.kernels, name)

    def bias_act_(self, a, b, act: str):
        if a.shape[0] == 1:
            self.kernels.bias_act_(a[0], b.reshape(-1), act)
            return a
        a += b
        return self.kernels.act_(a, act)

    def add_bias_act(self, xa, lo: int, b, act: str):
        if xa.shape[0] == 1:
            return self.kernels.add_bias_act(xa[0], lo, b.reshape(-1), act)[None]
        return self.kernels.act_(xa[..., lo:lo + b.shape[-1]] + b, act)

    def gate_(self, a, xa, lo: int, b):
        if a.shape[0] == 1:
            self.kernels.gate_(a[0], xa[0], lo, b.reshape(-1))
            return a
        a += b
        return self.kernels.gate_(a, xa, lo, self.kernels.xp.zeros(a.shape[-1], dtype=a.dtype))


def stateless_cell(xp, p, streams, widths, blocks=None, traced: bool = False, kernels=None):
    """MLPs f and g: 80 -> 40 -> out, ReLU, ReLU, tanh. Returns (f output [..., 1], g output [..., k]).

    ``f`` is skipped (None) when the node has no parameter (``p`` has no ``f.*`` entries). Under
    the tape (``traced``: ``xp`` is a differentiating namespace) both MLPs run as one fused stage
    with its own VJP (:func:`stateless_forward`, :func:`stateless_backward`), over blocks of the
    node axes when ``blocks`` is given. ``kernels``: the backend's elementwise chains
    (:mod:`graphflow.kernels`; default: ``xp``'s array operations).
    """
    k = _kernels(xp, kernels)
    nets = ("g", "f") if "f.dense0.kernel" in p else ("g",)
    inputs = tuple(streams) + tuple(p[f"{net}.{name}"] for net in nets for name in MLP_PARAMS)
    if not traced:
        out = stateless_forward(xp, k, widths, len(nets), *inputs)[0]
    else:
        out = xp.fused(lambda xp_, *a: stateless_forward(xp_, k, widths, len(nets), *a),
                       lambda xp_, a, res, g: stateless_backward(xp_, k, widths, len(nets), a, res, g), inputs,
                       blocked=len(streams), blocks=blocks)
    width = p["g.dense2.kernel"].shape[-1]
    return (out[..., width:] if len(nets) == 2 else None), out[..., :width]


def _kernels(xp, kernels):
    if kernels is not None:
        return kernels
    from graphflow.kernels.generic import ArrayKernels

    while hasattr(xp, "_xp"):  # a tracing (or monitoring) namespace: the plain module beneath
        xp = xp._xp
    return ArrayKernels(xp)


MLP_PARAMS = ("dense0.kernel", "dense0.bias", "dense1.kernel", "dense1.bias", "dense2.kernel", "dense2.bias")
"""The parameters of one stateless MLP (g or f), in the order the fused stage takes them."""


def stateless_forward(xp, k, widths, nets: int, *inputs):
    """([g output | f output], residuals) of the stateless learner's MLPs; ``inputs`` = streams,
    then :data:`MLP_PARAMS` of g (and of f)."""
    n = len(widths)
    streams, outs, residuals = inputs[:n], [], []
    for j in range(nets):
        K0, b0, K1, b1, K2, b2 = inputs[n + 6 * j:n + 6 * j + 6]
        a0 = k.bias_act_(first_layer(xp, streams, K0, widths), b0, "relu")
        a1 = k.bias_act_(linear(a0, K1), b1, "relu")
        o = k.bias_act_(linear(a1, K2), b2, "tanh")
        outs.append(o)
        residuals.append((a0, a1, o))
    return (outs[0] if nets == 1 else xp.concatenate(outs, axis=-1)), residuals


def stateless_backward(xp, k, widths, nets: int, inputs, residuals, g):
    """Gradients of every input of :func:`stateless_forward` given the output cotangent ``g``."""
    n = len(widths)
    streams = inputs[:n]
    dstreams, dparams, col = None, [], 0
    for j in range(nets):
        K0, b0, K1, b1, K2, b2 = inputs[n + 6 * j:n + 6 * j + 6]
        a0, a1, o = residuals[j]
        width = o.shape[-1]
        d2 = k.tanh_grad(o, g[..., col:col + width])
        col += width
        d1 = k.times_act_grad_(linear(d2, K2.T), a1, "relu")
        d0 = k.times_act_grad_(linear(d1, K1.T), a0, "relu")
        ds, dK0 = first_layer_backward(xp, streams, K0, widths, d0)
        dstreams = ds if dstreams is None else [a + b for a, b in zip(dstreams, ds)]
        colsum = _colsum(xp, _rows(d0).shape[0], d0.dtype)
        dparams += [dK0, colsum(d0), _rows(a0).T @ _rows(d1), colsum(d1), _rows(a1).T @ _rows(d2), colsum(d2)]
    return tuple(dstreams) + tuple(dparams)


def gru_cell(xp, p, streams, widths, carry, mlp_activation: str = "tanh", blocks=None, traced: bool = False,
             kernels=None):
    """The GRU-like cell of MPLP_SPEC.md; returns the new carry.

    u = sigmoid(x Wux + c Wuc + bu), r = sigmoid(x Wrx + c Wrc + br),
    c' = u * c + (1 - u) * tanh(MLPx(x) + MLPc(r * c) + bn).
    The three layers that read x (update gate, reset gate, MLPx's first layer) run as one, stream
    by stream (:func:`first_layer` with their kernels side by side). Under the tape (``traced``)
    the whole cell runs as one fused stage with its own VJP (:func:`gru_forward`,
    :func:`gru_backward`), over blocks of the node axis when ``blocks`` is given (see ``fused`` in
    :mod:`graphflow.autodiff.tape`). ``kernels``: the backend's elementwise chains.
    """
    k = _kernels(xp, kernels)
    kernel = xp.concatenate([p[name] for name in GRU_KERNEL_PARAMS], axis=-1)
    inputs = tuple(streams) + (carry, kernel) + tuple(p[name] for name in GRU_CORE_PARAMS)
    if not traced:
        return gru_forward(xp, k, mlp_activation, widths, *inputs)[0]
    return xp.fused(lambda xp_, *a: gru_forward(xp_, k, mlp_activation, widths, *a),
                    lambda xp_, a, res, g: gru_backward(xp_, k, mlp_activation, widths, a, res, g), inputs,
                    blocked=len(streams) + 1, blocks=blocks)


def gru_forward(xp, k, mlp_activation, widths, *inputs):
    """(new carry, residuals) of the whole cell; ``inputs`` = streams, carry, first-layer kernel,
    then the core's parameters (:data:`GRU_CORE_PARAMS`)."""
    n = len(widths)
    xa = first_layer(xp, inputs[:n], inputs[n + 1], widths)
    return gru_core_forward(xp, k, mlp_activation, xa, inputs[n], *inputs[n + 2:])


def gru_backward(xp, k, mlp_activation, widths, inputs, residuals, g):
    """Gradients of every input of :func:`gru_forward` (each stream at its own broadcast shape)."""
    n = len(widths)
    streams, kernel = inputs[:n], inputs[n + 1]
    dxa, dc, *dcore = gru_core_backward(xp, k, mlp_activation, (None,) + tuple(inputs[n:n + 1]) + tuple(inputs[n + 2:]),
                                        residuals, g)
    dstreams, dkernel = first_layer_backward(xp, streams, kernel, widths, dxa)
    return tuple(dstreams) + (dc, dkernel) + tuple(dcore)


def first_layer_backward(xp, streams, kernel, widths, dout):
    """Gradients of :func:`first_layer` given its output's cotangent ``dout``: each stream's, at
    the stream's own (broadcast) shape, and the kernel's."""
    dstreams, drows = [], []
    row = 0
    for stream, width in zip(streams, widths):
        rows = kernel[row:row + width]
        row += width
        d = _sum_to(dout, tuple(stream.shape[:-1]))
        dstreams.append(linear(d, rows.T))
        drows.append(_rows(stream).T @ _rows(d))
    return dstreams, xp.concatenate(drows, axis=0)


def _sum_to(a, lead: tuple):
    """``a`` [..., F] summed over the leading axes along which ``lead`` is broadcast: [*lead, F]."""
    extra = a.ndim - 1 - len(lead)
    if extra:
        a = a.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (want, have) in enumerate(zip(lead, a.shape[:-1])) if want == 1 and have != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


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


# The core runs on plain arrays only (a differentiating namespace calls it inside its fused stage),
# so it works in place on its own temporaries: fewer passes over memory and fewer allocations.

def gru_core_forward(xp, k, mlp_activation, xa, c, Wuc, bu, Wrc, br, bn, b0x, K1x, b1x, K2x,
                     K0c, b0c, K1c, b1c, K2c):
    """``xa`` holds x's terms of the update gate, the reset gate and MLPx's first layer side by side;
    ``k`` supplies the elementwise chains (:mod:`graphflow.kernels`)."""
    width = c.shape[-1]  # xa's columns: update gate, reset gate (width each), then MLPx's first layer
    u = k.gate_(linear(c, Wuc), xa, 0, bu)
    r = k.gate_(linear(c, Wrc), xa, width, br)
    h1 = k.add_bias_act(xa, 2 * width, b0x, mlp_activation)
    h2 = k.bias_act_(linear(h1, K1x), b1x, mlp_activation)
    rc = r * c
    g1 = k.bias_act_(linear(rc, K0c), b0c, mlp_activation)
    g2 = k.bias_act_(linear(g1, K1c), b1c, mlp_activation)
    n = linear(h2, K2x)
    n += linear(g2, K2c)
    n = k.bias_act_(n, bn, "tanh")
    return k.blend(c, n, u), (u, r, h1, h2, rc, g1, g2, n)


def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _colsum(xp, rows: int, dtype):
    """Column sums of [..., width] arrays of ``rows`` rows, as a matrix-vector product (numpy's
    axis-0 sum of a narrow array is several times slower)."""
    ones = xp.ones(rows, dtype=dtype)
    return lambda a: ones @ _rows(a)


def gru_core_backward(xp, k, mlp_activation, inputs, residuals, g):
    """Gradients of every input of :func:`gru_core_forward` given the output cotangent ``g``."""
    xa, c, Wuc, bu, Wrc, br, bn, b0x, K1x, b1x, K2x, K0c, b0c, K1c, b1c, K2c = inputs
    u, r, h1, h2, rc, g1, g2, n = residuals
    c_rows = _rows(c)
    du, dn, dc = k.gru_out_grads(g, c, n, u)   # through the blend, the update gate and the candidate's tanh
    gK2x = _rows(h2).T @ _rows(dn)
    dh2 = k.times_act_grad_(linear(dn, K2x.T), h2, mlp_activation)
    gK1x = _rows(h1).T @ _rows(dh2)
    dh1 = k.times_act_grad_(linear(dh2, K1x.T), h1, mlp_activation)
    gK2c = _rows(g2).T @ _rows(dn)
    dg2 = k.times_act_grad_(linear(dn, K2c.T), g2, mlp_activation)
    gK1c = _rows(g1).T @ _rows(dg2)
    dg1 = k.times_act_grad_(linear(dg2, K1c.T), g1, mlp_activation)
    gK0c = _rows(rc).T @ _rows(dg1)
    dr, drc = k.reset_grads_(linear(dg1, K0c.T), c, r)  # through the reset gate
    dc += drc
    dc += linear(du, Wuc.T)
    dc += linear(dr, Wrc.T)

    colsum = _colsum(xp, c_rows.shape[0], c.dtype)
    return (xp.concatenate([du, dr, dh1], axis=-1), dc, c_rows.T @ _rows(du), colsum(du),
            c_rows.T @ _rows(dr), colsum(dr),
            colsum(dn), colsum(dh1), gK1x, colsum(dh2), gK2x, gK0c, colsum(dg1), gK1c, colsum(dg2), gK2c)


GRU_KERNEL_PARAMS = ("gru.W_update_x", "gru.W_reset_x", "gru.next_x_net.dense0.kernel")
"""The three kernels that read the cell's input x, side by side in the first layer's kernel."""


def cell_param_grads(p, grads, streams: int, stateful: bool) -> dict:
    """The gradients of a fused cell's inputs (the order of :func:`gru_cell`'s or
    :func:`stateless_cell`'s fused stage) by parameter name; the first layer's kernel is split
    back into its three parameters. Streams (and the carry) are left out."""
    if not stateful:
        nets = ("g", "f") if "f.dense0.kernel" in p else ("g",)
        names = [f"{net}.{name}" for net in nets for name in MLP_PARAMS]
        return dict(zip(names, grads[streams:]))
    out, col = {}, 0
    dkernel = grads[streams + 1]
    for name in GRU_KERNEL_PARAMS:
        width = p[name].shape[-1]
        out[name] = dkernel[:, col:col + width]
        col += width
    out.update(zip(GRU_CORE_PARAMS, grads[streams + 2:]))
    return out
