"""Memory cases of the benchmark beyond the meta-step's peak: the two places where an easy
implementation materializes far more than it needs.

- ``segment-sum-memory``: the meta-gradient of a sparse block's sum into its neurons (every
  sparse block's forward and message aggregation), E = 80,000 edges into 400 segments. A one-hot
  [E, segments] matrix would take 122 MiB in float32; the recorded stage keeps the values only.
- ``record-memory``: one MNIST 784-100-10 inner step with one weight node recorded, against the
  same step with no recorder: recording picks the selected node before broadcasting, so the
  peak is the same.

>>> case = segment_sum_case(edges=4000, segments=200)
>>> case["name"], case["peak_bytes"] < case["one_hot_bytes"] / 4
('segment-sum-memory', True)
"""

from __future__ import annotations

import numpy as np

from graphflow.bench.timing import peak_bytes


def segment_sum_case(edges: int = 80_000, segments: int = 400, batch: int = 8) -> dict:
    """Peak memory of the gradient of ``sum(segment_sum(v)^2)`` for v [1, batch, edges] under the tape."""
    from graphflow.autodiff import Tape, grad, traced_backend
    from graphflow.backend import get_backend

    be = traced_backend(get_backend("numpy"))
    rng = np.random.default_rng(0)
    values = rng.standard_normal((1, batch, edges)).astype(np.float32)
    ids = be.index(rng.integers(0, segments, edges))

    def run():
        with Tape(be) as tape:
            v = tape.var(values)
            out = be.segment_sum(v, ids, segments)
            total = (out * out).sum()
        grad(tape, total, [v])

    return {"name": "segment-sum-memory", "kind": "memory-check", "seconds": None, "peak_bytes": peak_bytes(run),
            "edges": edges, "segments": segments, "batch": batch,
            "one_hot_bytes": edges * segments * 4,
            "what": f"traced segment sum of [1, {batch}, {edges:,}] into {segments} segments, forward and gradient"}


def record_case(backend: str = "numpy") -> dict:
    """Peak memory of one MNIST 784-100-10 inner step, with one weight node recorded and without."""
    from graphflow.bench.workloads import graph_and_protocol, inner_data
    from graphflow.engine import Engine
    from graphflow.engine.record import Recorder

    graph, protocol = graph_and_protocol("mnist784")
    engine = Engine(graph, protocol, backend)
    rng = np.random.default_rng(0)
    x, y = (engine.be.asarray(a) for a in inner_data(graph, 1, 8, rng))
    state, _ = engine.step(engine.init_network(rng, 1), x, y)
    node = "dense0/w[3,7]"
    plain = peak_bytes(lambda: engine.step(state, x, y))
    recorded = peak_bytes(lambda: engine.step(state, x, y, recorder=Recorder(graph, [node])))
    return {"name": "record-memory", "kind": "memory-check", "seconds": None, "peak_bytes": recorded,
            "peak_bytes_unrecorded": plain, "recorded_node": node,
            "what": "one MNIST 784-100-10 inner step (1 x 8) with one weight node recorded, and without a recorder"}


__all__ = ["record_case", "segment_sum_case"]
