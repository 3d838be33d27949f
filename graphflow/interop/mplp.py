"""The published MPLP checkpoints: flat float32 arrays <-> graphflow graphs and protocols.

A checkpoint is a flat array of named segments (``checkpoint_layouts.json`` lists them).
:func:`reference_layout` derives that list from a graph and a protocol, so loading needs no file
besides the checkpoint; a given layout file is checked against it. Names read
``layer<p>.<W|b>.bw.<part>`` for dense layers and ``layer<p>.bw.<part>`` for the others,
``shared.<W|b>_net.<part>`` for learners shared across layers.

>>> graph, protocol = preset_protocol("sinusoid")
>>> [name for name, _ in reference_layout(graph, protocol)][:2]
['layer0.W.bw.in_std.norm.message', 'layer0.W.bw.in_std.norm.W_b']
>>> sum(int(np.prod(shape)) for _, shape in reference_layout(graph, protocol))
115081
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.graph import build
from graphflow.learners.protocol import ParamKey, Protocol
from graphflow.spec.learner import LearnerSpec

# How the reference names each slot's streams (message first, then the states in graphflow's order).
STREAM_NAMES = {
    "weight": ("message", "W_b", "W_in"),
    "bias": ("message", "b_b", "b_in"),
    "activation": ("message", "act_in"),
    "softmax": ("message", "softmax_inputs", "softmax_translated_inputs", "softmax_exp_nom", "softmax_exp_denom"),
    "l2": ("message", "l2loss_x", "l2loss_targets", "l2loss_diff"),
    "l1": ("message", "l1loss_x", "l1loss_targets"),
    "ce": ("message", "celoss_x", "celoss_targets", "celoss_log_in"),
}
SHARED_NAMES = {"W": "shared.W_net", "b": "shared.b_net"}

PROTOCOL_PRESETS = {
    "sinusoid": ("sinusoid", LearnerSpec(kind="stateful", message_size=8, hidden=15)),
    "maml-sinusoid": ("sinusoid", LearnerSpec(kind="stateless", message_size=8, hidden=0)),
    "mnist": ("mnist", LearnerSpec(kind="stateful", message_size=4, hidden=7), "kind"),
}


def preset_graph_spec(name: str):
    """The graph spec of a reference preset: sinusoid, maml-sinusoid, mnist."""
    from graphflow.presets import PRESETS

    if name not in PROTOCOL_PRESETS:
        raise GraphflowError(f"unknown MPLP preset {name!r}; known: {', '.join(PROTOCOL_PRESETS)}")
    graph_name, _, *sharing = PROTOCOL_PRESETS[name]
    spec = PRESETS[graph_name]()
    return spec.model_copy(update={"sharing": sharing[0]}) if sharing else spec


def preset_protocol(name: str, seed: int = 0) -> tuple:
    """(graph, randomly initialized protocol) of a reference preset: sinusoid, maml-sinusoid, mnist."""
    graph = build(preset_graph_spec(name))
    return graph, Protocol.init(graph, PROTOCOL_PRESETS[name][1], seed)


def identify_checkpoint(path: str | Path) -> tuple[str, object, Protocol]:
    """(preset, graph, protocol) of a published checkpoint, read with the preset whose layout it
    fits (their sizes differ)."""
    path = Path(path)
    if not path.is_file():
        raise GraphflowError(f"{path}: no such checkpoint file")
    sizes = []
    for preset in PROTOCOL_PRESETS:
        try:
            graph, protocol = load_checkpoint(preset, path)
        except GraphflowError as err:
            sizes.append(f"{preset}: {str(err).removeprefix(f'{path}: ')}")
            continue
        return preset, graph, protocol
    raise GraphflowError(f"{path}: not a published MPLP checkpoint of any preset ({'; '.join(sizes)})")


def _slot_prefixes(graph) -> list[tuple[str, object]]:
    """(reference prefix, slot) for every slot, in layer order (W before b)."""
    spec = graph.source
    out = []
    from graphflow.graph.build import default_layer_name

    for p, layer in enumerate(spec.layers):
        name = default_layer_name(layer, p)
        if layer.kind == "dense":
            out.append((f"layer{p}.W.bw", graph.slots[f"{name}/w"]))
            out.append((f"layer{p}.b.bw", graph.slots[f"{name}/b"]))
        else:
            label = {"activation": "act", "softmax": "unit", "loss": "loss"}[layer.kind]
            out.append((f"layer{p}.bw", graph.slots[f"{name}/{label}"]))
    return out


def _streams(slot) -> tuple[str, ...]:
    return STREAM_NAMES[slot.loss_fn or slot.role]


@dataclass(frozen=True)
class Segment:
    """One named segment of a reference checkpoint and where it lives in a protocol."""

    name: str
    table: str  # "learner" or "norm"
    group: str
    key: str
    item: int | None = None  # stream index inside in_shift / in_scale

    @property
    def flat_key(self) -> str:
        return str(ParamKey(self.table, self.group, self.key))

    def get(self, protocol: Protocol) -> np.ndarray:
        a = (protocol.learners if self.table == "learner" else protocol.norms)[self.group][self.key]
        return a if self.item is None else a[self.item]

    def put(self, protocol: Protocol, values: np.ndarray) -> None:
        table = protocol.learners if self.table == "learner" else protocol.norms
        if self.item is None:
            table[self.group][self.key] = np.asarray(values, np.float32).reshape(table[self.group][self.key].shape)
        else:
            table[self.group][self.key][self.item] = np.float32(values.reshape(()))


def segments(graph, protocol: Protocol) -> list[Segment]:
    """Every segment of the reference flat checkpoint, in order."""
    shared_groups = {g for g in SHARED_NAMES if g in protocol.learners}
    stateless = protocol.spec.kind == "stateless"
    out = []
    for prefix, slot in _slot_prefixes(graph):
        for field, key in (("norm", "in_scale"), ("mean", "in_shift")):
            for k, stream in enumerate(_streams(slot)):
                out.append(Segment(f"{prefix}.in_std.{field}.{stream}", "norm", slot.norm_group, key, k))
        names = [] if slot.group in shared_groups else list(protocol.learners[slot.group])
        if stateless:  # f, its output normalization, then g
            names = [n for n in names if n.startswith("f.")] + [n for n in names if n.startswith("g.")]
        out_prefix = "f" if stateless else "out_std"
        out_norm = [Segment(f"{prefix}.{out_prefix}.{k}", "norm", slot.norm_group, k) for k in ("out_scale", "out_mean")]
        out += [Segment(f"{prefix}.{n}", "learner", slot.group, n) for n in names if n.startswith("f.")]
        if slot.has_parameter and stateless:
            out += out_norm
        out += [Segment(f"{prefix}.{n}", "learner", slot.group, n) for n in names if not n.startswith("f.")]
        if slot.has_parameter and not stateless:
            out += out_norm
    for group in sorted(shared_groups, key=list(SHARED_NAMES).index):
        out += [Segment(f"{SHARED_NAMES[group]}.{n}", "learner", group, n) for n in protocol.learners[group]]
    return out


def gradient_names(graph, protocol: Protocol) -> dict[str, str]:
    """Flat protocol key -> its checkpoint segment name (for whole-array segments)."""
    return {s.flat_key: s.name for s in segments(graph, protocol) if s.item is None}


def reference_layout(graph, protocol: Protocol) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every segment of the reference flat checkpoint, in order."""
    return [(seg.name, tuple(np.shape(seg.get(protocol)))) for seg in segments(graph, protocol)]


def check_layout(graph, protocol: Protocol, layout_json: list[dict], where: str = "layout") -> None:
    """Raise a clear error when a layout file disagrees with the derived layout."""
    ours = reference_layout(graph, protocol)
    theirs = [(s["name"], tuple(s["shape"])) for s in layout_json]
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            raise GraphflowError(f"{where}: segment {k} is {b[0]} {list(b[1])}, graphflow expects {a[0]} {list(a[1])}")
    if len(ours) != len(theirs):
        raise GraphflowError(f"{where}: {len(theirs)} segments, graphflow expects {len(ours)}")


def load_checkpoint(preset: str, path: str | Path, layout: str | Path | None = None) -> tuple:
    """Load a reference checkpoint into (graph, protocol) of ``preset``.

    The layout is derived; when ``layout`` (or ``checkpoint_layouts.json`` beside the file) is
    present, it is checked against the derived one.
    """
    path = Path(path)
    graph, protocol = preset_protocol(preset)
    try:
        flat = np.load(path)
    except FileNotFoundError:
        raise GraphflowError(f"{path}: no such checkpoint file") from None
    if flat.dtype != np.float32 or flat.ndim != 1:
        raise GraphflowError(f"{path}: expected a flat float32 array, got {flat.dtype} {list(flat.shape)}")
    layout_path = Path(layout) if layout else path.with_name("checkpoint_layouts.json")
    if layout_path.exists():
        layouts = json.loads(layout_path.read_text())
        if path.name in layouts:
            check_layout(graph, protocol, layouts[path.name], f"{layout_path} [{path.name}]")
        elif layout:
            raise GraphflowError(f"{layout_path}: no layout for {path.name}")
    segs = segments(graph, protocol)
    sizes = [int(np.prod(np.shape(seg.get(protocol)))) for seg in segs]
    if sum(sizes) != flat.size:
        raise GraphflowError(f"{path}: {flat.size} values, preset {preset!r} needs {sum(sizes)}")
    offset = 0
    for seg, n in zip(segs, sizes):
        seg.put(protocol, flat[offset:offset + n])
        offset += n
    protocol.meta.update({"source": str(path), "preset": preset})
    return graph, protocol


def export_checkpoint(graph, protocol: Protocol) -> np.ndarray:
    """The flat float32 array of ``protocol`` in the reference layout (inverse of loading)."""
    return np.concatenate([np.asarray(seg.get(protocol), np.float32).reshape(-1) for seg in segments(graph, protocol)])


def published_prior(path: str | Path) -> Path:
    """The prior (the learned initial network) published beside a maml-sinusoid checkpoint: the
    file of the same name with ``prior`` for ``net``.

    >>> published_prior("reference/maml_sin_net_weights_00258202.npy").name
    'maml_sin_prior_weights_00258202.npy'
    """
    path = Path(path)
    if "_net_" not in path.name:
        raise GraphflowError(f"{path}: a maml-sinusoid checkpoint's prior is found beside it by name "
                             f"(maml_sin_net_weights_N.npy -> maml_sin_prior_weights_N.npy), and this name has no '_net_'")
    return path.with_name(path.name.replace("_net_", "_prior_", 1))


def load_published_prior(graph, path: str | Path) -> dict[str, np.ndarray]:
    """The prior of the published maml-sinusoid checkpoint ``path``, read from beside it
    (:func:`published_prior`), as :func:`load_prior` gives it."""
    prior = published_prior(path)
    if not prior.is_file():
        raise GraphflowError(f"{path}: a published maml-sinusoid checkpoint needs its prior (the initial network), "
                             f"expected beside it as {prior.name}")
    return load_prior(graph, prior)


def load_prior(graph, path: str | Path) -> dict[str, np.ndarray]:
    """A flat prior (initial W1, b1, W2, b2, ... in layer order) as ``{"dense0/w": ..., "dense0/b": ...}``."""
    if not Path(path).is_file():
        raise GraphflowError(f"{path}: no such prior file")
    flat = np.load(Path(path))
    out, offset = {}, 0
    for w in graph.weights.values():
        for key, shape in ((f"{w.name}/w", (w.n_src, w.n_dst)), (f"{w.dst}/b", (w.n_dst,))):
            n = int(np.prod(shape))
            out[key] = flat[offset:offset + n].reshape(shape).astype(np.float32)
            offset += n
    if offset != flat.size:
        raise GraphflowError(f"{path}: {flat.size} values, the network has {offset} parameters")
    return out
