"""The backend's process-level allocator setting: glibc keeps freed memory for reuse."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, json, sys, numpy as np
import graphflow as gf
from graphflow.backend import keep_freed_memory, get_backend
with get_backend("numpy").compute():
    pass
done = keep_freed_memory() if sys.argv[1] == "opt-in" else None
# Probe: a freed 8 MiB array comes back at the same address only when glibc keeps
# it in the heap (above the default 128 KiB mmap threshold it is unmapped and mapped anew).
a = np.empty(2 << 20, np.float32); addr = a.ctypes.data; del a
b = np.empty(2 << 20, np.float32)
print(json.dumps({"done": done, "heap": b.ctypes.data == addr}))
"""


def _run(env_extra: dict, mode: str = "opt-in") -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GRAPHFLOW_MALLOC"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keeping_freed_memory_is_one_call_and_never_a_side_effect():
    assert _run({}, "library") == {"done": None, "heap": False}  # engine work alone leaves malloc as it is
    kept = _run({})
    assert kept == {"done": True, "heap": True}
    assert _run({"GRAPHFLOW_MALLOC": "system"})["done"] is False
    assert _run({"MALLOC_TRIM_THRESHOLD_": "131072"})["done"] is False  # the user's own glibc tuning wins


def test_blas_threads_holds_blas_at_n_for_the_body_only():
    from threadpoolctl import threadpool_limits

    from graphflow.backend import blas_threads, get_backend, get_blas_threads

    if get_blas_threads() is None:
        pytest.skip("numpy's BLAS is not one threadpoolctl knows")
    with threadpool_limits(limits=2, user_api="blas"):  # the user's own setting
        with get_backend("numpy").compute():
            assert get_blas_threads() == 1
        with blas_threads(1):
            assert get_blas_threads() == 1
        assert get_blas_threads() == 2


def test_the_command_line_keeps_freed_memory():
    code = ("import sys; import graphflow.backend as b; from graphflow.cli import main; main(['--help']); "
            "print('kept' if b.keep_freed_memory.cache_info().currsize else 'not kept', file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GRAPHFLOW_MALLOC"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stderr.strip().splitlines()[-1] == "kept"


def _kernel_in_a_new_process(env_extra: dict) -> str:
    code = "from graphflow.backend import get_blas_kernel; print(get_blas_kernel())"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_blas_kernel_is_named_and_openblas_coretype_fixes_it():
    import platform

    from graphflow.backend import get_blas_kernel
    from graphflow.bench.machine import machine_info

    if get_blas_kernel() is None:
        pytest.skip("numpy's BLAS does not name its kernels")
    assert machine_info()["blas_kernel"] == get_blas_kernel() == _kernel_in_a_new_process({})
    if "openblas" not in machine_info()["blas"].lower() or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("OPENBLAS_CORETYPE=Haswell is OpenBLAS's, on x86-64")
    assert _kernel_in_a_new_process({"OPENBLAS_CORETYPE": "Haswell"}) == "Haswell"
