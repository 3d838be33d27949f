"""The learner cells' elementwise chains as array operations of ``xp`` (numpy or CuPy).

Each method is one chain of the cells (:mod:`graphflow.learners.cells`); methods ending in ``_``
work in place on their first argument, which is always an array the cell allocated itself.
Arrays are ``[..., width]``; biases are ``[width]``; other operands broadcast to the first.

>>> import numpy as np
>>> k = ArrayKernels(np)
>>> k.bias_act_(np.array([[-1.0, 0.5]]), np.array([0.5, 0.5]), "relu").tolist()
[[0.0, 1.0]]
>>> k.blend(np.array([1.0]), np.array([0.0]), np.array([0.25])).tolist()
[0.25]
"""

from __future__ import annotations


class ArrayKernels:
    """The chains as ``xp`` operations (one pass over memory per operation)."""

    name = "numpy"

    def __init__(self, xp):
        self.xp = xp

    # ------------------------------------------------------------------ forward
    def act_(self, a, act: str):
        """``act(a)`` in place: ``tanh`` or ``relu``."""
        xp = self.xp
        return xp.tanh(a, out=a) if act == "tanh" else xp.maximum(a, 0, out=a)

    def bias_act_(self, a, b, act: str):
        """``a = act(a + b)`` in place."""
        a += b
        return self.act_(a, act)

    def add_bias_act(self, xa, lo: int, b, act: str):
        """``act(xa[..., lo:lo + width] + b)`` (width = ``b``'s), a new array: ``xa`` holds several
        layers' inputs side by side (the GRU cell's first layers)."""
        return self.act_(xa[..., lo:lo + b.shape[-1]] + b, act)

    def gate_(self, a, xa, lo: int, b):
        """``a = sigmoid(a + xa[..., lo:lo + width] + b)`` in place (width = ``a``'s), the sigmoid
        in its overflow-free form ``0.5 + 0.5 tanh(v / 2)``."""
        a += xa[..., lo:lo + a.shape[-1]]
        a += b
        a *= 0.5
        self.xp.tanh(a, out=a)
        a *= 0.5
        a += 0.5
        return a

    def blend(self, c, n, u):
        """The GRU's new carry ``u c + (1 - u) n = n + u (c - n)``, a new array."""
        out = c - n
        out *= u
        out += n
        return out

    # ------------------------------------------------------------------ backward
    def times_act_grad_(self, d, h, act: str):
        """``d *= act'(pre-activation)`` in place, from the activation's output ``h``."""
        if act == "tanh":  # d (1 - h^2) = d - (d h) h
            t = d * h
            t *= h
            d -= t
        else:
            d *= h > 0
        return d

    def tanh_grad(self, o, g):
        """``(1 - o^2) g`` for ``o = tanh(.)``, a new array (``g`` may be a view)."""
        d = o * o
        self.xp.subtract(1.0, d, out=d)
        d *= g
        return d

    def gru_out_grads(self, g, c, n, u):
        """Through the blend and the candidate's tanh: ``(du, dn, dc)`` for the new carry's
        cotangent ``g``: du = (c - n) g u (1 - u) (at the update gate's pre-activation),
        dn = (1 - n^2) g (1 - u) (at the candidate's), dc = g u."""
        one_minus_u = 1.0 - u
        du = c - n
        du *= g
        du *= u
        du *= one_minus_u
        dn = n * n
        self.xp.subtract(1.0, dn, out=dn)
        dn *= g
        dn *= one_minus_u
        return du, dn, g * u

    def reset_grads_(self, drc, c, r):
        """Through ``rc = r * c`` and the reset gate's sigmoid, given ``drc``: returns
        ``dr = drc c r (1 - r)`` (at the gate's pre-activation) and turns ``drc`` into ``drc r``
        (the share of ``dc``) in place."""
        dr = drc * c
        dr *= r
        dr *= 1.0 - r
        drc *= r
        return dr, drc
