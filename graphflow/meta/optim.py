"""Outer optimizers: Adam on per-tensor normalized gradients (the reference regime).

>>> import numpy as np
>>> opt = Adam(learning_rate=0.1)
>>> params = {"a": np.ones(3, np.float32)}
>>> params = opt.step(params, {"a": np.full(3, 2.0, np.float32)})
>>> [round(float(v), 3) for v in params["a"]]
[0.9, 0.9, 0.9]
"""

from __future__ import annotations

import numpy as np


class Adam:
    """Adam (b1 0.9, b2 0.999, eps 1e-7) where each gradient tensor is first divided by its norm + 1e-8."""

    def __init__(self, learning_rate: float = 1e-4, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7,
                 normalize: bool = True):
        self.lr, self.b1, self.b2, self.eps, self.normalize = learning_rate, b1, b2, eps, normalize
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.t += 1
        out = dict(params)
        for key, g in grads.items():
            g = np.asarray(g, np.float64)
            if self.normalize:
                g = g / (np.linalg.norm(g) + 1e-8)
            m = self.m.get(key, np.zeros_like(g)) * self.b1 + (1 - self.b1) * g
            v = self.v.get(key, np.zeros_like(g)) * self.b2 + (1 - self.b2) * g * g
            self.m[key], self.v[key] = m, v
            mhat, vhat = m / (1 - self.b1 ** self.t), v / (1 - self.b2 ** self.t)
            out[key] = (params[key] - self.lr * mhat / (np.sqrt(vhat) + self.eps)).astype(np.float32)
        return out

    def state(self) -> dict[str, np.ndarray]:
        out = {f"m::{k}": v for k, v in self.m.items()}
        out.update({f"v::{k}": v for k, v in self.v.items()})
        out["t"] = np.asarray(self.t)
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.t = int(arrays["t"])
        self.m = {k[3:]: np.asarray(v, np.float64) for k, v in arrays.items() if k.startswith("m::")}
        self.v = {k[3:]: np.asarray(v, np.float64) for k, v in arrays.items() if k.startswith("v::")}
