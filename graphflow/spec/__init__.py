"""Plain-data specs (pydantic) of graphs, learners and experiments; JSON in and out.

Never imports numpy: a spec is what a user writes, validates and saves.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from graphflow.errors import SpecError
from graphflow.spec.experiment import ExperimentSpec, MetaTrainingSpec, MnistTaskSpec, SinusoidTaskSpec
from graphflow.spec.graph import (
    ActivationBlock,
    ActivationLayer,
    DenseLayer,
    FreeFormSpec,
    GraphSpec,
    InputBlock,
    LossBlock,
    LossLayer,
    NeuronBlock,
    SoftmaxBlock,
    SoftmaxLayer,
    StackSpec,
    TargetBlock,
    WeightBlock,
)
from graphflow.spec.learner import LearnerSpec

GRAPH_SPEC = TypeAdapter(GraphSpec)


def format_validation_error(err: ValidationError, what: str) -> str:
    """Turn a pydantic error into lines naming the field path at fault."""
    lines = [f"invalid {what}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_graph_spec(data: dict | str) -> StackSpec | FreeFormSpec:
    """Validate a graph spec from a dict or JSON text.

    >>> parse_graph_spec({"kind": "stack", "inputs": 2, "layers": [{"kind": "dense", "units": 1},
    ...                   {"kind": "loss", "fn": "l2"}]}).inputs
    2
    """
    try:
        if isinstance(data, str):
            return GRAPH_SPEC.validate_json(data)
        return GRAPH_SPEC.validate_python(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, "graph spec")) from None


def load_spec(path: str | Path):
    """Load a graph or experiment spec from a JSON file (experiment if it has a ``graph`` field)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except json.JSONDecodeError as err:
        raise SpecError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict) and "graph" in data:
        try:
            return ExperimentSpec.model_validate(data)
        except ValidationError as err:
            raise SpecError(format_validation_error(err, f"experiment spec {path}")) from None
    try:
        return parse_graph_spec(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None


__all__ = [
    "ActivationBlock", "ActivationLayer", "DenseLayer", "ExperimentSpec", "FreeFormSpec", "GraphSpec",
    "InputBlock", "LearnerSpec", "LossBlock", "LossLayer", "MetaTrainingSpec", "MnistTaskSpec",
    "NeuronBlock", "SinusoidTaskSpec", "SoftmaxBlock", "SoftmaxLayer", "StackSpec", "TargetBlock",
    "WeightBlock", "format_validation_error", "load_spec", "parse_graph_spec",
]
