"""Loading protocols from graphflow checkpoints (training checkpoints or exported protocol files)
and the protocol bundled with the package for the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.graph import build
from graphflow.learners.protocol import Protocol
from graphflow.meta.checkpoint import load_checkpoint, save_checkpoint
from graphflow.spec import ExperimentSpec, LearnerSpec, parse_graph_spec

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "sinusoid_demo.npz"


def load_protocol(path: str | Path | None = None):
    """(graph, protocol, initial network or None, meta) from a graphflow checkpoint (default: bundled demo)."""
    path = Path(path) if path else BUNDLED
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") not in ("graphflow-training-checkpoint", "graphflow-protocol"):
        raise GraphflowError(f"{path}: not a graphflow protocol or training checkpoint")
    graph = build(parse_graph_spec(meta["graph"]))
    learner = LearnerSpec.model_validate(meta["learner"])
    protocol = Protocol.from_flat(learner, {k[9:]: v for k, v in arrays.items() if k.startswith("protocol/")},
                                  {"source": str(path)})
    init = {k[5:]: v for k, v in arrays.items() if k.startswith("init/")} or None
    return graph, protocol, init, meta


def export_protocol(trainer_checkpoint: str | Path, out: str | Path, summary: dict | None = None) -> Path:
    """Write a protocol file (no optimizer state) from a training checkpoint."""
    arrays, meta = load_checkpoint(trainer_checkpoint)
    keep = {k: v for k, v in arrays.items() if k.startswith(("protocol/", "init/"))}
    exp = ExperimentSpec.model_validate(meta["experiment"])
    header = {"kind": "graphflow-protocol", "experiment": meta["experiment"], "graph": meta["graph"],
              "learner": meta["learner"], "trained_steps": meta["step"], "summary": summary or {},
              "name": exp.name}
    save_checkpoint(out, keep, header)
    return Path(out)


def initial_network_arrays(init: dict | None) -> dict[str, np.ndarray] | None:
    return None if init is None else {k: np.asarray(v, np.float32) for k, v in init.items()}
