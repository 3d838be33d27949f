"""A tiny hand-made run for the doctests of the queries and pictures (values chosen to read easily)."""

from __future__ import annotations

import numpy as np

from graphflow.inspect.run import HISTOGRAM_BINS, QUANTILES, RUN_FORMAT, RUN_KIND, PartRecord, Run, channel_names


def example_run() -> Run:
    """Two steps of ``dense2/w[*,0]`` (two weights) of a 1 -> 2 relu -> 1 network, one task, two examples.

    Updates: step 0 ``[0, 0.25]``, step 1 ``[-0.25, 0.25]``; gradients are ``-2 *`` the updates;
    the outgoing message of ``dense2/w[0,0]`` nearly vanishes at step 1.
    """
    import graphflow as gf

    graph = gf.build(gf.stack(1, gf.Dense(2), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    learner = gf.LearnerSpec(hidden=1, message_size=2)
    update = np.array([[[0.0, 0.25]], [[-0.25, 0.25]]], np.float32)  # [step, task, node]
    message = np.ones((2, 1, 2, 2, 2), np.float32)  # [step, task, example, node, channel]
    message[1, :, :, 0] = [0.1, 0.0]
    message[:, :, :, 1, 0] = [[[1.0, 2.0]], [[1.0, 3.0]]]
    states = np.zeros((2, 1, 2, 2, 2), np.float32)
    fields = {"message_in": np.ones((2, 1, 2, 2, 2), np.float32), "states": states, "message_out": message,
              "update": update, "gradient": -2 * update}
    part = PartRecord("dense2/w", "weight", "dense2/w", np.array([0, 1]), ["dense2/w[0,0]", "dense2/w[1,0]"],
                      np.ones((2, 2), bool), fields, channel_names(graph, "dense2/w", learner))
    deltas = update[:, 0]
    hist = np.stack([np.histogram(d, HISTOGRAM_BINS, (-0.25, 0.25))[0] for d in deltas])
    groups = {"dense2/w": {"quantiles": np.quantile(deltas, QUANTILES, axis=1).T.astype(np.float32),
                           "histogram": hist, "edges": np.tile(np.linspace(-0.25, 0.25, HISTOGRAM_BINS + 1), (2, 1)),
                           "moments": np.stack([deltas.mean(1), deltas.std(1), np.abs(deltas).mean(1)], 1)}}
    loss = np.array([0.5, 0.25], np.float32).reshape(2, 1, 1, 1) * np.ones((2, 1, 2, 1), np.float32)
    header = {"kind": RUN_KIND, "format": RUN_FORMAT, "graph": graph.to_spec().model_dump(mode="json"),
              "learner": learner.model_dump(mode="json"), "patterns": [{"pattern": "dense2/w[*,0]", "from_step": 0}],
              "steps": 2, "tasks": 1, "batch": 2, "gradients": True, "skipped": {}, "meta": {}}
    run = Run(header, {"dense2/w": part}, {"loss3": loss}, {"loss3": np.zeros_like(loss)}, groups)
    run._graph = graph
    return run
