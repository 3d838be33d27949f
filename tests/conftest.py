"""Shared test fixtures: the reference material in ``../shared`` (never copied into the project).

Tests that need it skip with the reason when it is missing, except under CI=true where a missing
``../shared`` is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def require_shared(*relative: str) -> Path:
    """Path of a file under ../shared; skip (or fail under CI=true) when it is missing."""
    path = SHARED.joinpath(*relative)
    if not path.exists():
        reason = f"{path} is missing (the reference material lives in ../shared beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def reference_dir() -> Path:
    return require_shared("reference")


@pytest.fixture
def mnist_dir() -> Path:
    return require_shared("data", "mnist")


def available_backends() -> list[str]:
    """numpy always; CuPy too where it is installed and sees a GPU."""
    try:
        import cupy

        return ["numpy", "cupy"] if cupy.cuda.runtime.getDeviceCount() > 0 else ["numpy"]
    except Exception:  # no CuPy, or no GPU
        return ["numpy"]


@pytest.fixture(params=available_backends())
def backend(request) -> str:
    """Runs a test body on every available backend (the same body, compared with the same oracle)."""
    return request.param


DEVICE_BACKEND_ENV = "GRAPHFLOW_TEST_BACKEND"
"""Which backend the ``device_backend`` fixture registers as "numpy": ``numpy-device`` (the default,
:mod:`graphflow.testing.device`'s stand-in) or ``cupy`` (the real one, on a machine with a GPU)."""


@pytest.fixture
def device_backend(monkeypatch):
    """Every backend asked for as "numpy" (Engine, MetaGradient, Trainer, evaluation, inspection)
    is, for this test, one whose arrays live on a device: the stand-in whose arrays refuse implicit
    conversion to numpy as CuPy's do, or CuPy itself with ``GRAPHFLOW_TEST_BACKEND=cupy``.
    Returns that backend (float32)."""
    import numpy as np

    from graphflow import backend

    choice = os.environ.get(DEVICE_BACKEND_ENV, "numpy-device")
    if choice == "numpy-device":
        from graphflow.testing.device import numpy_device_backend as factory
    elif choice == "cupy":
        factory = backend.BACKENDS["cupy"]
    else:
        pytest.fail(f"{DEVICE_BACKEND_ENV}={choice!r}: use 'numpy-device' or 'cupy'")
    be = factory(np.float32)  # with cupy chosen and no CuPy or GPU: an error, not a skip
    monkeypatch.setitem(backend.BACKENDS, "numpy", factory)
    return be
