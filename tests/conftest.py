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
