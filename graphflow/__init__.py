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

from graphflow.errors import GraphError, SpecError
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

__all__ = [
    "Activation", "CrossEntropy", "Dense", "ExperimentSpec", "FreeForm", "FreeFormSpec", "Graph",
    "GraphError", "GraphSpec", "Identity", "L1Loss", "L2Loss", "LearnerSpec", "Loss", "ReLU",
    "Sigmoid", "Softmax", "SpecError", "StackSpec", "Step", "Tanh", "build", "keep_freed_memory", "load_spec",
    "stack",
]
