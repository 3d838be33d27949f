"""Timing and peak-memory helpers for the benchmarks.

Times are medians of repeated calls after warm-up calls; CuPy work is synchronized before the
clock stops. Peak memory is the peak of :mod:`tracemalloc` (numpy reports its array buffers to it),
i.e. host memory allocated during the call, measured in a separate run because tracing slows the
call down.

>>> seconds, samples = median_seconds(lambda: sum(range(1000)), repeat=3, warmup=1)
>>> len(samples), seconds > 0
(3, True)
>>> peak_bytes(lambda: bytearray(10_000_000)) >= 10_000_000
True
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc


def synchronize(backend_name: str) -> None:
    """Wait for queued device work (CuPy); nothing to do on numpy."""
    from graphflow.backend import get_backend

    get_backend(backend_name).synchronize()


def median_seconds(fn, repeat: int = 5, warmup: int = 1, backend: str = "numpy",
                   budget: float | None = None) -> tuple[float, list[float]]:
    """(median, all samples) of ``fn()`` wall time in seconds.

    With ``budget`` (seconds), repetitions stop early once the samples add up to it (one at least),
    so that a slow case does not hold the machine for minutes.
    """
    for _ in range(warmup):
        fn()
    synchronize(backend)
    samples = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        synchronize(backend)
        samples.append(time.perf_counter() - t0)
        if budget is not None and sum(samples) >= budget:
            break
    return statistics.median(samples), samples


def peak_bytes(fn) -> int:
    """Peak host memory allocated while ``fn()`` runs (tracemalloc; numpy buffers included)."""
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(0, peak - base)


__all__ = ["median_seconds", "peak_bytes", "synchronize"]
