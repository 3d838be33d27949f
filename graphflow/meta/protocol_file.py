"""Loading protocols from graphflow checkpoints (training checkpoints or exported protocol files)
and the protocol bundled with the package for the demo.

Every header field and array is checked against the graph and learner the file names, so that a
damaged or hand-edited file is a clear error naming the field or array, never a silent wrong load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from graphflow.errors import GraphflowError, SpecError
from graphflow.graph import build
from graphflow.learners.protocol import Protocol
from graphflow.meta.checkpoint import load_checkpoint, save_checkpoint
from graphflow.spec import ExperimentSpec, LearnerSpec, format_validation_error, parse_experiment_spec, parse_graph_spec

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "sinusoid_demo.npz"
TRAINING_KIND = "graphflow-training-checkpoint"
PROTOCOL_KIND = "graphflow-protocol"
KINDS = (TRAINING_KIND, PROTOCOL_KIND)


def validated(model: type[BaseModel], data, what: str, path: Path):
    """``model.model_validate(data)``, or a GraphflowError naming ``path`` and the field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise GraphflowError(f"{path}: {format_validation_error(err, what, data)}") from None


def header_experiment(meta: dict, path: Path) -> ExperimentSpec:
    """The experiment a checkpoint header names, checked; its graph and learner copies must agree."""
    if "experiment" not in meta:
        raise GraphflowError(f"{path}: the header has no 'experiment'")
    try:  # the spec layer's own parsers (they also refuse data nested too deeply to validate)
        exp = parse_experiment_spec(meta["experiment"])
        graph = parse_graph_spec(meta["graph"]) if "graph" in meta else exp.graph
    except SpecError as err:
        raise GraphflowError(f"{path}: the checkpoint header's {err}") from None
    if graph != exp.graph:
        raise GraphflowError(f"{path}: the header's 'graph' differs from its experiment's graph")
    if "learner" in meta and validated(LearnerSpec, meta["learner"], "learner in the checkpoint header", path) != exp.learner:
        raise GraphflowError(f"{path}: the header's 'learner' differs from its experiment's learner")
    return exp


def split_arrays(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under ``<prefix>/``, by the rest of their names."""
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def check_initial_network(engine, init: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """A MAML initial network's arrays, checked against the graph's parameter shapes."""
    expected = engine.parameter_shapes()
    for key in sorted(set(expected) | set(init)):
        if key not in init:
            raise GraphflowError(f"{path}: the initial network has no array init/{key}")
        if key not in expected:
            raise GraphflowError(f"{path}: init/{key} is not a parameter of the graph")
        if tuple(init[key].shape) != expected[key]:
            raise GraphflowError(f"{path}: init/{key} has shape {list(init[key].shape)}; the graph needs "
                                 f"{list(expected[key])}")
        if not np.all(np.isfinite(init[key])):
            raise GraphflowError(f"{path}: init/{key} holds NaN or infinite values")
    return {k: np.asarray(v, np.float32) for k, v in init.items()}


def bundled_protocols() -> dict[str, Path]:
    """The protocols shipped with graphflow (``graphflow/data/*.npz``), by name: ``sinusoid_demo``
    (the demo's) first, then the protocols of ``docs/reproduction.md`` (``sinusoid``, ...)."""
    others = sorted(p for p in BUNDLED.parent.glob("*.npz") if p != BUNDLED)
    return {BUNDLED.stem: BUNDLED, **{p.stem: p for p in others}}


def protocol_path(source: str | Path | None) -> Path:
    """The file a protocol source names: a file, a run folder's checkpoint, or a bundled protocol's file."""
    bundled = bundled_protocols()
    if source is None:
        return bundled["sinusoid_demo"]
    if not isinstance(source, (str, Path)):
        raise GraphflowError(f"protocol: expected a file, a run folder, a bundled protocol's name "
                             f"({', '.join(bundled)}) or what load_protocol or train returned, not {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        return path / "checkpoint.npz"
    if not path.exists() and str(source) in bundled:
        return bundled[str(source)]
    if not path.exists() and not path.suffix:
        raise GraphflowError(f"{source}: no such checkpoint, run folder or bundled protocol (bundled: "
                             f"{', '.join(bundled)})")
    return path


def load_protocol(path: str | Path | None = None):
    """(graph, protocol, initial network or None, meta) from a graphflow checkpoint (default: bundled demo).

    ``path`` may also be a training run folder (its ``checkpoint.npz``).
    """
    from graphflow.engine import Engine

    path = Path(path) if path else BUNDLED
    if path.is_dir():
        path = path / "checkpoint.npz"
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") not in KINDS:
        raise GraphflowError(f"{path}: not a graphflow protocol or training checkpoint")
    exp = header_experiment(meta, path)
    graph = build(exp.graph)
    protocol = Protocol.checked(graph, exp.learner, split_arrays(arrays, "protocol"), str(path), {"source": str(path)})
    init = split_arrays(arrays, "init") or None
    if init is not None:
        init = check_initial_network(Engine(graph, protocol, exp.backend), init, path)
    return graph, protocol, init, meta


def export_protocol(source: str | Path, out: str | Path, summary: dict | None = None) -> Path:
    """Write a protocol file from a training checkpoint (or a training run folder): ``kind``
    graphflow-protocol, the ``protocol/`` and ``init/`` arrays, no optimizer or generator state.

    The checkpoint is read and checked as :func:`load_protocol` reads it, so only a protocol that
    loads is exported. The header holds the experiment, graph and learner, ``trained_steps``, the
    experiment's ``name`` and, when given, ``summary`` (:func:`graphflow.meta.summary.summarize_log`
    of the run's log). ``out`` is replaced atomically.

    >>> import tempfile
    >>> export_protocol(BUNDLED, Path(tempfile.mkdtemp()) / "again.npz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    graphflow.errors.GraphflowError: ...sinusoid_demo.npz: a protocol file already, not a training checkpoint ...
    """
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.npz"
    _, protocol, init, meta = load_protocol(path)
    if meta.get("kind") != TRAINING_KIND:
        raise GraphflowError(f"{path}: a protocol file already, not a training checkpoint (nothing to export)")
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise GraphflowError(f"{path}: the header's 'step' is {step!r}, not a meta-step count")
    exp = ExperimentSpec.model_validate(meta["experiment"])
    arrays = {f"protocol/{k}": v for k, v in protocol.flat().items()}
    arrays.update({f"init/{k}": v for k, v in (init or {}).items()})
    header = {"kind": PROTOCOL_KIND, "experiment": exp.model_dump(mode="json"),
              "graph": exp.graph.model_dump(mode="json"), "learner": exp.learner.model_dump(mode="json"),
              "trained_steps": step, "name": exp.name}
    if summary is not None:
        header["summary"] = summary
    save_checkpoint(out, arrays, header)
    return Path(out)


def export_safetensors(source: str | Path, out: str | Path, summary: dict | None = None) -> Path:
    """Write the protocol of a training checkpoint, a run folder or a protocol file as a
    safetensors file that PyTorch, JAX and numpy users load without graphflow.

    The tensors are the protocol's float32 arrays under their :meth:`Protocol.flat` names
    (``learner::<group>::<name>``, ``norm::<group>::<name>``) and, for a MAML run, the initial
    network's under ``init::<parameter>``. The metadata entry ``graphflow`` is a JSON object: ``kind``
    (graphflow-protocol), ``graphflow_version``, ``name``, ``trained_steps``, the ``graph``, ``learner``
    and ``experiment`` specs and, when given, ``summary``. ``out`` is replaced atomically.
    Needs the ``safetensors`` extra.

    >>> import tempfile
    >>> from safetensors import safe_open
    >>> path = export_safetensors(BUNDLED, Path(tempfile.mkdtemp()) / "demo.safetensors")
    >>> with safe_open(path, "numpy") as f:
    ...     header = json.loads(f.metadata()["graphflow"])
    ...     first = sorted(f.keys())[0]
    >>> header["kind"], header["name"], first
    ('graphflow-protocol', 'sinusoid-5x10', 'learner::dense0/b::gru.W_reset_c')
    """
    try:
        from safetensors.numpy import save
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "safetensors":
            raise
        raise GraphflowError("--format safetensors needs safetensors: pip install 'graphflow[safetensors]'") from None
    from graphflow import __version__
    from graphflow.io import atomic_write
    from graphflow.learners.protocol import ParamKey

    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.npz"
    _, protocol, init, meta = load_protocol(path)
    exp = header_experiment(meta, path)
    tensors = {k: np.array(v, np.float32, order="C") for k, v in protocol.flat().items()}
    tensors.update({str(ParamKey.init(k)): np.array(v, np.float32, order="C") for k, v in (init or {}).items()})
    header = {"kind": PROTOCOL_KIND, "graphflow_version": __version__, "name": exp.name,
              "trained_steps": meta.get("step", meta.get("trained_steps")),
              "graph": exp.graph.model_dump(mode="json"), "learner": exp.learner.model_dump(mode="json"),
              "experiment": exp.model_dump(mode="json")}
    if summary is not None:
        header["summary"] = summary
    data = save(tensors, metadata={"graphflow": json.dumps(header)})
    atomic_write(out, lambda f: f.write(data))
    return Path(out)


def initial_network_arrays(init: dict | None) -> dict[str, np.ndarray] | None:
    return None if init is None else {k: np.asarray(v, np.float32) for k, v in init.items()}
