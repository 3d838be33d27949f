"""What machine a benchmark ran on, and how fast it can go: matmul GFLOP/s and memory bandwidth.

BLAS thread control lives in :mod:`graphflow.backend` (the engine needs it too).

>>> info = machine_info("numpy")
>>> info["backend"], info["cores"] >= 1
('numpy', True)
>>> with blas_threads(1):
...     pass
"""

from __future__ import annotations

import os
import platform
import time
import numpy as np

from graphflow.backend import blas_threads, get_blas_kernel, get_blas_threads  # noqa: F401  (re-exported for the benchmarks)

def blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy, or a build without the config dict
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(backend: str = "numpy") -> dict:
    """CPU, cores, numpy, BLAS (its thread count and CPU kernels), backend, Python, load average."""
    info = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count() or 1,
        "numpy": np.__version__,
        "blas": blas_name(),
        "blas_threads": get_blas_threads(),
        "blas_kernel": get_blas_kernel(),
        "backend": backend,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    if backend != "numpy":
        from graphflow.backend import get_backend

        try:
            info.update(get_backend(backend).device_info())
        except Exception as err:  # no CuPy: say so rather than fail the report
            info["gpu"] = f"unavailable ({err})"
    return info


# ----------------------------------------------------------------------------------------------
# Machine limits


def _best_seconds(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops(rows: int = 57_600, inner: int = 80, cols: int = 40, threads: int = 1, repeat: int = 5) -> float:
    """GFLOP/s of ``[rows, inner] @ [inner, cols]`` float32 with BLAS on ``threads`` threads.

    The default shape is a learner layer's: 57,600 node-examples (a 784-100 layer at batch 8 is
    627,200) through an 80 -> 40 dense layer.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner), np.float32)
    b = rng.standard_normal((inner, cols), np.float32)
    out = np.empty((rows, cols), np.float32)
    with blas_threads(threads):
        seconds = _best_seconds(lambda: np.matmul(a, b, out=out), repeat)
    return 2.0 * rows * inner * cols / seconds / 1e9


def memory_bandwidth_gbs(megabytes: int = 256, repeat: int = 5) -> dict[str, float]:
    """GB/s of a large float32 copy (read + write) and add (two reads + one write)."""
    n = megabytes * 2**20 // 4
    a = np.ones(n, np.float32)
    b = np.ones(n, np.float32)
    c = np.empty(n, np.float32)
    copy = _best_seconds(lambda: np.copyto(c, a), repeat)
    add = _best_seconds(lambda: np.add(a, b, out=c), repeat)
    return {"copy": 2 * 4 * n / copy / 1e9, "add": 3 * 4 * n / add / 1e9}


def machine_limits(quick: bool = False) -> dict:
    """Peak figures the cases are compared with: matmul GFLOP/s (1 and 2 BLAS threads), GB/s."""
    repeat = 2 if quick else 5
    rows = 14_400 if quick else 57_600
    bandwidth = memory_bandwidth_gbs(64 if quick else 256, repeat)
    return {
        "matmul_shape": [rows, 80, 40],
        "matmul_gflops_1thread": matmul_gflops(rows, threads=1, repeat=repeat),
        "matmul_gflops_2threads": matmul_gflops(rows, threads=2, repeat=repeat),
        "copy_gbs": bandwidth["copy"],
        "add_gbs": bandwidth["add"],
    }


__all__ = ["blas_threads", "get_blas_threads", "machine_info", "machine_limits", "matmul_gflops", "memory_bandwidth_gbs"]
