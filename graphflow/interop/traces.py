"""Trace files in the reference format (``sinusoid_5x10_trace.npz``): read cases, run, write.

A case ``case<k>/`` holds ``x``, ``y`` [steps, batch, n] and the initial network ``init_W<n>``,
``init_b<n>`` (n counts the dense layers from 1). Replaying writes, per step i,
``step<i>_pred``, ``step<i>_loss`` (before update i) and ``step<i>_W<n>``/``step<i>_b<n>`` (after).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError


def dense_layer_keys(graph) -> list[tuple[str, str]]:
    """(weights key, bias key) of each dense layer in order: ``[("dense0/w", "dense0/b"), ...]``."""
    return [(f"{w.name}/w", f"{w.dst}/b") for w in graph.weights.values()]


def read_cases(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{"case0": {"x": ..., "init_W1": ...}, ...}`` from a trace file."""
    path = Path(path)
    try:
        data = np.load(path)
    except FileNotFoundError:
        raise GraphflowError(f"{path}: no such trace file") from None
    cases: dict[str, dict[str, np.ndarray]] = {}
    for key in data.files:
        m = re.fullmatch(r"(case\d+)/(.+)", key)
        if m:
            cases.setdefault(m.group(1), {})[m.group(2)] = data[key]
    if not cases:
        raise GraphflowError(f"{path}: no case<k>/ entries (expected keys like case0/x, case0/init_W1)")
    for name, case in cases.items():
        for field in ("x", "y"):
            if field not in case:
                raise GraphflowError(f"{path}: {name}/{field} is missing")
    return dict(sorted(cases.items(), key=lambda kv: int(kv[0][4:])))


def initial_params(graph, case: dict, prior: dict | None, where: str) -> dict[str, np.ndarray]:
    """The case's initial network; the prior (or zero biases) fills what the case leaves out."""
    params = {}
    for n, (wkey, bkey) in enumerate(dense_layer_keys(graph), start=1):
        for key, field in ((wkey, f"init_W{n}"), (bkey, f"init_b{n}")):
            if field in case:
                params[key] = case[field]
            elif prior is not None:
                params[key] = prior[key]
            elif field.startswith("init_b"):
                params[key] = np.zeros(graph.units[bkey.split("/")[0]].size, np.float32)
            else:
                raise GraphflowError(f"{where}: {field} is missing and no prior was given")
    return params


def replay_case(engine, case: dict, params: dict, recorder=None) -> dict[str, np.ndarray]:
    """Run the inner loop of one case; the outputs in the trace format."""
    be = engine.be
    state = engine.network_from_arrays(params)
    out = {}
    keys = dense_layer_keys(engine.graph)
    for i in range(len(case["x"])):
        state, res = engine.step(state, case["x"][i], case["y"][i], recorder)
        out[f"step{i}_pred"] = be.to_numpy(res.pred[0])
        out[f"step{i}_loss"] = be.to_numpy(res.loss[0])
        for n, (wkey, bkey) in enumerate(keys, start=1):
            out[f"step{i}_W{n}"] = be.to_numpy(state.params[wkey][0])
            out[f"step{i}_b{n}"] = be.to_numpy(state.params[bkey][0])
    return out
