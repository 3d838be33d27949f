"""Producing run files: running an engine's inner loop with a recorder on the selected nodes.

Recording a run is running the engine (and, for the backprop gradients, differentiating it);
reading one is :mod:`graphflow.inspect`'s, which never imports this package. Here an
:class:`Inspector` steps an engine (or stands in for one) and collects a
:class:`graphflow.inspect.Run`; :func:`open_run` is what ``graphflow inspect`` and ``graphflow
explore`` call to read a run file or record one from a checkpoint.

>>> import graphflow as gf, numpy as np
>>> from graphflow.engine import Engine
>>> from graphflow.learners import Protocol
>>> g = gf.build(gf.stack(1, gf.Dense(4), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> eng = Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2)))
>>> xs = np.linspace(-1, 1, 30, dtype=np.float32).reshape(3, 1, 10, 1)
>>> _, run = record_run(eng, eng.init_network(np.random.default_rng(0)), xs, xs ** 2, "dense2/w[*,0]")
>>> run.steps, run.node_ids()
(3, ['dense2/w[0,0]', 'dense2/w[1,0]', 'dense2/w[2,0]', 'dense2/w[3,0]'])
"""

from graphflow.recording.inspector import Inspector, record_run, update_statistics
from graphflow.recording.sources import RunRequest, open_run, record_from_checkpoint, source_kind

__all__ = ["Inspector", "RunRequest", "open_run", "record_from_checkpoint", "record_run", "source_kind",
           "update_statistics"]
