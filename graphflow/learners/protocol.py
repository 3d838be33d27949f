"""A learned protocol for one graph: every learner group's f/g (or GRU) parameters and every
normalization group's input standardization and output scaling.

Parameters live in two plain dicts of float32 arrays, ``learners[group][name]`` and
``norms[norm_group][name]``; names follow the reference checkpoints (``gru.W_update_x``,
``f.dense0.kernel``, ...) so that import and export are a renaming.

>>> import graphflow as gf
>>> g = gf.build(gf.stack(1, gf.Dense(20), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> p = Protocol.init(g, gf.LearnerSpec(), seed=0)
>>> p.learners["dense0/w"]["gru.W_update_x"].shape, p.norms["dense0/w"]["in_scale"].shape
((10, 24), (3,))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from graphflow.errors import GraphError, GraphflowError
from graphflow.spec.learner import LearnerSpec

PARAM_ROLES = ("weight", "bias")


@dataclass(frozen=True, order=True)
class ParamKey:
    """The flat key of one meta-trained array, parsed and printed in this one place.

    ``learner::<learner group>::<name>`` (f, g or GRU parameters), ``norm::<normalization
    group>::<name>`` (standardization and output scaling), ``init::<network parameter>`` (the
    meta-trained initial network of MAML mode, e.g. ``init::dense0/w``).

    >>> key = ParamKey.parse("learner::dense0/w::gru.W_update_x")
    >>> key.table, key.group, key.name, str(key) == "learner::dense0/w::gru.W_update_x"
    ('learner', 'dense0/w', 'gru.W_update_x', True)
    >>> str(ParamKey.init("dense2/b")), ParamKey.parse("init::dense2/b").group
    ('init::dense2/b', 'dense2/b')
    """

    table: Literal["learner", "norm", "init"]
    group: str
    """The learner or normalization group; for ``init``, the network parameter (``dense0/w``)."""
    name: str = ""
    """The array's name inside its group (empty for ``init``)."""

    @classmethod
    def parse(cls, text: str) -> "ParamKey":
        table, _, rest = str(text).partition("::")
        if table == "init" and rest:
            return cls("init", rest)
        group, _, name = rest.partition("::")
        if table not in ("learner", "norm") or not group or not name or "::" in name:
            raise ValueError(f"{text!r} is not a protocol key (learner::<group>::<name>, norm::<group>::<name> "
                             f"or init::<parameter>)")
        return cls(table, group, name)

    @classmethod
    def init(cls, parameter: str) -> "ParamKey":
        return cls("init", parameter)

    def __str__(self) -> str:
        return f"init::{self.group}" if self.table == "init" else f"{self.table}::{self.group}::{self.name}"


@dataclass(frozen=True)
class SlotLayout:
    """Widths of one slot's learner: input streams, carry, message."""

    stream_widths: tuple[int, ...]
    """Message width, then 1 per state."""
    carry: int
    message: int
    has_parameter: bool

    @property
    def input_width(self) -> int:
        return sum(self.stream_widths)


def slot_layout(slot, spec: LearnerSpec) -> SlotLayout:
    k = spec.message_size
    msg_in = 1 if slot.role == "loss" else k
    has_param = slot.role in PARAM_ROLES
    carry = (1 if has_param else 0) + spec.hidden + k
    return SlotLayout((msg_in,) + (1,) * len(slot.states), carry, k, has_param)


def _glorot(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def _mlp(rng, prefix, sizes, last_bias=True):
    out = {}
    for d, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        out[f"{prefix}.dense{d}.kernel"] = _glorot(rng, a, b)
        if d < len(sizes) - 2 or last_bias:
            out[f"{prefix}.dense{d}.bias"] = np.zeros(b, np.float32)
    return out


def init_learner(rng, layout: SlotLayout, spec: LearnerSpec) -> dict[str, np.ndarray]:
    """Fresh parameters of one learner: Glorot-uniform kernels, zero biases (GRU gates at -1)."""
    h1, h2 = spec.mlp_hidden
    n_in = layout.input_width
    if spec.kind == "stateless":
        p = {}
        if layout.has_parameter:
            p.update(_mlp(rng, "f", (n_in, h1, h2, 1)))
        p.update(_mlp(rng, "g", (n_in, h1, h2, layout.message)))
        return p
    c = layout.carry
    p = {
        "gru.W_update_x": _glorot(rng, n_in, c), "gru.W_update_c": _glorot(rng, c, c),
        "gru.b_update": np.full(c, -1.0, np.float32),
        "gru.W_reset_x": _glorot(rng, n_in, c), "gru.W_reset_c": _glorot(rng, c, c),
        "gru.b_reset": np.full(c, -1.0, np.float32), "gru.b_next": np.zeros(c, np.float32),
    }
    p.update(_mlp(rng, "gru.next_x_net", (n_in, h1, h2, c), last_bias=False))
    p.update(_mlp(rng, "gru.next_c_net", (c, h1, h2, c), last_bias=False))
    return p


def init_norm(layout: SlotLayout, spec: LearnerSpec) -> dict[str, np.ndarray]:
    """Identity standardization; output mean 0 and scale out_scale_factor * init_std."""
    n = len(layout.stream_widths)
    p = {"in_shift": np.zeros(n, np.float32), "in_scale": np.ones(n, np.float32)}
    if layout.has_parameter:
        p["out_mean"] = np.zeros((), np.float32)
        p["out_scale"] = np.asarray(spec.out_scale_factor * spec.init_std, np.float32)
    return p


@dataclass
class Protocol:
    """Learner and normalization parameters of a graph's groups (plain float32 numpy arrays)."""

    spec: LearnerSpec
    learners: dict[str, dict[str, np.ndarray]]
    norms: dict[str, dict[str, np.ndarray]]
    meta: dict = field(default_factory=dict)

    @classmethod
    def init(cls, graph, spec: LearnerSpec | None = None, seed: int = 0) -> "Protocol":
        """Random learners for every group of ``graph`` (slots of one group must agree in widths)."""
        spec = spec or LearnerSpec()
        rng = np.random.default_rng(seed)
        learners, norms, layouts = {}, {}, {}
        for slot in graph.slots.values():
            layout = slot_layout(slot, spec)
            seen = layouts.setdefault(slot.group, layout)
            if seen != layout:
                raise GraphError(f"learner group {slot.group!r}: {slot.key} needs input width {layout.input_width}, "
                                 f"another member {seen.input_width}")
            if slot.group not in learners:
                learners[slot.group] = init_learner(rng, layout, spec)
            norms.setdefault(slot.norm_group, init_norm(layout, spec))
        return cls(spec, learners, norms)

    # Flat views for optimizers and checkpoints.
    def flat(self) -> dict[str, np.ndarray]:
        """``{"learner::<group>::<name>": array, "norm::<group>::<name>": array}``."""
        out = {str(ParamKey("learner", g, n)): a for g, p in self.learners.items() for n, a in p.items()}
        out.update({str(ParamKey("norm", g, n)): a for g, p in self.norms.items() for n, a in p.items()})
        return out

    def table(self, key: ParamKey) -> dict[str, dict[str, np.ndarray]]:
        """``learners`` or ``norms``: the table that holds ``key``'s group."""
        return self.learners if key.table == "learner" else self.norms

    @classmethod
    def from_flat(cls, spec: LearnerSpec, flat: dict[str, np.ndarray], meta: dict | None = None) -> "Protocol":
        learners: dict = {}
        norms: dict = {}
        for text, a in flat.items():
            key = ParamKey.parse(text)
            (learners if key.table == "learner" else norms).setdefault(key.group, {})[key.name] = np.asarray(a, np.float32)
        return cls(spec, learners, norms, dict(meta or {}))

    @classmethod
    def checked(cls, graph, spec: LearnerSpec, flat: dict[str, np.ndarray], source: str,
                meta: dict | None = None) -> "Protocol":
        """:meth:`from_flat` after checking ``flat`` against the arrays ``graph`` and ``spec`` need:
        the same names, shapes and only finite values, or a :class:`GraphflowError` naming the
        array and ``source`` (the file it came from)."""
        expected = cls.init(graph, spec).flat()
        missing = sorted(set(expected) - set(flat))
        unknown = sorted(set(flat) - set(expected))
        if missing or unknown:
            what = (f"missing {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                    if missing else f"unknown array {unknown[0]}")
            raise GraphflowError(f"{source}: the protocol does not fit its graph and learner spec: {what}")
        for key, a in flat.items():
            if tuple(np.shape(a)) != expected[key].shape:
                raise GraphflowError(f"{source}: protocol array {key} has shape {list(np.shape(a))}; the graph and "
                                     f"learner spec need {list(expected[key].shape)}")
            if not np.all(np.isfinite(a)):
                raise GraphflowError(f"{source}: protocol array {key} holds NaN or infinite values")
        return cls.from_flat(spec, flat, meta)

    def trainable(self, train_g: bool = True) -> list[str]:
        """Flat names meta-training updates: learner parameters (g optional) and output scales."""
        names = []
        for text in self.flat():
            key = ParamKey.parse(text)
            if key.table == "learner" and (train_g or not key.name.startswith("g.")):
                names.append(text)
            elif key.table == "norm" and key.name == "out_scale":
                names.append(text)
        return names

    def copy(self) -> "Protocol":
        return Protocol.from_flat(self.spec, {k: v.copy() for k, v in self.flat().items()}, self.meta)
