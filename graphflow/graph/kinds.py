"""The closed set of node kinds: for each, its forward rule and the states it stores for its
backward arrow (MPLP_SPEC.md, "Nodes and arrows").

A forward rule works on arrays of any shape whose last axis runs over the nodes of one block (and
on plain scalars), with the array module ``xp`` passed in, so that the batched engine, the
per-node interpreter, numpy and CuPy all share it. Activations live in a registry: a new one is one
``register_activation`` call plus its name in :data:`graphflow.spec.graph.ActivationName`.

>>> import numpy as np
>>> out, states = softmax_forward(np, np.array([1.0, 2.0, 3.0], dtype=np.float32))
>>> round(float(out.sum()), 6), [s for s in SOFTMAX.states]
(1.0, ['z', 't', 'e', 's'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

CE_CLIP = 1e-7


@dataclass(frozen=True)
class NodeKind:
    """A node kind: its name, the states it stores, and whether it has a learner and a parameter."""

    name: str
    states: tuple[str, ...] = ()
    has_learner: bool = False
    has_parameter: bool = False
    doc: str = ""


INPUT = NodeKind("input", doc="x_i: a value fed from outside")
TARGET = NodeKind("target", doc="t_j: a target value fed from outside")
NEURON = NodeKind("neuron", doc="y_j = sum_i y_ij: sums the weight products of one neuron")
WEIGHT = NodeKind("weight", ("w", "x"), True, True, "y_ij = w_ij * x_i")
BIAS = NodeKind("bias", ("b", "y"), True, True, "z_j = y_j + b_j")
ACTIVATION = NodeKind("activation", ("z",), True, False, "a = act(z)")
SOFTMAX = NodeKind("softmax", ("z", "t", "e", "s"), True, False, "t = z - max z, e = exp t, s = sum e, out = e / s")
LOSS_STATES = {"l2": ("out", "target", "diff"), "l1": ("out", "target"), "ce": ("p", "target", "log_p")}
LOSSES = {fn: NodeKind("loss", states, True, False, f"{fn} loss") for fn, states in LOSS_STATES.items()}

NODE_KINDS = ("input", "weight", "neuron", "bias", "activation", "softmax", "loss", "target")
"""Every node kind (singular: the kind of one scalar node), in the order counts are reported. Block
kinds (:mod:`graphflow.graph.blocks`) are the spec's plural ``neurons`` and ``weights``: a neurons
block holds neuron and bias nodes."""


# ----------------------------------------------------------------------------------------------
# Activations


ACTIVATIONS: dict[str, Callable] = {}
ACTIVATION_GRADS: dict[str, Callable] = {}
"""Activation name -> ``slope(xp, z, a) -> da/dz`` (the activation stage's VJP reads it; an
activation registered without one is differentiated operation by operation)."""


def register_activation(name: str, fn: Callable, slope: Callable | None = None) -> None:
    """Register ``fn(xp, z) -> a`` as the activation ``name``, with its derivative
    ``slope(xp, z, a) -> da/dz`` when known."""
    ACTIVATIONS[name] = fn
    if slope is not None:
        ACTIVATION_GRADS[name] = slope
    else:
        ACTIVATION_GRADS.pop(name, None)


def _sigmoid(xp, z):
    # The tanh form never overflows (exp(-z) does for z < -88 in float32).
    return 0.5 + 0.5 * xp.tanh(0.5 * z)


register_activation("relu", lambda xp, z: xp.maximum(z, 0), lambda xp, z, a: (z >= 0).astype(z.dtype))
register_activation("sigmoid", _sigmoid, lambda xp, z, a: a * (1.0 - a))
register_activation("tanh", lambda xp, z: xp.tanh(z), lambda xp, z, a: 1.0 - a * a)
register_activation("step", lambda xp, z: (z > 0).astype(z.dtype) if hasattr(z, "astype") else float(z > 0),
                    lambda xp, z, a: xp.zeros_like(z))
register_activation("identity", lambda xp, z: z, lambda xp, z, a: xp.ones_like(z))


def activation_forward(xp, fn: str, z):
    """a = act(z); stores z.

    >>> import numpy as np
    >>> activation_forward(np, "relu", np.array([-1.0, 2.0]))[0].tolist()
    [0.0, 2.0]
    """
    return ACTIVATIONS[fn](xp, z), (z,)


def weight_forward(xp, w, x):
    """y_ij = w_ij * x_i (the neuron sum y_j adds these up); stores w and x.

    >>> import numpy as np
    >>> weight_forward(np, np.array([0.5, -2.0]), np.array([4.0, 1.0]))[0].tolist()
    [2.0, -2.0]
    """
    return w * x, (w, x)


def bias_forward(xp, y, b):
    """z = y + b; stores b and y."""
    return y + b, (b, y)


def softmax_forward(xp, z):
    """Softmax over the last axis; every unit stores z, t, e and the shared denominator s."""
    t = z - xp.max(z, axis=-1, keepdims=True)
    e = xp.exp(t)
    s = xp.sum(e, axis=-1, keepdims=True)
    return e / s, (z, t, e, xp.broadcast_to(s, e.shape))


def loss_forward(xp, fn: str, out, target):
    """Per-unit loss values and the states of the loss node.

    >>> import numpy as np
    >>> loss_forward(np, "l2", np.array([1.0]), np.array([3.0]))[0].tolist()
    [2.0]
    """
    if fn == "l2":
        d = target - out
        return d * d / 2, (out, target, d)
    if fn == "l1":
        return xp.abs(target - out), (out, target)
    if fn == "ce":
        p = xp.clip(out, CE_CLIP, 1 - CE_CLIP)
        log_p = xp.log(p)
        return -target * log_p, (p, target, log_p)
    raise KeyError(f"unknown loss {fn!r}; known: {sorted(LOSS_STATES)}")
