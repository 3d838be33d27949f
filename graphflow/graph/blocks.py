"""Blocks: the compact, array-backed pieces an explicit node graph is made of.

A block holds the scalar nodes that share one wiring pattern (all weight nodes of one connection,
all activation units of one layer, ...). Its ``kind`` is the block kind of the spec (``neurons``,
``weights``, ...; plural, as a block holds many nodes); the nodes inside have node kinds
(:mod:`graphflow.graph.kinds`: ``neuron`` and ``bias``, ``weight``, ...), and each node kind of a
block is one part, ``<block>/<label>``. Nodes stay individually addressable
(:mod:`graphflow.graph.ids`) while a 784-1000-1000-10 network costs a few small objects: dense
weight blocks store no index arrays at all. This module knows nothing of learners or running.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class InputNodes:
    """Input units ``<name>/x[i]``, fed from outside."""

    name: str
    size: int
    kind: str = field(default="input", init=False)
    label = "x"


@dataclass(eq=False)
class TargetNodes:
    """Target units ``<name>/y[j]``, fed from outside and read by loss nodes."""

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
    """Softmax units ``<name>/unit[j]``, each reading every unit of ``src``."""

    name: str
    src: str
    size: int
    kind: str = field(default="softmax", init=False)
    label = "unit"


@dataclass(eq=False)
class LossNodes:
    """Loss nodes ``<name>/loss[j]`` comparing unit j of ``src`` with unit j of ``target``."""

    name: str
    src: str
    target: str
    fn: str
    size: int
    kind: str = field(default="loss", init=False)
    label = "loss"


UnitBlock = InputNodes | TargetNodes | NeuronNodes | ActivationNodes | SoftmaxNodes | LossNodes
Block = UnitBlock | WeightNodes


def block_key(block: Block) -> str:
    """The name of a block in :attr:`graphflow.graph.Graph.dag`: its name, ``weights:<name>`` for a
    weights block (which may share its name with the neurons block it sums into).

    >>> block_key(WeightNodes("dense0", "input", "dense0", 3, 2)), block_key(NeuronNodes("dense0", 2))
    ('weights:dense0', 'dense0')
    """
    return f"weights:{block.name}" if isinstance(block, WeightNodes) else block.name
