"""Per-node inspection of inner-loop runs: record selected nodes, query them, save and reload runs.

Reads what the engine's recorder hands out (:mod:`graphflow.engine.record`); never reaches into the
engine's kernels. Pictures of runs live in :mod:`graphflow.viz.run_plots` and
:mod:`graphflow.viz.explorer`.

>>> import graphflow as gf, numpy as np
>>> from graphflow.engine import Engine
>>> from graphflow.learners import Protocol
>>> g = gf.build(gf.stack(1, gf.Dense(4), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> eng = Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2)))
>>> xs = np.linspace(-1, 1, 30, dtype=np.float32).reshape(3, 1, 10, 1)
>>> _, run = record_run(eng, eng.init_network(np.random.default_rng(0)), xs, xs ** 2, "dense2/w[*,0]",
...                     gradients=True)
>>> [nid for nid, _ in top_changed(run, k=2)] == [nid for nid, _ in top_changed(run, k=4)][:2]
True
>>> message_vs_gradient(run).update_correlation.shape
(3,)
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
from graphflow.inspect.recording import Inspector, channel_names, record_run
from graphflow.inspect.run import FIELDS, NodeHistory, PartRecord, Run, is_run_file, load_run

__all__ = [
    "FIELDS", "GradientComparison", "Inspector", "LabelledArray", "MessageAlert", "NodeHistory", "PartRecord", "Run",
    "channel_names", "group_update_distribution", "is_run_file", "load_run", "message_alerts", "message_vs_gradient",
    "part_summary", "record_run", "top_changed",
]
