"""Plain-data specs (pydantic) of graphs, learners and experiments; JSON in and out.

Never imports numpy: a spec is what a user writes, validates and saves.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, TypeAdapter, ValidationError

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


def _user_path(loc: tuple, data) -> str:
    """The field path as the user wrote it: ``layers.1.units``, ``blocks.2.kind``.

    pydantic's ``loc`` also names the member of a union it tried (``stack``, ``dense``,
    ``literal[...]``); walking ``loc`` through the data the user gave tells the two apart.
    """
    parts: list[str] = []
    cur = data
    for p in loc:
        if isinstance(cur, BaseModel):
            cur = cur.model_dump()
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and isinstance(p, int) and 0 <= p < len(cur):
            cur = cur[p]
        elif isinstance(cur, dict) and p == cur.get("kind"):
            continue  # the member of a discriminated union, named by the user's own "kind"
        elif isinstance(p, str) and (cur is None or not isinstance(cur, dict) or "[" in p):
            continue  # the member of a plain union (``literal[...]``, ``list[...]``, ``str``)
        else:
            cur = None  # a missing or unexpected field: name it, nothing below it to walk
        parts.append(str(p))
    return ".".join(parts)


def format_validation_error(err: ValidationError, what: str, data=None) -> str:
    """Turn a pydantic error into lines naming the field path at fault, as the user wrote it.

    ``data`` is what was validated (a dict, or JSON text); with it, union members that pydantic
    puts into its error locations are left out of the paths, and the value at fault is shown.

    >>> from pydantic import TypeAdapter
    >>> from graphflow.spec.graph import GraphSpec
    >>> bad = {"kind": "stack", "inputs": 2, "layers": [{"kind": "dense", "units": 0}]}
    >>> try:
    ...     TypeAdapter(GraphSpec).validate_python(bad)
    ... except ValidationError as err:
    ...     print(format_validation_error(err, "graph spec", bad))
    invalid graph spec:
      layers.0.units: Input should be greater than 0 (got 0)
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    lines = [f"invalid {what}:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        path = _user_path(loc, data) if data is not None else ".".join(str(p) for p in loc)
        if e["type"] == "union_tag_invalid":
            path = ".".join(filter(None, [path, e.get("ctx", {}).get("discriminator", "").strip("'")]))
        message = e["msg"]
        value = e.get("input")
        if e["type"] not in ("missing", "union_tag_invalid", "json_invalid") and isinstance(value, (str, int, float, bool)):
            message += f" (got {value!r})"
        line = f"  {path or '<root>'}: {message}"
        if line not in lines:
            lines.append(line)
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
        raise SpecError(format_validation_error(err, "graph spec", data)) from None


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
            raise SpecError(format_validation_error(err, f"experiment spec {path}", data)) from None
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
