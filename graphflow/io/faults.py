"""Named points where a test can kill the process, to prove that no kill loses or corrupts state.

``GRAPHFLOW_KILL_AT=checkpoint-write`` makes the first call of ``kill_point("checkpoint-write")``
send SIGKILL to its own process; ``GRAPHFLOW_KILL_AT=log-append:3`` the third call of that point.
Without the variable a kill point costs one dictionary lookup.

The points: ``checkpoint-write`` (the temporary checkpoint is written and synced, not yet renamed),
``log-rewrite`` (a truncated log is written to its temporary file, not yet renamed), ``log-append``
(half a log line is written and flushed), ``meta-step`` (a meta-step is computed and applied, not
yet logged).
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def kill_point(name: str) -> None:
    """SIGKILL this process here when ``GRAPHFLOW_KILL_AT`` names this point (and this call's count)."""
    spec = os.environ.get("GRAPHFLOW_KILL_AT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
