"""Per-node inspection of recorded inner-loop runs: query them, save and reload them.

Reads runs (:class:`Run`, from :func:`load_run` or from :mod:`graphflow.recording`, which records
them by running the engine); never runs the engine nor reaches its kernels, and never imports
:mod:`graphflow.recording`. Pictures of runs live in :mod:`graphflow.viz.run_plots` and
:mod:`graphflow.viz.explorer`.

>>> from graphflow.inspect._example import example_run
>>> run = example_run()
>>> [nid for nid, _ in top_changed(run, k=1)] == [nid for nid, _ in top_changed(run, k=2)][:1]
True
>>> message_vs_gradient(run).update_correlation.shape
(2,)
"""

from graphflow.inspect.labelled import LabelledArray
from graphflow.inspect.queries import (
    GradientComparison,
    MessageAlert,
    group_update_distribution,
    message_alerts,
    message_vs_gradient,
    part_summary,
    top_changed,
)
from graphflow.inspect.run import FIELDS, NodeHistory, PartRecord, Run, channel_names, is_run_file, load_run

__all__ = [
    "FIELDS", "GradientComparison", "LabelledArray", "MessageAlert", "NodeHistory", "PartRecord", "Run",
    "channel_names", "group_update_distribution", "is_run_file", "load_run", "message_alerts", "message_vs_gradient",
    "part_summary", "top_changed",
]

MOVED_TO_RECORDING = ("Inspector", "record_run")
"""Names this package exported before recording became its own package."""


def __getattr__(name: str):
    # Only named here, never imported: inspection must not import graphflow.recording.
    if name in MOVED_TO_RECORDING:
        raise AttributeError(f"graphflow.inspect.{name} moved to graphflow.recording.{name}: "
                             f"recording runs the engine, inspection reads runs")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
