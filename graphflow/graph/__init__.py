"""The explicit node graph: typed scalar nodes in compact blocks, ids, learner groups, views."""

from graphflow.graph.blocks import (
    ActivationNodes,
    InputNodes,
    LossNodes,
    NeuronNodes,
    SoftmaxNodes,
    TargetNodes,
    WeightNodes,
)
from graphflow.graph.build import build
from graphflow.graph.graph import Graph, NodeSelection, Slot, data_by_block
from graphflow.graph.ids import format_id, parse_pattern

__all__ = [
    "ActivationNodes", "Graph", "InputNodes", "LossNodes", "NeuronNodes", "NodeSelection", "Slot",
    "SoftmaxNodes", "TargetNodes", "WeightNodes", "build", "data_by_block", "format_id", "parse_pattern",
]
