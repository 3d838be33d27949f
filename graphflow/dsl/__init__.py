"""The Python DSL: layer stacks in a few lines, and free-form topologies block by block or neuron by neuron.

Both produce plain specs (:mod:`graphflow.spec`); :func:`graphflow.build` turns them into graphs.
"""

from graphflow.dsl.freeform import FreeForm, Units
from graphflow.dsl.layers import (
    Activation,
    CrossEntropy,
    Dense,
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

__all__ = [
    "Activation", "CrossEntropy", "Dense", "FreeForm", "Identity", "L1Loss", "L2Loss", "Loss", "ReLU",
    "Sigmoid", "Softmax", "Step", "Tanh", "Units", "stack",
]
