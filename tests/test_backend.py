"""The backend's process-level allocator setting: glibc keeps freed memory for reuse."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, json, numpy as np
from graphflow.backend import keep_freed_memory, get_backend
with get_backend("numpy").compute():
    pass
done = keep_freed_memory()
# Probe: a freed 8 MiB array comes back at the same address only when glibc keeps
# it in the heap (above the default 128 KiB mmap threshold it is unmapped and mapped anew).
a = np.empty(2 << 20, np.float32); addr = a.ctypes.data; del a
b = np.empty(2 << 20, np.float32)
print(json.dumps({"done": done, "heap": b.ctypes.data == addr}))
"""


def _run(env_extra: dict) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GRAPHFLOW_MALLOC"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_engine_work_keeps_freed_memory_unless_told_not_to():
    kept = _run({})
    assert kept == {"done": True, "heap": True}
    assert _run({"GRAPHFLOW_MALLOC": "system"})["done"] is False
    assert _run({"MALLOC_TRIM_THRESHOLD_": "131072"})["done"] is False  # the user's own glibc tuning wins
