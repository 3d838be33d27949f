"""Checking the tape's gradients against central finite differences (float64).

:func:`check_gradients` differentiates a scalar function of named arrays twice: once on a
:class:`~graphflow.autodiff.tape.Tape` and once numerically, ``(f(x + eps e) - f(x - eps e)) / 2 eps``
entry by entry, and compares. The function must be written with the operators of its inputs and
the ``xp`` of a :func:`~graphflow.autodiff.tape.traced_backend` (so that the same code runs on
plain arrays for the differences and on :class:`~graphflow.autodiff.tape.Var` for the tape).

Central differences have an error of about ``eps**2 * |f'''|`` (truncation) plus
``1e-16 * |f| / eps`` (rounding); with float64 and ``eps = 1e-6`` both are far below the default
tolerance. Kinks (relu, abs, clip, max) are the one thing they cannot see past: a check must
keep every kink input farther than ``eps`` times its sensitivity from the kink, or use smooth
functions there.

>>> import numpy as np
>>> from graphflow.backend import get_backend
>>> be = traced_backend(get_backend("numpy", np.float64))
>>> x = np.array([0.3, -1.2, 2.0])
>>> result = check_gradients(lambda v: be.xp.sum(be.xp.tanh(v["x"]) * v["x"]), {"x": x}, be)
>>> result.ok, len(result.analytic)
(True, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphflow.autodiff.tape import Tape, Var, grad, traced_backend  # noqa: F401 (traced_backend: doctest)


@dataclass
class GradCheck:
    """Analytic (tape) and numeric (central differences) gradients at the checked entries."""

    entries: list[tuple[str, tuple[int, ...]]]
    analytic: np.ndarray
    numeric: np.ndarray
    value: float
    rtol: float
    atol: float

    @property
    def errors(self) -> np.ndarray:
        return np.abs(self.analytic - self.numeric)

    @property
    def ok(self) -> bool:
        return bool(np.all(self.errors <= self.atol + self.rtol * np.abs(self.numeric)))

    def report(self, worst: int = 8) -> str:
        excess = self.errors - self.rtol * np.abs(self.numeric)
        order = np.argsort(-excess)[:worst]
        rows = [f"{'entry':<48} {'tape':>14} {'finite diff':>14} {'|diff|':>10}"]
        for k in order:
            name, idx = self.entries[k]
            rows.append(f"{name + str(list(idx)):<48} {self.analytic[k]:>14.7g} {self.numeric[k]:>14.7g} "
                        f"{self.errors[k]:>10.3g}")
        return "\n".join(rows)

    def assert_ok(self, what: str = "gradient") -> None:
        if not self.ok:
            bad = int(np.sum(self.errors > self.atol + self.rtol * np.abs(self.numeric)))
            raise AssertionError(f"{what}: {bad} of {len(self.entries)} entries disagree with central differences "
                                 f"(rtol {self.rtol}, atol {self.atol}):\n{self.report()}")


def tape_gradient(fn, inputs: dict, backend) -> tuple[float, dict[str, np.ndarray]]:
    """(value, {name: d fn / d input}) of a scalar ``fn`` of named arrays, by the tape."""
    base = backend
    with Tape(base) as tape:
        leaves = {k: tape.var(base.asarray(v)) for k, v in inputs.items()}
        out = fn(leaves)
    if not isinstance(out, Var):  # fn does not depend on its inputs at all
        return float(base.to_numpy(out)), {k: np.zeros(np.shape(v)) for k, v in inputs.items()}
    grads = grad(tape, out, list(leaves.values()))
    return float(base.to_numpy(out.value)), {k: base.to_numpy(g) for k, g in zip(leaves, grads)}


def numeric_gradient(fn, inputs: dict, entries, backend, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar ``fn`` at the given ``(name, index)`` entries."""
    plain = {k: np.array(v, dtype=backend.dtype) for k, v in inputs.items()}
    out = np.empty(len(entries))
    for n, (name, idx) in enumerate(entries):
        values = []
        for step in (eps, -eps):
            moved = dict(plain)
            moved[name] = plain[name].copy()
            moved[name][idx] += step
            values.append(float(backend.to_numpy(fn({k: backend.asarray(v) for k, v in moved.items()}))))
        out[n] = (values[0] - values[1]) / (2 * eps)
    return out


def pick_entries(inputs: dict, count: int | None, rng: np.random.Generator | None = None):
    """All entries of every input, or ``count`` random ones that touch every input at least once
    (while ``count`` allows)."""
    every = [(k, tuple(int(i) for i in idx)) for k, v in inputs.items() for idx in np.ndindex(np.shape(v))]
    if count is None or count >= len(every):
        return every
    rng = rng or np.random.default_rng(0)
    chosen: list = []
    names = list(inputs)
    for k in rng.permutation(len(names))[:count]:
        shape = np.shape(inputs[names[k]])
        chosen.append((names[k], tuple(int(rng.integers(n)) for n in shape)))
    taken = set(chosen)
    rest = [e for e in every if e not in taken]
    for k in rng.choice(len(rest), size=count - len(chosen), replace=False):
        chosen.append(rest[k])
    return chosen


def check_gradients(fn, inputs: dict, backend, entries=None, count: int | None = None, rng=None,
                    eps: float = 1e-6, rtol: float = 1e-4, atol: float = 1e-8) -> GradCheck:
    """Compare the tape's gradient of ``fn`` with central differences.

    ``backend`` is a float64 (traced or plain) backend; ``entries`` lists ``(name, index)``
    pairs to check, else ``count`` random ones (default: all). ``atol`` is scaled by
    ``max(1, |f|)``, the size of the differences' rounding error.
    """
    base = backend
    value, grads = tape_gradient(fn, inputs, base)
    entries = entries if entries is not None else pick_entries(inputs, count, rng)
    analytic = np.array([grads[name][idx] for name, idx in entries], dtype=np.float64)
    numeric = numeric_gradient(fn, inputs, entries, base, eps)
    return GradCheck(list(entries), analytic, numeric, value, rtol, atol * max(1.0, abs(value)))


__all__ = ["GradCheck", "check_gradients", "numeric_gradient", "pick_entries", "tape_gradient"]


class KinkMonitor:
    """An array namespace that records how close the values it sees come to a kink.

    Wrap a backend's ``xp`` with it (``dataclasses.replace(be, xp=KinkMonitor(be.xp))``) and run
    a function on plain arrays: ``margin`` is then the smallest distance seen between a kinked
    function's input and its kink (relu/maximum: ``|a - b|``, abs: ``|a|``, clip: the distance to
    either bound, max: half the gap between the two largest entries). A central difference with
    step ``eps`` cannot cross a kink when ``margin`` exceeds ``eps`` times the input's sensitivity;
    checks assert a margin before they trust their differences.

    >>> import numpy as np
    >>> xp = KinkMonitor(np)
    >>> _ = xp.maximum(np.array([0.5, -0.02]), 0)
    >>> _ = xp.max(np.array([[1.0, 0.4, 0.9]]), axis=-1)
    >>> round(xp.margin, 6)
    0.02
    """

    def __init__(self, xp):
        self._xp = xp
        self.margin = float("inf")
        self.__name__ = f"kink-monitor-{getattr(xp, '__name__', 'xp')}"

    def _see(self, distance) -> None:
        d = np.asarray(_plain(distance))
        if d.size:
            self.margin = min(self.margin, float(d.min()))

    def maximum(self, a, b, **kwargs):
        self._see(abs(_plain(a) - _plain(b)))
        return self._xp.maximum(a, b, **kwargs)

    def abs(self, a):
        self._see(abs(_plain(a)))
        return self._xp.abs(a)

    def clip(self, a, lo, hi):
        v = _plain(a)
        self._see(np.minimum(abs(v - lo), abs(v - hi)))
        return self._xp.clip(a, lo, hi)

    def max(self, a, axis=None, keepdims=False):
        v = np.asarray(_plain(a))
        if v.size > 1:
            axes = tuple(range(v.ndim)) if axis is None else tuple(int(k) % v.ndim for k in np.atleast_1d(axis))
            rest = [k for k in range(v.ndim) if k not in axes]
            grouped = np.transpose(v, rest + list(axes)).reshape(*[v.shape[k] for k in rest], -1)
            top = np.sort(grouped, axis=-1)[..., -2:]
            if top.shape[-1] == 2:
                self._see((top[..., 1] - top[..., 0]) / 2)
        return self._xp.max(a, axis=axis, keepdims=keepdims)

    def __getattr__(self, name):
        return getattr(self._xp, name)


def _plain(a):
    v = a.value if isinstance(a, Var) else a
    return v.get() if hasattr(v, "get") else v
