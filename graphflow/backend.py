"""The one place that knows numpy from CuPy.

A :class:`Backend` is chosen once (``backend="numpy" | "cupy"``) and passed down; engine code
uses ``be.xp`` as its array module and the few helpers here that differ between the two.
Everything the engine computes is float32 (float64 exists for finite-difference checks).

>>> be = get_backend("numpy")
>>> be.segment_sum(be.asarray([[1.0, 2.0, 3.0]]), be.xp.asarray([0, 1, 0]), 2).tolist()
[[4.0, 2.0]]
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import numpy as np

from graphflow.errors import GraphflowError


@dataclass(frozen=True)
class Backend:
    name: str
    xp: ModuleType
    dtype: type = np.float32
    traced: bool = False
    """True for the tracing namespace of :mod:`graphflow.autodiff` (no in-place tricks then)."""
    cache_blocking: bool = True
    """Run large learner calls in cache-sized row blocks on CPU threads (not on a GPU)."""

    def asarray(self, a, dtype=None):
        """An array of this backend, float32 unless told otherwise."""
        return self.xp.asarray(a, dtype=dtype or self.dtype)

    def index(self, a):
        """An integer index array on this backend's device."""
        return self.xp.asarray(a, dtype=self.xp.int64)

    def to_numpy(self, a) -> np.ndarray:
        return a.get() if hasattr(a, "get") else np.asarray(a)

    def segment_sum(self, values, segment_ids, num_segments: int, axis: int = -1):
        """Sum ``values`` along ``axis`` into ``num_segments`` bins given by ``segment_ids``.

        One ``bincount`` over all leading rows at once (O(size), numpy and CuPy alike); a traced
        namespace (meta-gradients) uses a matmul with a one-hot matrix instead, which it can
        differentiate.
        """
        xp = self.xp
        moved = xp.moveaxis(values, axis, -1)
        if self.traced:
            onehot = (segment_ids[:, None] == xp.arange(num_segments)[None, :]).astype(values.dtype)
            return xp.moveaxis(moved @ onehot, -1, axis)
        lead = moved.shape[:-1]
        rows = int(np.prod(lead))
        ids = (xp.arange(rows)[:, None] * num_segments + segment_ids[None, :]).reshape(-1)
        sums = xp.bincount(ids, weights=moved.reshape(-1), minlength=rows * num_segments)
        return xp.moveaxis(sums.reshape(lead + (num_segments,)).astype(values.dtype), -1, axis)

    def index_add(self, target, index, values) -> None:
        """``target[index] += values`` in place, accumulating repeated indices."""
        if self.name == "numpy":
            np.add.at(target, index, values)
        else:
            import cupyx

            cupyx.scatter_add(target, index, values)

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""
        if hasattr(self.xp, "cuda"):
            self.xp.cuda.get_current_stream().synchronize()

    def device_info(self) -> dict:
        """What the arrays live on: ``{"device": "cpu"}`` or the GPU's name and the CuPy version."""
        if not hasattr(self.xp, "cuda"):
            return {"device": "cpu"}
        try:
            props = self.xp.cuda.runtime.getDeviceProperties(0)
            name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
            return {"device": "gpu", "gpu": name, "cupy": self.xp.__version__}
        except Exception as err:  # a CuPy without a usable GPU: say so rather than fail
            return {"device": "gpu", "gpu": f"unavailable ({err})"}

    def compute(self):
        """The context engine work runs in: on CPU, BLAS on one thread.

        The engine's matrix products are many and mid-sized; OpenBLAS's own threads spin and
        contend on them (measured 10x slower on a busy 2-core machine), while graphflow
        parallelizes large learner calls itself (``Engine(threads=...)``).
        """
        if self.cache_blocking:
            return blas_threads(1)
        return contextlib.nullcontext()

    def with_dtype(self, dtype) -> "Backend":
        return Backend(self.name, self.xp, dtype, self.traced, self.cache_blocking)


def get_backend(name: str | Backend = "numpy", dtype=np.float32) -> Backend:
    """Resolve ``"numpy"`` or ``"cupy"`` to a :class:`Backend` (a clear error when CuPy is missing)."""
    if isinstance(name, Backend):
        return name
    if name == "numpy":
        return Backend("numpy", np, dtype)
    if name == "cupy":
        try:
            import cupy
        except ImportError as err:
            raise GraphflowError(f"backend 'cupy' needs CuPy and a GPU: pip install graphflow[gpu] ({err})") from None
        return Backend("cupy", cupy, dtype, cache_blocking=False)
    raise GraphflowError(f"unknown backend {name!r}; use 'numpy' or 'cupy'")


# ------------------------------------------------------------------------------------------------
# BLAS threads. numpy's wheels ship OpenBLAS, which runs its own threads inside every matmul; when
# graphflow splits work over its own threads, BLAS must run on one, or the two kinds of threads
# fight over the cores. The library is found among the loaded ones and told through ctypes.

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
            "openblas_get_num_threads")


@lru_cache(maxsize=1)
def _openblas():
    """(set, get) of the loaded OpenBLAS, or None when numpy uses another BLAS."""
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS is loaded
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f
                            if "openblas" in os.path.basename(line.split()[-1]).lower() and ".so" in line.split()[-1]})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            getter.restype = ctypes.c_int
            return setter, getter
    return None


def get_blas_threads() -> int | None:
    """The BLAS thread count, or None when it cannot be read."""
    found = _openblas()
    return int(found[1]()) if found else None


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the body with BLAS on ``n`` threads (a no-op when the BLAS cannot be told).

    >>> with blas_threads(1):
    ...     pass
    """
    found = _openblas()
    if found is None:
        yield
        return
    setter, getter = found
    before = int(getter())
    setter(int(n))
    try:
        yield
    finally:
        setter(before)
