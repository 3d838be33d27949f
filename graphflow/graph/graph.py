"""The explicit node graph: blocks of typed scalar nodes, forward and backward arrows, learner groups.

A :class:`Graph` is immutable once built (:func:`graphflow.graph.build`). It answers structural
questions — which nodes exist, which block reads which (:attr:`Graph.dag`), which learner group
and normalization group a slot uses, what a node's id is — and offers views: statistics, node
selection by id pattern, a networkx graph per scalar node or per part, and the spec it came
from. It knows nothing about running: schedules, engines and learners read it, never the
reverse. The words (block, part, slot, learner group, wave, ...) are those of the glossary in
docs/graph.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from graphflow.errors import DataError, GraphError
from graphflow.graph import kinds
from graphflow.graph.blocks import (
    ActivationNodes,
    Block,
    InputNodes,
    LossNodes,
    NeuronNodes,
    SoftmaxNodes,
    TargetNodes,
    UnitBlock,
    WeightNodes,
    block_key,
)
from graphflow.graph.ids import format_id, match_index, parse_pattern


@dataclass(frozen=True)
class Slot:
    """A part whose nodes run a learner: ``dense0/w``, ``dense0/b``, ``relu1/act``, ``loss4/loss``.

    Every part but those of inputs, targets and neuron sums is a slot. The key is the part's name;
    with the default sharing (``"layer"``) it also names the slot's learner group and
    normalization group, which is why one string like ``dense0/w`` is seen in all three roles.
    """

    key: str
    """The part, ``<block>/<label>``; the key of :attr:`Graph.slots`."""
    block: str
    role: str
    """The node kind of the slot's nodes: weight, bias, activation, softmax or loss."""
    size: int
    states: tuple[str, ...]
    group: str
    """Learner group whose f and g these nodes use."""
    norm_group: str
    """Normalization group whose input standardization and output scaling these nodes use."""
    loss_fn: str | None = None

    @property
    def has_parameter(self) -> bool:
        return self.role in ("weight", "bias")


@dataclass(frozen=True)
class NodeSelection:
    """Nodes picked by a pattern: per part (a slot, or a part without a learner), the flat node positions."""

    pattern: str
    parts: dict[str, np.ndarray]
    """``"<block>/<label>"`` -> sorted flat node indices inside that part."""
    graph: "Graph"

    def ids(self) -> list[str]:
        return [self.graph.node_id(part, int(k)) for part, idx in self.parts.items() for k in idx]

    def __len__(self) -> int:
        return int(sum(len(v) for v in self.parts.values()))


class Graph:
    """An explicit graph of scalar nodes, stored as blocks.

    Build one with :func:`graphflow.graph.build` from a spec (or a DSL builder).

    >>> import graphflow as gf
    >>> g = gf.build(gf.stack(144, gf.Dense(50), gf.Sigmoid(), gf.Dense(10), gf.Softmax(), gf.CrossEntropy()))
    >>> g.stats()["nodes"]["weight"], g.node_id("dense2/w", 7)
    (7700, 'dense2/w[0,7]')
    >>> [s.key for s in g.slots.values()][:3]
    ['dense0/w', 'dense0/b', 'sigmoid1/act']
    """

    def __init__(self, blocks: list[Block], slots: list[Slot], waves: list[list[Block]], dag: nx.DiGraph, source):
        self.blocks: tuple[Block, ...] = tuple(blocks)
        """Every block, in graph order (wave by wave)."""
        self.units: dict[str, UnitBlock] = {b.name: b for b in blocks if not isinstance(b, WeightNodes)}
        self.weights: dict[str, WeightNodes] = {b.name: b for b in blocks if isinstance(b, WeightNodes)}
        self.slots: dict[str, Slot] = {s.key: s for s in slots}
        self.waves = waves
        """Topological generations of :attr:`dag` (lists of blocks, in graph order): a block's inputs
        are all in earlier waves."""
        self.dag = nx.freeze(dag)
        """The block DAG, a frozen networkx DiGraph: one node per block, named by
        :func:`~graphflow.graph.blocks.block_key` and holding the block as ``block``; an edge from
        every block to each block that reads its values, with ``via``: the spec field that wires
        them (the reader's ``src`` or ``target``, or a weights block's ``dst``)."""
        self.source = source
        """What the graph was built from (to write the spec back): the spec's own data."""
        self._consumers, self._incoming_weights = wiring_index(self.dag, self.blocks)

    # ------------------------------------------------------------------ structure
    @property
    def inputs(self) -> list[InputNodes]:
        return [b for b in self.units.values() if isinstance(b, InputNodes)]

    @property
    def targets(self) -> list[TargetNodes]:
        return [b for b in self.units.values() if isinstance(b, TargetNodes)]

    @property
    def losses(self) -> list[LossNodes]:
        return [b for b in self.units.values() if isinstance(b, LossNodes)]

    def incoming_weights(self, neurons: str) -> list[WeightNodes]:
        """The weights blocks that sum into the neurons block ``neurons``, in graph order.

        >>> import graphflow as gf
        >>> g = gf.build(gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
        >>> [w.name for w in g.incoming_weights("dense2")], g.incoming_weights("relu1")
        (['dense2'], [])
        """
        return list(self._incoming_weights.get(neurons, ()))

    def consumers(self, unit: str) -> list[Block]:
        """The blocks that read the values of the unit block ``unit`` as their ``src`` (weights,
        activations, softmax, losses), in graph order: the blocks whose messages ``unit`` receives.

        >>> import graphflow as gf
        >>> g = gf.build(gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
        >>> [(b.kind, b.name) for b in g.consumers("dense0")], [b.name for b in g.consumers("relu1")]
        ([('activation', 'relu1')], ['dense2'])
        """
        return list(self._consumers.get(unit, ()))

    def fan_out(self, unit: str) -> np.ndarray:
        """How many backward messages each unit of ``unit`` receives (one per consuming node)."""
        return messages_received(self.units[unit], self._consumers[unit])

    @property
    def groups(self) -> dict[str, list[str]]:
        """Learner group -> the slot keys using it, in graph order."""
        return self._slots_by("group")

    @property
    def norm_groups(self) -> dict[str, list[str]]:
        """Normalization group -> the slot keys using it, in graph order."""
        return self._slots_by("norm_group")

    def _slots_by(self, field: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s in self.slots.values():
            out.setdefault(getattr(s, field), []).append(s.key)
        return out

    # ------------------------------------------------------------------ ids
    def part_size(self, part: str) -> int:
        block, label = part.split("/")
        return self._part_block(block, label).size

    def _part_block(self, block: str, label: str) -> Block:
        if label == "w" and block in self.weights:
            return self.weights[block]
        unit = self.units.get(block)
        if unit is not None and (label == unit.label or (label == "sum" and isinstance(unit, NeuronNodes))):
            return unit
        raise GraphError(f"no nodes '{block}/{label}' in this graph; parts: {', '.join(self.parts())}")

    def parts(self) -> list[str]:
        """Every part (``<block>/<label>``: the nodes of one node kind in one block), in graph order."""
        out = []
        for b in self.blocks:
            if isinstance(b, NeuronNodes):
                out += [f"{b.name}/sum", f"{b.name}/b"]
            else:
                out.append(f"{b.name}/{b.label}")
        return out

    def node_id(self, part: str, flat: int) -> str:
        """The id of node number ``flat`` of a part (weights: in node order)."""
        block, label = part.split("/")
        b = self._part_block(block, label)
        if not 0 <= flat < b.size:
            raise GraphError(f"{part}: node {flat} out of range (size {b.size})")
        if isinstance(b, WeightNodes):
            if b.dense:
                return format_id(block, label, *divmod(flat, b.n_dst))
            return format_id(block, label, int(b.src_idx[flat]), int(b.dst_idx[flat]))
        return format_id(block, label, flat)

    def select(self, pattern: str) -> NodeSelection:
        """Nodes whose ids match ``pattern`` (``dense2/w[*,7]``, ``relu1/act[*]``, ``loss4/*``).

        >>> import graphflow as gf
        >>> g = gf.build(gf.stack(3, gf.Dense(2), gf.L2Loss()))
        >>> g.select("dense0/w[*,1]").ids()
        ['dense0/w[0,1]', 'dense0/w[1,1]', 'dense0/w[2,1]']
        """
        import fnmatch

        bglob, lglob, index = parse_pattern(pattern)
        parts: dict[str, np.ndarray] = {}
        for part in self.parts():
            block, label = part.split("/")
            if not (fnmatch.fnmatchcase(block, bglob) and fnmatch.fnmatchcase(label, lglob)):
                continue
            b = self._part_block(block, label)
            if index is None:
                sel = np.arange(b.size)
            elif isinstance(b, WeightNodes):
                if len(index) != 2:
                    raise GraphError(f"{pattern!r}: weight ids take two indices, as in '{block}/w[i,j]'")
                i, j = b.edges()
                sel = np.nonzero(match_index(index[0], i) & match_index(index[1], j))[0]
            else:
                if len(index) != 1:
                    raise GraphError(f"{pattern!r}: '{part}' ids take one index, as in '{part}[3]'")
                sel = np.nonzero(match_index(index[0], np.arange(b.size)))[0]
            if len(sel):
                parts[part] = sel
        if not parts:
            raise GraphError(f"{pattern!r} matches no node; parts of this graph: {', '.join(self.parts())}")
        return NodeSelection(pattern, parts, self)

    # ------------------------------------------------------------------ views
    def stats(self) -> dict:
        """Node counts per node kind, arrow counts, the number of learner and normalization groups,
        blocks and waves.

        Forward arrows: input -> weight -> neuron sum for every weight, sum -> bias per neuron,
        source -> activation, every softmax input -> every unit of that softmax (shared
        denominator), source and target -> loss. Backward arrows: loss, activation, softmax ->
        their source; bias -> each weight of its neuron (replication); weight -> its source unit
        (aggregation).
        """
        nodes = {k: 0 for k in kinds.NODE_KINDS}
        fwd = bwd = 0
        for b in self.blocks:
            if isinstance(b, WeightNodes):
                nodes["weight"] += b.size
                fwd += 2 * b.size
                bwd += 2 * b.size
            elif isinstance(b, NeuronNodes):
                nodes["neuron"] += b.size
                nodes["bias"] += b.size
                fwd += b.size
            elif isinstance(b, ActivationNodes):
                nodes["activation"] += b.size
                fwd += b.size
                bwd += b.size
            elif isinstance(b, SoftmaxNodes):
                nodes["softmax"] += b.size
                fwd += b.size * b.size
                bwd += b.size
            elif isinstance(b, LossNodes):
                nodes["loss"] += b.size
                fwd += 2 * b.size
                bwd += b.size
            else:
                nodes[b.kind] += b.size
        return {
            "nodes": nodes,
            "total_nodes": int(sum(nodes.values())),
            "forward_arrows": int(fwd),
            "backward_arrows": int(bwd),
            "learner_groups": len(self.groups),
            "normalization_groups": len(self.norm_groups),
            "blocks": len(self.blocks),
            "waves": len(self.waves),
        }

    def to_spec(self):
        """The spec this graph describes (spec -> graph -> spec is the identity)."""
        from graphflow.graph.build import graph_to_spec

        return graph_to_spec(self)

    def to_networkx(self, collapsed: bool = False, max_nodes: int = 20000):
        """A networkx DiGraph view; see :func:`graphflow.graph.views.to_networkx`."""
        from graphflow.graph.views import to_networkx

        return to_networkx(self, collapsed=collapsed, max_nodes=max_nodes)

    def __repr__(self) -> str:
        s = self.stats()
        return f"Graph({s['total_nodes']} nodes, {len(self.blocks)} blocks, {s['learner_groups']} learner groups)"

    def _repr_svg_(self) -> str:
        """What a notebook shows for a graph: its drawing collapsed to one box per block part, as
        SVG (Graphviz when installed, else the matplotlib fallback; see :func:`graphflow.viz.draw_graph`).

        The drawing code lives in :mod:`graphflow.viz`, which reads graphs; it is imported here,
        when a notebook asks, so that building a graph never loads it.

        >>> import graphflow as gf
        >>> g = gf.build(gf.stack(1, gf.Dense(2), gf.L2Loss()))
        >>> svg = g._repr_svg_()
        >>> svg.lstrip().startswith(("<?xml", "<svg")) and "dense0/w" in svg
        True
        """
        import tempfile
        from pathlib import Path

        from graphflow.viz.graph_drawing import draw_graph

        with tempfile.TemporaryDirectory() as tmp:
            return draw_graph(self, Path(tmp) / "graph.svg", collapsed=True).read_text()


def wiring_index(dag: nx.DiGraph, blocks) -> tuple[dict[str, list[Block]], dict[str, list[WeightNodes]]]:
    """From the block DAG: the blocks reading each unit block as their ``src`` (its consumers), and
    the weights blocks summing into each neurons block, both in the order of ``blocks``."""
    consumers: dict[str, list[Block]] = {b.name: [] for b in blocks if not isinstance(b, WeightNodes)}
    incoming: dict[str, list[WeightNodes]] = {b.name: [] for b in blocks if isinstance(b, NeuronNodes)}
    for b in blocks:
        for producer, _, via in dag.in_edges(block_key(b), data="via"):
            if via == "src":
                consumers[producer].append(b)
        for _, neurons, via in dag.out_edges(block_key(b), data="via"):
            if via == "dst":
                incoming[neurons].append(b)
    return consumers, incoming


def messages_received(unit: UnitBlock, consumers: list[Block]) -> np.ndarray:
    """How many backward messages each unit of ``unit`` receives from its ``consumers``: one from
    every node that reads it (a weights block: one per weight leaving the unit)."""
    counts = np.zeros(unit.size, dtype=np.int64)
    for c in consumers:
        counts += c.fan_out() if isinstance(c, WeightNodes) else 1
    return counts


def data_by_block(data, blocks: list, what: str) -> dict:
    """``{block name: data}`` for the input or target ``blocks``: ``data`` is one array (a graph with
    one such block) or a dict by block name; errors name what is missing."""
    if not isinstance(data, dict):
        if len(blocks) != 1:
            raise DataError(f"{what}: this graph has {len(blocks)} {what} blocks; pass a dict by name")
        return {blocks[0].name: data}
    for b in blocks:
        if b.name not in data:
            raise DataError(f"{what}: no data for block {b.name!r}")
    return data
