"""Blocks: the compact, array-backed pieces an explicit node graph is made of.

A block holds many scalar nodes of one kind that share their wiring pattern (all weight nodes of
one connection, all activation units of one layer, ...). Nodes stay individually addressable
(:mod:`graphflow.graph.ids`) while a 784-1000-1000-10 network costs a few small objects: dense
weight blocks store no index arrays at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class InputNodes:
    name: str
    size: int
    kind: str = field(default="input", init=False)
    label = "x"


@dataclass(eq=False)
class TargetNodes:
    name: str
    size: int
    kind: str = field(default="target", init=False)
    label = "y"


@dataclass(eq=False)
class NeuronNodes:
    """Neuron sums (``<name>/sum[j]``) each followed by its bias node (``<name>/b[j]``)."""

    name: str
    size: int
    bias_edges: np.ndarray | None = None
    """Given (bias, neuron) pairs, kept only to write the spec back; validated to be a permutation."""
    kind: str = field(default="neurons", init=False)
    label = "b"


@dataclass(eq=False)
class WeightNodes:
    """Weight nodes ``<name>/w[i,j]`` from unit i of ``src`` to neuron j of ``dst``.

    Dense blocks keep ``src_idx``/``dst_idx`` as None; their nodes are ordered row-major (i, j).
    Sparse blocks list their edges (sorted by (i, j)).
    """

    name: str
    src: str
    dst: str
    n_src: int
    n_dst: int
    src_idx: np.ndarray | None = None
    dst_idx: np.ndarray | None = None
    connectivity: str = "dense"
    """How the spec gave it: ``dense``, ``mask`` or ``edges`` (to write the spec back)."""
    fan_in: int | None = None
    kind: str = field(default="weights", init=False)
    label = "w"

    @property
    def dense(self) -> bool:
        return self.src_idx is None

    @property
    def size(self) -> int:
        return self.n_src * self.n_dst if self.dense else int(self.src_idx.shape[0])

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(i, j) of every weight node in node order (materialized for dense blocks)."""
        if self.dense:
            i, j = np.divmod(np.arange(self.size, dtype=np.int64), self.n_dst)
            return i, j
        return self.src_idx, self.dst_idx

    def fan_out(self) -> np.ndarray:
        """Number of these weights leaving each source unit."""
        if self.dense:
            return np.full(self.n_src, self.n_dst, dtype=np.int64)
        return np.bincount(self.src_idx, minlength=self.n_src)

    def fan_in_counts(self) -> np.ndarray:
        """Number of these weights entering each destination neuron."""
        if self.dense:
            return np.full(self.n_dst, self.n_src, dtype=np.int64)
        return np.bincount(self.dst_idx, minlength=self.n_dst)


@dataclass(eq=False)
class ActivationNodes:
    """Activation units ``<name>/act[j]``; ``fns`` has one entry (uniform) or one per unit."""

    name: str
    src: str
    size: int
    fns: tuple[str, ...]
    fn_list: bool = False
    """True when the spec gave ``fn`` as a list (to write the spec back as it was)."""
    kind: str = field(default="activation", init=False)
    label = "act"

    def fn_of(self, j: int) -> str:
        return self.fns[0] if len(self.fns) == 1 else self.fns[j]


@dataclass(eq=False)
class SoftmaxNodes:
    name: str
    src: str
    size: int
    kind: str = field(default="softmax", init=False)
    label = "unit"


@dataclass(eq=False)
class LossNodes:
    name: str
    src: str
    target: str
    fn: str
    size: int
    kind: str = field(default="loss", init=False)
    label = "loss"


UnitBlock = InputNodes | TargetNodes | NeuronNodes | ActivationNodes | SoftmaxNodes | LossNodes
Block = UnitBlock | WeightNodes

# The node kind of each block's nodes (neuron blocks hold two: sums and biases).
BLOCK_NODE_KINDS = {
    "input": ("input",), "target": ("target",), "neurons": ("neuron", "bias"), "weights": ("weight",),
    "activation": ("activation",), "softmax": ("softmax",), "loss": ("loss",),
}
