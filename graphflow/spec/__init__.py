"""Plain-data specs (pydantic) of graphs, learners and experiments; JSON in and out.

Never imports numpy: a spec is what a user writes, validates and saves.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from pydantic import BaseModel, TypeAdapter, ValidationError

from graphflow.errors import SpecError
from graphflow.io.reading import read_failure
from graphflow.spec.experiment import (
    BpttEstimatorSpec,
    ConstantLength,
    EsEstimatorSpec,
    EstimatorSpec,
    ExperimentSpec,
    LogUniformLength,
    MetaTrainingSpec,
    MnistTaskSpec,
    NresEstimatorSpec,
    PesEstimatorSpec,
    SinusoidTaskSpec,
    TruncatedEstimatorSpec,
)
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


def _short_repr(value, limit: int = 60) -> str:
    """``repr`` of a value at fault, shortened: an integer of 10^5000 has no repr (Python refuses
    to write integers of more than 4300 digits) and a long string would drown the message.

    >>> _short_repr(10**100)
    'an integer of 101 digits'
    >>> _short_repr("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' (100 characters)"
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        if value.bit_length() <= HUGE_INT_BITS:
            return f"an integer of {len(str(abs(value)))} digits"
        return f"an integer of about {int(math.log10(abs(value))) + 1} digits"
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit - 3]}...' ({len(value)} characters)" if isinstance(value, str) else text[:limit] + "..."
    return text


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
        except (ValueError, RecursionError):  # not JSON, nested too deeply, or integers too long
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
            message += f" (got {_short_repr(value)})"
        line = f"  {path or '<root>'}: {message}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


TOO_DEEP = "nested too deeply (a spec is a few levels of objects and lists)"
MAX_DEPTH = 64
"""Nesting a spec may have (the deepest real one, a free-form mask, has 5 levels)."""


HUGE_INT_BITS = 14_000
"""Integers longer than this (about 4200 digits) are refused before validation: Python will not
write them in messages (``sys.get_int_max_str_digits``), and no field takes one."""


def _unusable(data, limit: int = MAX_DEPTH) -> str | None:
    """Where ``data`` nests deeper than ``limit`` lists and dicts or holds an integer of thousands
    of digits, said as ``<field path>: <what>``; None when it has neither.

    Checked before pydantic sees Python data: it would walk such data recursively, or fail to
    show the value, and print "Exception ignored" warnings.

    >>> _unusable({"layers": [[[[1]]]]}, limit=3)
    'layers.0.0: nested too deeply (a spec is a few levels of objects and lists)'
    >>> _unusable({"inputs": 10**5000})
    'inputs: an integer of about 5001 digits, far too large for any field'
    """
    todo = [(data, ())]
    while todo:
        value, path = todo.pop()
        if isinstance(value, dict):
            children = value.items()
        elif isinstance(value, (list, tuple)):
            children = enumerate(value)
        elif isinstance(value, int) and value.bit_length() > HUGE_INT_BITS:
            digits = int(math.log10(abs(value))) + 1
            return f"{_path_text(path)}: an integer of about {digits} digits, far too large for any field"
        else:
            continue
        if len(path) >= limit:
            return f"{_path_text(path[:3])}: {TOO_DEEP}"
        for k, v in children:
            if isinstance(v, (dict, list, tuple)) or (isinstance(v, int) and v.bit_length() > HUGE_INT_BITS):
                todo.append((v, path + (k,)))
            elif isinstance(k, int) and not isinstance(k, bool) and k.bit_length() > HUGE_INT_BITS:
                todo.append((k, path))
    return None


def _path_text(path: tuple) -> str:
    return ".".join(p if isinstance(p, str) else _short_repr(p) for p in path) or "<root>"


def parse_graph_spec(data: dict | str) -> StackSpec | FreeFormSpec:
    """Validate a graph spec from a dict or JSON text.

    >>> parse_graph_spec({"kind": "stack", "inputs": 2, "layers": [{"kind": "dense", "units": 1},
    ...                   {"kind": "loss", "fn": "l2"}]}).inputs
    2
    """
    return _validated(data, "graph spec", GRAPH_SPEC.validate_json, GRAPH_SPEC.validate_python)


def parse_experiment_spec(data: dict | str) -> ExperimentSpec:
    """Validate an experiment spec from a dict or JSON text; a :class:`SpecError` names the fields at fault.

    >>> parse_experiment_spec({"graph": {"kind": "stack", "inputs": 1, "layers": [{"kind": "loss", "fn": "l2"}]},
    ...                        "seed": -1})
    Traceback (most recent call last):
    ...
    graphflow.errors.SpecError: invalid experiment spec:
      seed: Input should be greater than or equal to 0 (got -1)
    """
    return _validated(data, "experiment spec", ExperimentSpec.model_validate_json, ExperimentSpec.model_validate)


def _validated(data, what: str, from_json, from_python):
    """``data`` (JSON text or Python data) validated by ``from_json`` or ``from_python``; every
    failure one :class:`SpecError` naming ``what`` and the fields at fault."""
    if not isinstance(data, str) and (problem := _unusable(data)):
        raise SpecError(f"invalid {what}:\n  {problem}")
    try:
        return from_json(data) if isinstance(data, str) else from_python(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, what, data)) from None
    except RecursionError:
        raise SpecError(f"invalid {what}: {TOO_DEEP}") from None


def read_json_file(path: str | Path, what: str = "spec file"):
    """The JSON data of a file, or a :class:`SpecError` that names the file and says what is wrong
    with it (missing, a folder, unreadable, not UTF-8, not JSON, nested too deeply, a number too long)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError(read_failure(path, what, err)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                        f"a {what} is JSON written in UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise SpecError(f"{path}: not a usable JSON {what}: {TOO_DEEP}") from None
    except ValueError:  # an integer longer than Python converts from text
        raise SpecError(f"{path}: not a usable JSON {what}: it holds an integer of more than "
                        f"{sys.get_int_max_str_digits()} digits") from None


def load_spec(path: str | Path):
    """Load a graph or experiment spec from a JSON file (experiment if it has a ``graph`` field).

    Every problem with the file or its content is a :class:`SpecError` naming the file.
    """
    path = Path(path)
    data = read_json_file(path)
    if isinstance(data, dict) and "graph" in data:
        try:
            return parse_experiment_spec(data)
        except SpecError as err:
            raise SpecError(str(err).replace("invalid experiment spec", f"invalid experiment spec {path}", 1)) from None
    try:
        return parse_graph_spec(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None


__all__ = [
    "ActivationBlock", "ActivationLayer", "BpttEstimatorSpec", "ConstantLength", "DenseLayer", "EsEstimatorSpec",
    "EstimatorSpec", "ExperimentSpec", "FreeFormSpec", "GraphSpec", "InputBlock", "LearnerSpec", "LogUniformLength",
    "LossBlock", "LossLayer", "MetaTrainingSpec", "MnistTaskSpec", "NeuronBlock", "NresEstimatorSpec", "PesEstimatorSpec",
    "SinusoidTaskSpec", "SoftmaxBlock", "SoftmaxLayer", "StackSpec", "TargetBlock", "TruncatedEstimatorSpec",
    "WeightBlock", "format_validation_error", "load_spec", "parse_experiment_spec", "parse_graph_spec",
    "read_json_file",
]
