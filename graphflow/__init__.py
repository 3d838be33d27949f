"""graphflow: neural networks as explicit graphs of scalar nodes that learn by learned message passing.

The layers of the package, in the direction of their imports:

- :mod:`graphflow.spec` — pydantic models of graphs, learners and experiments (plain data);
- :mod:`graphflow.graph` — the explicit node graph built from a spec, with ids, groups and views;
- :mod:`graphflow.dsl` — Python builders of specs (layer stacks and free-form topologies);
- :mod:`graphflow.schedule` — named passes from a graph to batched stages;
- :mod:`graphflow.engine` — runs a schedule on numpy or CuPy.

>>> import graphflow as gf
>>> g = gf.build(gf.stack(1, gf.Dense(20), gf.ReLU(), gf.Dense(20), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> g.stats()["nodes"]["weight"]
440
"""

from graphflow.errors import GraphError, GraphflowError, SpecError
from graphflow.spec import (
    ExperimentSpec,
    FreeFormSpec,
    GraphSpec,
    LearnerSpec,
    StackSpec,
    load_spec,
)
from graphflow.graph import Graph, build
from graphflow.dsl import (
    Activation,
    CrossEntropy,
    Dense,
    FreeForm,
    Identity,
    L1Loss,
    L2Loss,
    Loss,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
    stack,
)

from graphflow.backend import keep_freed_memory

__version__ = "0.1.0"

_TRAINING_API = ("TrainResult", "TrainedProtocol", "evaluate", "evaluate_sweep", "load_protocol", "train")
"""Names of :mod:`graphflow.api` (meta-training and evaluation), loaded when first used."""


def __getattr__(name: str):
    # ``gf.train`` and friends reach the trainer and the engine, while modules of every layer import
    # the package itself (for ``__version__``, or ``gf.build`` in examples): importing the API up
    # front would make each of them depend on the trainer (the import contracts of pyproject.toml).
    # It loads on first use instead (PEP 562), and ``import graphflow`` stays a spec-and-graph import.
    if name in _TRAINING_API:
        import importlib

        return getattr(importlib.import_module("graphflow.api"), name)
    raise AttributeError(f"module 'graphflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TRAINING_API))

__all__ = [
    "Activation", "CrossEntropy", "Dense", "ExperimentSpec", "FreeForm", "FreeFormSpec", "Graph",
    "GraphError", "GraphflowError", "GraphSpec", "Identity", "L1Loss", "L2Loss", "LearnerSpec", "Loss", "ReLU",
    "Sigmoid", "Softmax", "SpecError", "StackSpec", "Step", "Tanh", "TrainResult", "TrainedProtocol", "build",
    "evaluate", "evaluate_sweep", "keep_freed_memory", "load_protocol", "load_spec", "stack", "train",
]
