"""Gradient-descent optimizers: SGD and Adam, the one implementation of each.

The outer loop of meta-training uses :class:`Adam` as the reference regime does: each gradient
tensor divided by its norm first, the moments kept in float64 (the defaults). The backprop
baselines (:mod:`graphflow.baselines`) use :class:`SGD` and a plain :class:`Adam` computing in the
gradients' own dtype and array module. Either way a parameter keeps its dtype.

>>> import numpy as np
>>> opt = Adam(learning_rate=0.1)
>>> params = {"a": np.ones(3, np.float32)}
>>> params = opt.step(params, {"a": np.full(3, 2.0, np.float32)})
>>> [round(float(v), 3) for v in params["a"]]
[0.9, 0.9, 0.9]
>>> SGD(learning_rate=0.5).step({"a": np.ones(2)}, {"a": np.full(2, 0.5)})["a"].tolist()
[0.75, 0.75]
"""

from __future__ import annotations

import numpy as np


class SGD:
    """``param - learning_rate * grad`` (no state)."""

    def __init__(self, learning_rate: float):
        self.lr = learning_rate

    def step(self, params: dict, grads: dict) -> dict:
        """The parameters after one step on ``grads`` (parameters without a gradient stay as they are)."""
        out = dict(params)
        for key, g in grads.items():
            out[key] = params[key] - self.lr * g
        return out


class Adam:
    """Adam (b1 0.9, b2 0.999, eps 1e-7).

    Parameters
    ----------
    learning_rate
        The step size (may be changed between steps: ``opt.lr = ...``).
    normalize
        Divide each gradient tensor by its norm + 1e-8 first (the reference's outer optimizer).
    dtype
        What the moments and the update are computed in (float64 by default); None: the
        gradient's own dtype.
    xp
        The array module of the parameters and gradients (numpy or CuPy).
    """

    def __init__(self, learning_rate: float = 1e-4, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7,
                 normalize: bool = True, dtype=np.float64, xp=np):
        self.lr, self.b1, self.b2, self.eps, self.normalize = learning_rate, b1, b2, eps, normalize
        self.dtype, self.xp = dtype, xp
        self.m: dict = {}
        self.v: dict = {}
        self.t = 0

    def step(self, params: dict, grads: dict) -> dict:
        """The parameters after one step on ``grads`` (parameters without a gradient stay as they are)."""
        xp = self.xp
        self.t += 1
        out = dict(params)
        for key, g in grads.items():
            g = xp.asarray(g, self.dtype)
            if self.normalize:
                g = g / (xp.linalg.norm(g) + 1e-8)
            m = self.m.get(key, 0.0) * self.b1 + (1 - self.b1) * g
            v = self.v.get(key, 0.0) * self.b2 + (1 - self.b2) * g * g
            self.m[key], self.v[key] = m, v
            mhat, vhat = m / (1 - self.b1 ** self.t), v / (1 - self.b2 ** self.t)
            value = params[key]
            out[key] = (value - self.lr * mhat / (xp.sqrt(vhat) + self.eps)).astype(value.dtype, copy=False)
        return out

    def state(self) -> dict[str, np.ndarray]:
        """The moments (``m::<key>``, ``v::<key>``) and the step count ``t``, for a checkpoint."""
        out = {f"m::{k}": v for k, v in self.m.items()}
        out.update({f"v::{k}": v for k, v in self.v.items()})
        out["t"] = np.asarray(self.t)
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Continue from :meth:`state`'s arrays."""
        self.t = int(arrays["t"])
        self.m = {k[3:]: self.xp.asarray(v, self.dtype) for k, v in arrays.items() if k.startswith("m::")}
        self.v = {k[3:]: self.xp.asarray(v, self.dtype) for k, v in arrays.items() if k.startswith("v::")}
