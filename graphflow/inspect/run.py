"""A recorded inner-loop run: what the selected nodes received, stored, computed and sent at every step.

A :class:`Run` is plain data, written by :class:`graphflow.recording.Inspector` (which runs the
engine) and read back by the CLI, the pictures and the explorer (which never run it). It holds, for
the selected nodes only, one array per block part and field (``[step, task, example, node,
channel]``), the losses and predictions of every step, optionally the backprop gradients of the
selected weights and biases, and summaries of how each learner group's updates were distributed.
It never holds the network or a copy of it.

On disk a run is one ``.npz`` file: the arrays plus a JSON header (key ``__run__``) naming the
graph spec, the learner spec, the patterns and the layout of every array (see
``docs/inspection.md``).

>>> import graphflow as gf, numpy as np
>>> from graphflow.engine import Engine
>>> from graphflow.learners import Protocol
>>> from graphflow.recording import Inspector
>>> g = gf.build(gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> insp = Inspector(Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2))), ["dense2/w[*,0]"])
>>> state = insp.init_network(np.random.default_rng(0))
>>> x = np.ones((1, 4, 2), np.float32)
>>> for _ in range(3):
...     state, _ = insp.step(state, x, x[..., :1])
>>> run = insp.to_run()
>>> run.node("dense2/w[1,0]")["message_in"].dims, run.node("dense2/w[1,0]")["update"].shape
(('step', 'task', 'example', 'channel'), (3, 1))
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.inspect.labelled import LabelledArray
from graphflow.io import DAMAGED_FILE_ERRORS, atomic_write, read_failure
from graphflow.io.jsonl import finite_or_none
from graphflow.learners.protocol import slot_layout

RUN_KIND = "graphflow-inspection-run"
RUN_FORMAT = 1
HEADER_KEY = "__run__"

# Axis names of every recorded field; "node" is the axis over the nodes of one block part.
FIELD_DIMS: dict[str, tuple[str, ...]] = {
    "message_in": ("step", "task", "example", "node", "channel"),
    "states": ("step", "task", "example", "node", "channel"),
    "learner_input": ("step", "task", "example", "node", "channel"),
    "carry": ("step", "task", "example", "node", "channel"),
    "message_out": ("step", "task", "example", "node", "channel"),
    "update_raw": ("step", "task", "example", "node"),
    "update": ("step", "task", "node"),
    "gradient": ("step", "task", "node"),
}
FIELDS = tuple(FIELD_DIMS)
QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
"""Quantiles of a learner group's updates kept per step."""
HISTOGRAM_BINS = 31
"""Bins of the histogram of a learner group's updates kept per step (symmetric about 0)."""


def channel_names(graph, part: str, spec) -> dict[str, list[str]]:
    """Names of the channels of every field of a part: messages ``m0``.., states by name, carry
    ``update``, ``h0``.., ``m0``.. (the loss nodes' incoming message is their loss value).

    >>> import graphflow as gf
    >>> g = gf.build(gf.stack(2, gf.Dense(1), gf.L2Loss()))
    >>> names = channel_names(g, "dense0/w", gf.LearnerSpec(hidden=2, message_size=2))
    >>> names["learner_input"], names["carry"]
    (['m0', 'm1', 'w', 'x'], ['update', 'h0', 'h1', 'm0', 'm1'])
    """
    k = spec.message_size
    message = [f"m{c}" for c in range(k)]
    slot = graph.slots.get(part)
    if slot is None:
        return {"message_in": message}
    layout = slot_layout(slot, spec)
    incoming = ["loss"] if layout.stream_widths[0] == 1 and slot.role == "loss" else message
    out = {"message_in": incoming, "states": list(slot.states), "learner_input": incoming + list(slot.states),
           "message_out": message}
    if spec.kind == "stateful":
        out["carry"] = (["update"] if layout.has_parameter else []) + [f"h{c}" for c in range(spec.hidden)] + message
    return out


@dataclass
class PartRecord:
    """The recorded nodes of one block part (``dense4/w``) and their fields over all steps."""

    part: str
    role: str
    """weight, bias, activation, softmax, loss, or input (receives messages only)."""
    group: str | None
    nodes: np.ndarray
    """Flat node positions inside the part, sorted."""
    ids: list[str]
    recorded: np.ndarray
    """bool [step, node]: whether the node was selected at that step (patterns may be added mid-run)."""
    fields: dict[str, np.ndarray]
    """Field -> array laid out as ``FIELD_DIMS[field]``; NaN where a node was not recorded."""
    channels: dict[str, list[str]] = field(default_factory=dict)
    """Field -> the names of its channels (``m0``..; states by name; carry ``update``, ``h0``.., ``m0``..)."""

    def labelled(self, name: str, steps: tuple[int, ...]) -> LabelledArray:
        if name not in self.fields:
            raise KeyError(f"{self.part}: no field {name!r}; recorded: {', '.join(self.fields)}")
        coords: dict[str, tuple] = {"step": steps, "node": tuple(self.ids)}
        if name in self.channels:
            coords["channel"] = tuple(self.channels[name])
        return LabelledArray(self.fields[name], FIELD_DIMS[name], coords)


@dataclass(frozen=True)
class NodeHistory:
    """Everything recorded about one node, per inner step, as labelled arrays.

    Fields: ``message_in`` (what it received), ``states`` (what its forward arrow stored),
    ``learner_input`` (standardized message and states), ``carry`` (stateful learners),
    ``message_out`` (what it sent), ``update_raw`` (per-example f output), ``update`` (the change
    applied to a weight or bias), ``gradient`` (backprop gradient of the same loss, if recorded).
    """

    id: str
    part: str
    role: str
    group: str | None
    fields: dict[str, LabelledArray]
    recorded: np.ndarray
    """bool [step]: the steps at which this node was selected."""

    def __getitem__(self, name: str) -> LabelledArray:
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(f"{self.id}: no field {name!r}; recorded: {', '.join(self.fields)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    @property
    def value(self) -> LabelledArray:
        """The weight or bias before each step, [step, task] (its first stored state)."""
        if self.role not in ("weight", "bias"):
            raise KeyError(f"{self.id}: a {self.role} node holds no parameter")
        return self["states"].isel(example=0, channel=0)

    def message_norm(self, name: str = "message_out") -> LabelledArray:
        """Per-example Euclidean norm of a message, averaged over examples: [step, task]."""
        return self[name].norm("channel").mean("example")

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays [step, task, (example,) width] (the Recorder's layout)."""
        return {name: a.values for name, a in self.fields.items()}


@dataclass
class Run:
    """A recorded inner-loop run (see the module docstring)."""

    header: dict
    parts: dict[str, PartRecord]
    losses: dict[str, np.ndarray]
    """Loss block -> per-element loss [step, task, example, unit] before each step's update."""
    outputs: dict[str, np.ndarray]
    """Loss block -> the prediction it compared with the target, [step, task, example, unit]."""
    groups: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Learner group -> ``quantiles`` [step, q], ``histogram`` [step, bins], ``edges`` [step, bins + 1],
    ``moments`` [step, 3] (mean, std, mean of |update|) of all its nodes' finite updates, and
    ``non_finite`` [step]: how many updates were NaN or infinite (left out of the others)."""
    data: dict[str, np.ndarray] = field(default_factory=dict)
    """``inputs/<block>``, ``targets/<block>``: the inner-loop data [step, task, example, unit]."""
    _graph: object = None

    # ------------------------------------------------------------------ structure
    @property
    def steps(self) -> int:
        return int(self.header["steps"])

    @property
    def step_labels(self) -> tuple[int, ...]:
        return tuple(range(self.steps))

    @property
    def patterns(self) -> list[str]:
        return [p["pattern"] for p in self.header["patterns"]]

    @property
    def has_gradients(self) -> bool:
        return bool(self.header.get("gradients"))

    @property
    def graph(self):
        """The graph the run was recorded on, rebuilt from its spec."""
        if self._graph is None:
            from graphflow.graph import build
            from graphflow.spec import parse_graph_spec

            self._graph = build(parse_graph_spec(self.header["graph"]))
        return self._graph

    def node_ids(self) -> list[str]:
        """Every recorded node, in graph order."""
        return [nid for rec in self.parts.values() for nid in rec.ids]

    def select(self, pattern: str) -> list[str]:
        """Recorded nodes whose ids match ``pattern`` (ids or globs, as :meth:`Graph.select`)."""
        from graphflow.graph.ids import split_patterns

        out: dict[str, None] = {}  # ordered, without repeats
        for pat in split_patterns(pattern):
            for part, idx in self.graph.select(pat).parts.items():
                rec = self.parts.get(part)
                if rec is not None:
                    out.update((nid, None) for nid, k in zip(rec.ids, np.isin(rec.nodes, idx)) if k)
        if not out:
            raise GraphflowError(f"{pattern!r} matches no recorded node; recorded patterns: {', '.join(self.patterns)}")
        return list(out)

    def _locate(self, node_id: str) -> tuple[PartRecord, int]:
        sel = self.graph.select(node_id)
        if len(sel) != 1:
            raise GraphflowError(f"{node_id!r} names {len(sel)} nodes; give one node id (or use select())")
        (part, idx), = sel.parts.items()
        rec = self.parts.get(part)
        pos = -1 if rec is None else int(np.searchsorted(rec.nodes, idx[0]))
        if rec is None or pos >= len(rec.nodes) or rec.nodes[pos] != idx[0]:
            raise GraphflowError(f"{node_id} was not recorded; recorded patterns: {', '.join(self.patterns)}")
        return rec, pos

    def node(self, node_id: str) -> NodeHistory:
        """The history of one recorded node."""
        rec, pos = self._locate(node_id)
        fields = {name: rec.labelled(name, self.step_labels).isel(node=pos) for name in rec.fields}
        return NodeHistory(rec.ids[pos], rec.part, rec.role, rec.group, fields, rec.recorded[:, pos])

    def field(self, part: str, name: str) -> LabelledArray:
        """One field of all recorded nodes of a block part, with a ``node`` axis labelled by id."""
        if part not in self.parts:
            raise GraphflowError(f"no recorded nodes in {part!r}; recorded parts: {', '.join(self.parts)}")
        return self.parts[part].labelled(name, self.step_labels)

    def nodes_field(self, node_ids: list[str], name: str) -> LabelledArray:
        """One field of the given nodes (any parts), stacked along ``node``: [step, task, ..., node, ...]."""
        arrays = []
        for nid in node_ids:
            rec, pos = self._locate(nid)
            arrays.append(rec.labelled(name, self.step_labels).isel(node=pos))
        first = arrays[0]
        ax = FIELD_DIMS[name].index("node")
        values = np.stack([a.values for a in arrays], axis=ax)
        coords = dict(first.coords, node=tuple(node_ids))
        return LabelledArray(values, FIELD_DIMS[name], coords)

    # ------------------------------------------------------------------ losses
    @property
    def loss(self) -> LabelledArray:
        """Per-element loss before each step's update (the first loss block), [step, task, example, unit]."""
        block = next(iter(self.losses))
        return LabelledArray(self.losses[block], ("step", "task", "example", "unit"), {"step": self.step_labels})

    @property
    def prediction(self) -> LabelledArray:
        block = next(iter(self.outputs))
        return LabelledArray(self.outputs[block], ("step", "task", "example", "unit"), {"step": self.step_labels})

    def task_loss(self) -> np.ndarray:
        """Each task's loss before each step's update, [step, task]: per loss block the mean over
        examples and units, summed over the blocks (what the inner loop and the baselines minimize)."""
        return np.sum([v.mean(axis=(2, 3)) for v in self.losses.values()], axis=0)

    def mean_loss(self) -> np.ndarray:
        """Mean loss per step over tasks (:meth:`task_loss` averaged over tasks)."""
        return self.task_loss().mean(axis=1)

    # ------------------------------------------------------------------ size and export
    def nbytes(self) -> int:
        """Bytes held by the run's arrays (including the arrays they are views of)."""
        arrays = [a for rec in self.parts.values() for a in (*rec.fields.values(), rec.recorded, rec.nodes)]
        arrays += list(self.losses.values()) + list(self.outputs.values()) + list(self.data.values())
        arrays += [a for g in self.groups.values() for a in g.values()]
        return sum(held_bytes(a) for a in arrays)

    def histories_json(self, steps: list[int] | None = None) -> dict:
        """``{node id: {field: nested lists [step, task, (example,) width]}}`` (NaN written as null)."""
        out = {}
        for nid in self.node_ids():
            hist = self.node(nid)
            out[nid] = {name: finite_or_none(a.values if steps is None else a.values[steps]) for name, a in hist.fields.items()}
        return out

    def save(self, path: str | Path) -> Path:
        """Write the run to one ``.npz`` file (arrays + JSON header), atomically (:func:`graphflow.io.atomic_write`)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        parts_header = {}
        for part, rec in self.parts.items():
            for name, a in rec.fields.items():
                arrays[f"part/{part}/{name}"] = a
            arrays[f"part/{part}/recorded"] = rec.recorded
            parts_header[part] = {"role": rec.role, "group": rec.group, "nodes": rec.nodes.tolist(), "ids": rec.ids,
                                  "fields": {name: {"dims": list(FIELD_DIMS[name]), "channels": rec.channels.get(name)}
                                             for name in rec.fields}}
        for block, a in self.losses.items():
            arrays[f"loss/{block}"] = a
        for block, a in self.outputs.items():
            arrays[f"output/{block}"] = a
        for group, stats in self.groups.items():
            for name, a in stats.items():
                arrays[f"group/{group}/{name}"] = a
        for key, a in self.data.items():
            arrays[f"data/{key}"] = a
        header = dict(self.header, parts=parts_header, losses=list(self.losses), groups=list(self.groups),
                      data=list(self.data))
        payload = {**arrays, HEADER_KEY: np.array(json.dumps(header))}
        atomic_write(path, lambda f: np.savez_compressed(f, **payload))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        """Read a run written by :meth:`save`; a damaged or foreign file is one :class:`GraphflowError`
        naming the file and what is wrong with it (see :func:`read_run_file`)."""
        path = Path(path)
        header, arrays = read_run_file(path)
        _check_header(path, header)
        graph = _run_graph(path, header)
        parts = {}
        for part, ph in header.pop("parts").items():
            parts[part] = _part_record(path, header, graph, part, ph, arrays)
        losses = {b: _array(path, f"loss/{b}", arrays.get(f"loss/{b}")) for b in header.pop("losses")}
        outputs = {k[len("output/"):]: a for k, a in arrays.items() if k.startswith("output/")}
        groups: dict[str, dict[str, np.ndarray]] = {}
        for group in header.pop("groups"):
            prefix = f"group/{group}/"
            groups[group] = {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}
        data = {k: _array(path, f"data/{k}", arrays.get(f"data/{k}")) for k in header.pop("data", [])}
        _check_per_example(path, header, {**{f"loss/{b}": a for b, a in losses.items()},
                                          **{f"output/{b}": a for b, a in outputs.items()},
                                          **{f"data/{k}": a for k, a in data.items()}})
        for group, stats in groups.items():
            _check_group(path, header, group, stats)
        run = cls(header, parts, losses, outputs, groups, data)
        run._graph = graph
        return run

    def __repr__(self) -> str:
        return (f"Run({self.steps} steps, {len(self.node_ids())} nodes in {len(self.parts)} parts, "
                f"patterns {self.patterns}{', with gradients' if self.has_gradients else ''})")

    def _repr_html_(self) -> str:
        """What a notebook shows for a run: its title, what was recorded part by part, and the loss
        before each step (``run.explorer()`` shows the explorer inline)."""
        from html import escape

        title = self.header.get("meta", {}).get("title")
        rows = "".join(f"<tr><td><code>{escape(rec.part)}</code></td><td>{escape(rec.role)}</td>"
                       f"<td>{escape(rec.group or '-')}</td><td>{len(rec.ids)}</td><td>{escape(', '.join(rec.fields))}</td></tr>"
                       for rec in self.parts.values())
        losses = "".join(f"<td>{loss:.4g}</td>" for loss in self.mean_loss())
        steps = "".join(f"<th>{s}</th>" for s in self.step_labels)
        return (f"<div><p><b>{escape(repr(self))}</b>" + (f"<br>{escape(str(title))}" if title else "") + "</p>"
                "<table><tr><th>part</th><th>role</th><th>learner group</th><th>nodes</th><th>fields</th></tr>"
                f"{rows}</table><table><tr><th>step</th>{steps}</tr><tr><th>mean loss</th>{losses}</tr></table></div>")

    def explorer(self, height: int = 720, collapsed: bool | None = None):
        """The explorer page of this run shown inline in a notebook (an iframe ``height`` pixels
        high; ``graphflow explore`` writes the same page to a file)."""
        from graphflow.viz.explorer import InlineExplorer

        return InlineExplorer(self, height, collapsed)

    def to_xarray(self):
        """The run as an ``xarray.DataTree``, to slice with xarray and pandas (``pip install graphflow[xarray]``).

        - ``parts/<block>/<label>`` (``parts/dense4/w``): one dataset per recorded block part, a
          variable per field with the dims of :data:`FIELD_DIMS` (the channel axis named per field,
          ``message_out_channel``), ``node`` labelled by node id, NaN where a node was not recorded,
          and ``recorded`` [step, node];
        - ``losses``: per loss block its per-element loss before each step and the prediction it
          compared (``<block>_prediction``), [step, task, example, ``<block>_unit``];
        - ``groups/<learner group>``: the update statistics of every learner group.

        >>> from graphflow.inspect._example import example_run
        >>> tree = example_run().to_xarray()  # doctest: +SKIP
        >>> tree["parts/dense2/w"]["update"].sel(node="dense2/w[1,0]").values.tolist()  # doctest: +SKIP
        [[0.25], [0.25]]
        """
        try:
            import xarray as xr
        except ImportError:
            raise GraphflowError("Run.to_xarray needs xarray, which is not installed: pip install 'graphflow[xarray]' "
                                 "(or pip install xarray)") from None
        steps = {"step": list(self.step_labels)}
        tree: dict[str, object] = {"/": xr.Dataset(attrs={"steps": self.steps, "tasks": self.header["tasks"],
                                                          "batch": self.header["batch"], "patterns": self.patterns,
                                                          "gradients": int(self.has_gradients)})}
        for part, rec in self.parts.items():
            variables = {}
            for name, values in rec.fields.items():
                dims = tuple(f"{name}_channel" if d == "channel" else d for d in FIELD_DIMS[name])
                coords = {f"{name}_channel": rec.channels[name]} if name in rec.channels else {}
                variables[name] = xr.DataArray(values, dims=dims, coords=coords)
            variables["recorded"] = xr.DataArray(rec.recorded, dims=("step", "node"))
            tree[f"/parts/{part}"] = xr.Dataset(variables, coords={**steps, "node": rec.ids},
                                                attrs={"role": rec.role, "group": rec.group or ""})
        losses = {}
        for block, values in self.losses.items():
            dims = ("step", "task", "example", f"{block}_unit")
            losses[block] = xr.DataArray(values, dims=dims)
            if block in self.outputs:
                losses[f"{block}_prediction"] = xr.DataArray(self.outputs[block], dims=dims)
        tree["/losses"] = xr.Dataset(losses, coords=steps)
        group_coords = {**steps, "quantile": list(QUANTILES), "moment": list(GROUP_MOMENTS)}
        for group, stats in self.groups.items():
            tree[f"/groups/{group}"] = xr.Dataset({name: xr.DataArray(a, dims=GROUP_DIMS[name]) for name, a in stats.items()
                                                   if name in GROUP_DIMS}, coords=group_coords)
        return xr.DataTree.from_dict(tree)


def part_of(node_id: str) -> str:
    """The block part of a node id: ``part_of("dense2/w[3,7]") == "dense2/w"``."""
    return node_id.split("[", 1)[0]


def held_bytes(a: np.ndarray) -> int:
    """Bytes of the memory an array keeps alive (its own, or that of the array it views)."""
    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    return int(a.nbytes)


def load_run(path: str | Path) -> Run:
    """Read a run file (``graphflow inspect``/``explore`` accept these)."""
    return Run.load(path)


# ---------------------------------------------------------------------- reading and checking run files
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

HEADER_TYPES: dict[str, type] = {
    "kind": str, "steps": int, "tasks": int, "batch": int, "graph": dict, "patterns": list, "parts": dict,
    "losses": list, "groups": list,
}
"""The header keys every run file has, and their JSON types (``format``, ``data``, ``meta``, ... are optional)."""


def _file_start(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError as err:
        raise GraphflowError(read_failure(path, "run file", err)) from None


def _read_member(path: Path, zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """One array of the archive, read whole (so that zip's CRC check always runs) and parsed strictly."""
    where = f"{path}: unreadable run file: array {name.removesuffix('.npy')!r}"
    try:
        buffer = io.BytesIO(zf.read(name))
        array = np.lib.format.read_array(buffer, allow_pickle=False)
    except DAMAGED_FILE_ERRORS as err:
        raise GraphflowError(f"{where} is damaged ({type(err).__name__}: {err})") from None
    if buffer.read(1):
        raise GraphflowError(f"{where} has bytes past its data")
    return array


def read_run_file(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON header, arrays) of a run file, every array read whole.

    Anything but an intact ``.npz`` of arrays with a JSON-object header under ``__run__`` is a
    :class:`GraphflowError` naming the file: a missing file, a plain ``.npy`` array, a truncated
    archive, a flipped byte (zip's CRC; a flipped name fails zip's check of the name, since every
    member is read), a damaged zip field, a header that is no JSON object.
    """
    path = Path(path)
    start = _file_start(path)
    if start.startswith(NPY_MAGIC):
        raise GraphflowError(f"{path}: not an inspection run (a plain .npy array, not an .npz archive)")
    if not start.startswith(ZIP_MAGIC):
        raise GraphflowError(f"{path}: unreadable run file (not an .npz archive)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if f"{HEADER_KEY}.npy" not in names:
                raise GraphflowError(f"{path}: not an inspection run (no {HEADER_KEY} header)")
            other = [n for n in names if not n.endswith(".npy")]
            if other:  # a run holds arrays only: this is a damaged name (or not a run)
                raise GraphflowError(f"{path}: unreadable run file: {other[0]!r} is not an array (.npy)")
            raw = _read_member(path, zf, f"{HEADER_KEY}.npy")
            arrays = {n.removesuffix(".npy"): _read_member(path, zf, n) for n in names if n != f"{HEADER_KEY}.npy"}
    except GraphflowError:
        raise
    except DAMAGED_FILE_ERRORS as err:  # the archive itself: truncated, damaged central directory
        raise GraphflowError(f"{path}: unreadable run file, truncated or damaged "
                             f"({type(err).__name__}: {err})") from None
    if raw.shape != () or raw.dtype.kind != "U":
        raise GraphflowError(f"{path}: the {HEADER_KEY} header is not a JSON text (a {raw.dtype} array of shape "
                             f"{list(raw.shape)})")
    try:
        header = json.loads(str(raw))
    except ValueError as err:
        raise GraphflowError(f"{path}: the {HEADER_KEY} header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise GraphflowError(f"{path}: the {HEADER_KEY} header is {_json_type(header)}, not a JSON object")
    return header, arrays


def _check_header(path: Path, header: dict) -> None:
    """The run kind, format and every key the loader reads, with its type and sizes."""
    if "kind" not in header:
        raise GraphflowError(f"{path}: the run header has no 'kind'")
    if header["kind"] != RUN_KIND:
        raise GraphflowError(f"{path}: kind {header['kind']!r}, expected {RUN_KIND!r}")
    fmt = header.get("format", 0)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise GraphflowError(f"{path}: run format {fmt!r} is not a whole number")
    if fmt > RUN_FORMAT:
        raise GraphflowError(f"{path}: run format {fmt} is newer than this graphflow reads ({RUN_FORMAT})")
    for key, kind in HEADER_TYPES.items():
        if key not in header:
            raise GraphflowError(f"{path}: the run header has no {key!r}")
        value = header[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise GraphflowError(f"{path}: the run header's {key!r} is {_json_type(value)}, "
                                 f"expected {JSON_TYPES[kind]}")
    for key in ("steps", "tasks", "batch"):
        if header[key] < 1:
            raise GraphflowError(f"{path}: the run header's {key!r} is {header[key]}, expected at least 1")
    if not all(isinstance(p, dict) and isinstance(p.get("pattern"), str) for p in header["patterns"]):
        raise GraphflowError(f"{path}: the run header's 'patterns' are not all {{\"pattern\": text, ...}} objects")
    if not header["losses"]:
        raise GraphflowError(f"{path}: the run header names no loss arrays ('losses' is empty)")
    for key in ("losses", "groups", "data"):
        if not isinstance(header.get(key, []), list) or not all(isinstance(n, str) for n in header.get(key, [])):
            raise GraphflowError(f"{path}: the run header's {key!r} is not a list of names")
    if not isinstance(header.get("meta", {}), dict):
        raise GraphflowError(f"{path}: the run header's 'meta' is {_json_type(header['meta'])}, expected an object")


JSON_TYPES = {dict: "an object", list: "a list", str: "a text", bool: "true/false", int: "a whole number",
              float: "a number", type(None): "null"}
"""How the errors name the type of a JSON value."""


def _json_type(value) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def _run_graph(path: Path, header: dict):
    """The graph of the run's spec (an error naming the file when the spec does not build)."""
    from graphflow.graph import build
    from graphflow.spec import parse_graph_spec

    try:
        return build(parse_graph_spec(header["graph"]))
    except GraphflowError as err:  # spec errors list their problems one a line: keep them on one
        first, *rest = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        raise GraphflowError(f"{path}: the run's graph: {' '.join([first, '; '.join(rest)]).strip()}") from None


def _array(path: Path, name: str, a: np.ndarray | None, kind: str = "number") -> np.ndarray:
    """The array the header names ``name``: present, and of numbers (or ``bool`` for ``kind="bool"``)."""
    if a is None:
        raise GraphflowError(f"{path}: the run header names array {name!r}, which the file lacks")
    if (a.dtype.kind == "b") if kind == "bool" else (a.dtype.kind in "fiu"):
        return a
    raise GraphflowError(f"{path}: array {name!r} holds {a.dtype}, expected {kind}s")


def _check_shape(path: Path, name: str, a: np.ndarray, dims: tuple[str, ...], expected: tuple) -> None:
    """``a`` has one axis per dim, of the expected length where one is given (None: any)."""
    if a.ndim != len(dims) or any(n is not None and k != n for k, n in zip(a.shape, expected)):
        axes = ", ".join(d if n is None else f"{d}={n}" for d, n in zip(dims, expected))
        raise GraphflowError(f"{path}: array {name!r} has shape {list(a.shape)}, expected [{axes}]")


def _part_record(path: Path, header: dict, graph, part: str, ph, arrays: dict[str, np.ndarray]) -> PartRecord:
    """One part of the header's layout, checked against the graph and the arrays."""
    where = f"{path}: part {part!r} of the run header"
    if not isinstance(ph, dict):
        raise GraphflowError(f"{where} is {_json_type(ph)}, expected an object")
    for key, kind in (("role", str), ("nodes", list), ("ids", list), ("fields", dict)):
        if not isinstance(ph.get(key), kind):
            raise GraphflowError(f"{where} has no {key!r} ({JSON_TYPES[kind]})")
    if part not in graph.parts():
        raise GraphflowError(f"{where}: the run's graph has no such part")
    size, nodes = graph.part_size(part), ph["nodes"]
    if not all(type(n) is int and 0 <= n < size for n in nodes) or nodes != sorted(set(nodes)):
        raise GraphflowError(f"{where}: 'nodes' are not increasing node positions 0..{size - 1}")
    if ph["ids"] != [graph.node_id(part, n) for n in nodes]:
        raise GraphflowError(f"{where}: 'ids' are not the ids of its 'nodes'")
    lengths = {"step": header["steps"], "task": header["tasks"], "example": header["batch"], "node": len(nodes)}
    fields, channels = {}, {}
    for name, spec in ph["fields"].items():
        if name not in FIELD_DIMS:
            raise GraphflowError(f"{where}: unknown field {name!r}; fields are {', '.join(FIELDS)}")
        names = spec.get("channels") if isinstance(spec, dict) else None
        if names is not None and not (isinstance(names, list) and all(isinstance(c, str) for c in names)):
            raise GraphflowError(f"{where}: the channels of {name!r} are not a list of names")
        key, dims = f"part/{part}/{name}", FIELD_DIMS[name]
        fields[name] = _array(path, key, arrays.get(key))
        expected = dict(lengths, channel=len(names) if names else None)
        _check_shape(path, key, fields[name], dims, tuple(expected[d] for d in dims))
        if names:
            channels[name] = list(names)
    key = f"part/{part}/recorded"
    recorded = _array(path, key, arrays.get(key), "bool")
    _check_shape(path, key, recorded, ("step", "node"), (header["steps"], len(nodes)))
    group = ph.get("group")
    return PartRecord(part, ph["role"], group if isinstance(group, str) else None, np.asarray(nodes, np.int64),
                      list(ph["ids"]), recorded, fields, channels)


def _check_per_example(path: Path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Loss, output and data arrays: [step, task, example, unit] (one task's data may serve all tasks)."""
    for name, a in arrays.items():
        tasks = None if name.startswith("data/") else header["tasks"]
        _check_shape(path, name, _array(path, name, a), ("step", "task", "example", "unit"),
                     (header["steps"], tasks, header["batch"], None))


GROUP_MOMENTS = ("mean", "std", "mean_abs")
"""What a learner group's ``moments`` hold, per step: the mean, the std and the mean of |update|."""
GROUP_DIMS = {"quantiles": ("step", "quantile"), "histogram": ("step", "bin"), "edges": ("step", "edge"),
              "moments": ("step", "moment"), "non_finite": ("step",)}
"""The axes of a learner group's update statistics (:attr:`Run.groups`)."""


def _check_group(path: Path, header: dict, group: str, stats: dict[str, np.ndarray]) -> None:
    """A learner group's update statistics: one row per step, as :attr:`Run.groups` describes them."""
    for name in GROUP_DIMS:
        if name not in stats and name != "non_finite":  # runs recorded before non_finite was counted lack it
            raise GraphflowError(f"{path}: the run header names learner group {group!r}, whose array "
                                 f"'group/{group}/{name}' the file lacks")
    hist = stats.get("histogram")
    lengths = {"quantile": len(QUANTILES), "moment": 3,
               "edge": hist.shape[-1] + 1 if hist is not None and hist.ndim == 2 else None}
    for name, a in stats.items():
        key = f"group/{group}/{name}"
        dims = GROUP_DIMS.get(name, ("step",) + ("value",) * (a.ndim - 1))
        expected = (header["steps"],) + tuple(lengths.get(d) for d in dims[1:])
        _check_shape(path, key, _array(path, key, a), dims, expected)


def is_run_file(path: str | Path) -> bool:
    """Whether ``path`` is (meant to be) an inspection run: an ``.npz`` archive with the run header.

    Only the archive's table of contents is read; a damaged run file still counts, so that
    :meth:`Run.load` says what is wrong with it.
    """
    try:
        with zipfile.ZipFile(Path(path)) as zf:
            return f"{HEADER_KEY}.npy" in zf.namelist()
    except DAMAGED_FILE_ERRORS:
        return False
