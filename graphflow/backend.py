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
from dataclasses import dataclass, field, replace
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
    kernels: object = field(default=None, compare=False, repr=False)
    """The learner cells' elementwise chains (:mod:`graphflow.kernels`), chosen once for this
    backend and dtype: compiled loops (numba) for float32 numpy when installed, else ``xp``'s
    array operations. ``GRAPHFLOW_KERNELS`` overrides the choice."""

    def __post_init__(self):
        plain = self.xp
        while hasattr(plain, "_xp"):  # a tracing (or monitoring) namespace: the module beneath
            plain = plain._xp
        if self.kernels is None or getattr(self.kernels, "xp", plain) is not plain:  # none yet, or made for another module
            from graphflow.kernels import choose_kernels

            object.__setattr__(self, "kernels", choose_kernels(self.name, plain, self.dtype))

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

        One ``bincount`` over all leading rows at once (O(size), numpy and CuPy alike). Under the
        tape it is one recorded stage: the same sum forward, and backward a gather of the
        cotangent at each value's segment (never an [E, segments] one-hot matrix).
        """
        if self.traced:
            plain = replace(self, xp=self.xp._xp, traced=False)

            def forward(xp, v):
                return plain.segment_sum(v, segment_ids, num_segments, axis), None

            def backward(xp, inputs, residuals, g):
                return (xp.take(g, segment_ids, axis=axis),)

            return self.xp.fused(forward, backward, (values,))
        xp = self.xp
        moved = xp.moveaxis(values, axis, -1)
        lead = moved.shape[:-1]
        rows = int(np.prod(lead))
        ids = (xp.arange(rows)[:, None] * num_segments + segment_ids[None, :]).reshape(-1)
        sums = xp.bincount(ids, weights=moved.reshape(-1), minlength=rows * num_segments)
        return xp.moveaxis(sums.reshape(lead + (num_segments,)).astype(values.dtype), -1, axis)

    def index_add(self, target, index, values) -> None:
        """``target[index] += values`` in place, accumulating repeated indices."""
        if self.name == "cupy":
            import cupyx

            cupyx.scatter_add(target, index, values)
        else:
            self.xp.add.at(target, index, values)

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
        """The context engine work runs in: on CPU, BLAS on one thread for the body only.

        The engine's matrix products are many and mid-sized; OpenBLAS's own threads spin and
        contend on them (measured 10x slower on a busy 2-core machine), while graphflow
        parallelizes large learner calls itself (``Engine(threads=...)``). Process-wide settings
        are left alone: keeping freed memory (:func:`keep_freed_memory`) is the command line's
        choice, or the user's, with one call.
        """
        if self.cache_blocking:
            return blas_threads(1)
        return contextlib.nullcontext()

    def with_dtype(self, dtype) -> "Backend":
        return replace(self, dtype=dtype, kernels=None)


def _numpy_backend(dtype) -> Backend:
    return Backend("numpy", np, dtype)


def _cupy_backend(dtype) -> Backend:
    try:
        import cupy
    except ImportError as err:
        raise GraphflowError(f"backend 'cupy' needs CuPy and a GPU: pip install graphflow[gpu] ({err})") from None
    return Backend("cupy", cupy, dtype, cache_blocking=False)


BACKENDS: dict = {"numpy": _numpy_backend, "cupy": _cupy_backend}
"""Backend name -> ``factory(dtype) -> Backend``. Tests swap an entry (for instance ``"numpy"`` for a
backend whose arrays refuse implicit conversion to the host, as CuPy's do) to run the whole library on it."""


def get_backend(name: str | Backend = "numpy", dtype=np.float32) -> Backend:
    """Resolve ``"numpy"`` or ``"cupy"`` to a :class:`Backend` (a clear error when CuPy is missing)."""
    if isinstance(name, Backend):
        return name
    factory = BACKENDS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise GraphflowError(f"unknown backend {name!r}; use 'numpy' or 'cupy'")
    return factory(dtype)


# ------------------------------------------------------------------------------------------------
# Cache blocking. Learner calls are independent per node and example, so a large call can run in
# blocks of rows. Arrays are [T, B, n2, n3, ..., width] (tasks, examples, node axes); a block is a
# range of axis 2 and, when one unit of axis 2 is already more than a block (a dense weight block's
# input unit with thousands of output neurons), a range of axis 3 too. An array broadcast along an
# axis (size 1 there) is taken whole along it.

Block = tuple
"""((lo2, hi2), (lo3, hi3) or None): a block of the node axes 2 and 3."""


def node_blocks(shape: tuple, block_rows: int) -> list[Block]:
    """Blocks of about ``block_rows`` rows covering the leading ``shape`` [T, B, n2, n3, ...].

    >>> node_blocks((1, 8, 5, 100), 1600)
    [((0, 2), None), ((2, 4), None), ((4, 5), None)]
    >>> node_blocks((1, 8, 2, 1000), 4000)
    [((0, 1), (0, 500)), ((0, 1), (500, 1000)), ((1, 2), (0, 500)), ((1, 2), (500, 1000))]
    >>> node_blocks((1, 8, 2), 4000)
    [((0, 2), None)]
    """
    rows = int(np.prod(shape))
    if len(shape) < 3 or rows < 2 * block_rows or shape[2] * (shape[3] if len(shape) > 3 else 1) < 2:
        return [((0, shape[2]) if len(shape) > 2 else (0, 1), None)]
    n2 = shape[2]
    per2 = rows // n2
    if per2 <= block_rows or len(shape) < 4 or shape[3] < 2:
        step = max(1, block_rows // per2)
        return [((lo, min(lo + step, n2)), None) for lo in range(0, n2, step)]
    n3 = shape[3]
    step = max(1, block_rows // (per2 // n3))
    return [((i, i + 1), (lo, min(lo + step, n3))) for i in range(n2) for lo in range(0, n3, step)]


def block_part(a, block: Block):
    """The view of ``a`` [T, B, n2, n3, ..., width] that a block covers; axes along which ``a`` is
    broadcast (size 1) are taken whole."""
    if a is None:
        return None
    index = [slice(None), slice(None)]
    for axis, bounds in ((2, block[0]), (3, block[1])):
        if axis >= a.ndim - 1:
            break
        index.append(slice(*bounds) if bounds is not None and a.shape[axis] > 1 else slice(None))
    return a[tuple(index)]


# ------------------------------------------------------------------------------------------------
# BLAS threads. numpy's BLAS (OpenBLAS in the wheels; MKL or BLIS in other builds) runs its own
# threads inside every matmul; when graphflow splits work over its own threads, BLAS must run on
# one, or the two kinds of threads fight over the cores. threadpoolctl knows every BLAS and sets
# the limit for the body of a ``with`` only, so the user's own setting comes back afterwards.


@lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, made once: making one inspects every
    loaded library (about 1 ms), and the engine limits BLAS around every step."""
    import numpy  # noqa: F401  (the BLAS is loaded with numpy)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def get_blas_threads() -> int | None:
    """The BLAS thread count (the largest over the BLAS libraries loaded), or None when none is found."""
    counts = [int(info["num_threads"]) for info in _blas_controller().info()]
    return max(counts) if counts else None


def get_blas_kernel() -> str | None:
    """The CPU kernels the loaded BLAS runs (OpenBLAS's core type: 'Haswell', 'SkylakeX', ...), or
    None when the BLAS does not say.

    Two kernels round float32 matrix products differently in their last digits, and a meta-training
    of some hundred steps turns those into a visibly different protocol: bit-for-bit runs across
    machines need the same kernel. numpy's OpenBLAS picks it per CPU when it loads; the environment
    variable ``OPENBLAS_CORETYPE`` (read then) fixes it, e.g. ``Haswell`` on any x86-64 CPU with AVX2.
    """
    kernels = sorted({str(info["architecture"]) for info in _blas_controller().info() if info.get("architecture")})
    return ",".join(kernels) or None


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the body with BLAS on ``n`` threads, whichever BLAS numpy uses (threadpoolctl).

    >>> with blas_threads(1):
    ...     get_blas_threads()
    1
    """
    with _blas_controller().limit(limits=int(n)):
        yield


# ------------------------------------------------------------------------------------------------
# Freed memory. A step allocates and frees many mid-sized arrays (a few MB per block of a learner
# call; a meta-step's tape holds gigabytes). By default glibc gives freed memory above 128 KiB back
# to the kernel, and the next step page-faults it in again: 6 MNIST meta-steps took 862,000 page
# faults with glibc's settings and 406,000 with these, 1.77 s and 1.55 s per meta-step
# (docs/performance.md, "What each change gave"). The setting is the process's, not the library's:
# the ``graphflow`` command turns it on; a program that uses graphflow as a library calls
# ``graphflow.keep_freed_memory()`` once if it wants the same.

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MALLOC_SETTINGS = {"mmap_threshold": 32 << 20, "trim_threshold": 1 << 30, "top_pad": 64 << 20}
"""Arrays below 32 MiB come from the heap; up to 1 GiB of freed heap is kept for reuse."""


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (:data:`MALLOC_SETTINGS`), once per
    process; returns whether it did.

    It does nothing with ``GRAPHFLOW_MALLOC=system`` in the environment, when the user set glibc's
    own ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_TOP_PAD_``, or on
    another C library.
    """
    if os.environ.get("GRAPHFLOW_MALLOC", "").lower() == "system":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MALLOC_SETTINGS["mmap_threshold"]),
        (_M_TRIM_THRESHOLD, MALLOC_SETTINGS["trim_threshold"]),
        (_M_TOP_PAD, MALLOC_SETTINGS["top_pad"]),
    ))
