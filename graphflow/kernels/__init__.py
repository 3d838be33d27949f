"""The learner cells' elementwise kernels, supplied by the backend.

The learner cells (:mod:`graphflow.learners.cells`) spend their time in two kinds of work: small
matrix products (BLAS) and chains of elementwise operations between them (bias, activation,
gates, the GRU's blend, and the same chains backwards). The matrix products are the array
module's; the chains are the methods of a *kernels* object that the backend picks once
(:attr:`graphflow.backend.Backend.kernels`):

- :class:`~graphflow.kernels.generic.ArrayKernels`: the chains as array operations of ``xp``
  (numpy or CuPy), one pass over memory per operation. Always available; float64 backends (the
  finite-difference checks) always use it.
- :class:`~graphflow.kernels.cpu_numba.NumbaKernels`: each chain as one compiled loop (numba),
  one pass over memory, with a rational tanh that is 8x faster than numpy's and within 4e-7 of
  it. For float32 numpy backends when numba is installed (``pip install 'graphflow[fast]'``).

``GRAPHFLOW_KERNELS`` chooses: ``auto`` (the default: numba when installed), ``numba`` (an error
when it is missing) or ``numpy`` (the array operations). Every kernel works on plain arrays
``[..., width]`` of the backend (inside a traced stage the tape has already unwrapped them) and
the two implementations agree within 1e-5 (``tests/test_kernels.py``).

>>> import numpy as np
>>> k = choose_kernels("numpy", np, np.float32, "numpy")
>>> type(k).__name__, k.name
('ArrayKernels', 'numpy')
"""

from __future__ import annotations

import os

from graphflow.errors import GraphflowError

KERNEL_CHOICES = ("auto", "numba", "numpy")
"""The values of ``GRAPHFLOW_KERNELS``."""


def numba_available() -> bool:
    """Whether numba can be imported (the ``fast`` extra)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_choice() -> str:
    """``GRAPHFLOW_KERNELS`` (default ``auto``), checked."""
    choice = os.environ.get("GRAPHFLOW_KERNELS", "auto").strip().lower() or "auto"
    if choice not in KERNEL_CHOICES:
        raise GraphflowError(f"GRAPHFLOW_KERNELS={choice!r}: use one of {', '.join(KERNEL_CHOICES)}")
    return choice


def choose_kernels(backend: str, xp, dtype, choice: str | None = None):
    """The kernels for a backend named ``backend`` with array module ``xp`` and ``dtype``.

    The compiled kernels serve float32 on the CPU (numpy); everything else gets the array
    operations of ``xp``. ``choice`` overrides ``GRAPHFLOW_KERNELS``.
    """
    import numpy as np

    from graphflow.kernels.generic import ArrayKernels

    choice = kernel_choice() if choice is None else choice
    if choice not in KERNEL_CHOICES:
        raise GraphflowError(f"kernels {choice!r}: use one of {', '.join(KERNEL_CHOICES)}")
    compiled = backend == "numpy" and np.dtype(dtype) == np.float32
    if choice == "numba" and not numba_available():
        raise GraphflowError("GRAPHFLOW_KERNELS=numba needs numba: pip install 'graphflow[fast]'")
    if compiled and choice != "numpy" and numba_available():
        from graphflow.kernels.cpu_numba import NumbaKernels

        return NumbaKernels(xp)
    return ArrayKernels(xp)


__all__ = ["KERNEL_CHOICES", "choose_kernels", "kernel_choice", "numba_available"]
