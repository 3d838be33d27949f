"""How much memory this machine has left, and refusing work that needs more than that.

:func:`graphflow.graph.build` checks its own estimate (:func:`graphflow.graph.build.estimate_bytes`)
against :func:`available_bytes` before allocating anything; later stages (engine state, pools of
initial networks) can add what they need to that estimate and call :func:`require_memory` too.

>>> format_bytes(12 * 10**9), format_bytes(512)
('12.0 GB', '512 bytes')
>>> require_memory(12 * 10**9, "graph", "dense1: 10^12 weight nodes", available=2 * 10**9)
Traceback (most recent call last):
...
graphflow.errors.GraphError: graph needs about 12.0 GB to build (dense1: 10^12 weight nodes); 2.0 GB available
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from graphflow.errors import GraphError

INT64_MAX = 2**63 - 1
"""The largest node count or index numpy's int64 arrays can hold."""


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_available() -> int | None:
    try:
        pages, page = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page if pages > 0 and page > 0 else None


def _cgroup_available() -> int | None:
    """What a cgroup v2 memory limit (a container's) leaves, when there is one."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip()), 0)
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """Bytes of memory available to this process now (``MemAvailable`` of /proc/meminfo, else
    ``os.sysconf``, lowered to a container's memory limit); None when the system does not say."""
    found = [v for v in (_meminfo_available() or _sysconf_available(), _cgroup_available()) if v is not None]
    return min(found) if found else None


def format_bytes(n: int | float) -> str:
    if n < 1000:
        return f"{int(n)} bytes"
    for unit, scale in (("kB", 10**3), ("MB", 10**6), ("GB", 10**9), ("TB", 10**12), ("PB", 10**15)):
        if n < 1000 * scale or unit == "PB":
            return f"{n / scale:.1f} {unit}"
    raise AssertionError  # unreachable


def require_memory(needed: int, what: str, detail: str = "", *, doing: str = "to build",
                   available: int | None = None) -> None:
    """Raise a :class:`GraphError` when ``needed`` bytes exceed the memory available (``available``
    if given, else :func:`available_bytes`; nothing is checked when neither is known)."""
    if available is None:
        available = available_bytes()
    if available is None or needed <= available:
        return
    needed_text = format_bytes(needed) if needed < 10**24 else f"10^{int(math.log10(needed))} bytes"
    raise GraphError(f"{what} needs about {needed_text} {doing}{f' ({detail})' if detail else ''}; "
                     f"{format_bytes(available)} available")
