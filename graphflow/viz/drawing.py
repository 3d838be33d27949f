"""What a picture of a graph shows, independent of how it is rendered.

A :class:`Drawing` lists the boxes (one per scalar node, or one per block part with its node
count), the arrows (forward or backward), the learner group of every box and the colour of every
group. The renderers (:mod:`graphflow.viz.dot` for Graphviz, :mod:`graphflow.viz.matplotlib_drawing`
without it) only decide where things go and how they look; they never read the graph itself.

>>> import graphflow as gf
>>> d = drawing_of(gf.build(gf.stack(2, gf.Dense(1), gf.L2Loss())))
>>> d.collapsed, len(d.boxes), [b.label for b in d.boxes if b.group == "dense0/w"]
(False, 8, ['w[0,0]', 'w[1,0]'])
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import networkx as nx

from graphflow.graph.blocks import ActivationNodes, LossNodes

COLLAPSE_ABOVE = 300
"""Graphs with more nodes than this are drawn collapsed to block parts unless told otherwise."""

FORWARD_COLOUR = "#000000"
BACKWARD_COLOUR = "#d62728"
UNGROUPED_FILL = {"input": "#eeeeee", "target": "#eeeeee", "neuron": "#ffffff"}

# ColorBrewer Set3 without its grey (grey marks nodes without a learner); more groups than this
# get evenly spaced pastel hues.
GROUP_PALETTE = ("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69",
                 "#fccde5", "#bc80bd", "#ccebc5", "#ffed6f")

_NOUNS = {"input": ("input", "inputs"), "target": ("target", "targets"), "weight": ("weight", "weights"),
          "bias": ("bias", "biases"), "neuron": ("sum", "sums"), "softmax": ("softmax unit", "softmax units")}
_SCALAR_PREFIX = {"input": "x", "target": "y", "weight": "w", "bias": "b", "neuron": "Σ", "softmax": "sm"}


@dataclass(frozen=True)
class Box:
    """One drawn node: a scalar node, or (collapsed) all nodes of one block part."""

    id: str
    """Node id (``dense0/w[1,2]``) or block part (``dense0/w``)."""
    label: str
    kind: str
    """Node kind: input, weight, neuron, bias, activation, softmax, loss or target."""
    group: str | None
    """Learner group, or None for nodes without a learner (inputs, targets, neuron sums)."""
    part: str
    """The block part (``dense0/w``) the node belongs to."""
    count: int = 1

    @property
    def named_label(self) -> str:
        """The label with the node's block in front (``dense0 w[0,0]``), for pictures that draw no
        box around each block part; collapsed boxes already start with their part.

        >>> Box("dense0/w[0,1]", "w[0,1]", "weight", "dense0/w", "dense0/w").named_label
        'dense0 w[0,1]'
        """
        block = self.part.split("/")[0]
        return self.label if self.label.startswith(self.part) else f"{block} {self.label}"


@dataclass(frozen=True)
class Arrow:
    """One drawn arrow between two boxes."""

    src: str
    dst: str
    direction: str
    """``forward`` or ``backward``."""


@dataclass(frozen=True)
class Legend:
    """One learner group as the legend shows it."""

    group: str
    colour: str
    kind: str
    members: tuple[str, ...]
    nodes: int

    @property
    def text(self) -> str:
        members = "" if self.members == (self.group,) else f" = {' + '.join(self.members)}"
        return f"{self.group}{members} ({self.kind}, {self.nodes:,} node{'s' if self.nodes != 1 else ''})"


@dataclass(frozen=True)
class Drawing:
    """Boxes, arrows and the group legend of one picture of a graph."""

    title: str
    collapsed: bool
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]
    legend: tuple[Legend, ...]
    notes: tuple[str, ...] = ()
    """What the picture must say about how it was drawn (collapsed, laid out in tiles), one line each."""

    @property
    def colours(self) -> dict[str, str]:
        """Learner group -> fill colour."""
        return {entry.group: entry.colour for entry in self.legend}

    def fill(self, box: Box) -> str:
        """The fill colour of a box: its group's colour, or a neutral one."""
        if box.group is not None:
            return self.colours[box.group]
        return UNGROUPED_FILL.get(box.kind, "#ffffff")


def group_colours(groups: list[str]) -> dict[str, str]:
    """A distinct fill colour for every learner group, in order.

    >>> group_colours(["W", "b"])
    {'W': '#8dd3c7', 'b': '#ffffb3'}
    >>> len(set(group_colours([f"g{k}" for k in range(30)]).values()))
    30
    """
    colours = {}
    for k, group in enumerate(groups):
        if k < len(GROUP_PALETTE):
            colours[group] = GROUP_PALETTE[k]
        else:
            hue = ((k - len(GROUP_PALETTE)) * 0.618033988749895) % 1.0
            r, g, b = colorsys.hls_to_rgb(hue, 0.8, 0.65)
            colours[group] = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
    return colours


def should_collapse(graph, collapsed: bool | None = None, threshold: int = COLLAPSE_ABOVE) -> bool:
    """Whether to draw ``graph`` collapsed: as told, else when it has more than ``threshold`` nodes.

    >>> import graphflow as gf
    >>> from graphflow.presets import mnist
    >>> should_collapse(gf.build(mnist())), should_collapse(gf.build(mnist()), collapsed=False)
    (True, False)
    """
    if collapsed is not None:
        return bool(collapsed)
    return graph.stats()["total_nodes"] > threshold


def drawing_of(graph, collapsed: bool | None = None, threshold: int = COLLAPSE_ABOVE) -> Drawing:
    """Describe the picture of ``graph``: per scalar node, or collapsed to block parts.

    Parameters
    ----------
    graph
        A built :class:`graphflow.graph.Graph`.
    collapsed
        True or False to force; None chooses collapsed above ``threshold`` nodes.
    threshold
        Node count above which a graph is drawn collapsed when ``collapsed`` is None.

    >>> import graphflow as gf
    >>> from graphflow.presets import mnist
    >>> d = drawing_of(gf.build(mnist()))
    >>> d.collapsed, [b.label for b in d.boxes][:2]
    (True, ['input/x\\n144 inputs', 'target/y\\n10 targets'])
    """
    collapse = should_collapse(graph, collapsed, threshold)
    view = graph.to_networkx(collapsed=collapse)
    boxes = tuple(_box(graph, node, attrs, collapse) for node, attrs in view.nodes(data=True))
    arrows = tuple(Arrow(u, v, d["direction"]) for u, v, d in view.edges(data=True))
    legend = learner_group_legend(graph)
    stats = graph.stats()
    title = (f"{stats['total_nodes']:,} nodes, {stats['forward_arrows']:,} forward and "
             f"{stats['backward_arrows']:,} backward arrows, {stats['learner_groups']} learner groups"
             + (" (collapsed to block parts)" if collapse else ""))
    notes = ()
    if collapse:
        why = (f"{stats['total_nodes']:,} nodes are more than the {threshold:,} drawn one box per node; "
               "collapsed=False or --per-node draws every node" if collapsed is None else "as asked")
        notes = (f"collapsed: one box per block part, with its node count ({why})",)
    return Drawing(title, collapse, boxes, arrows, legend, notes)


def learner_group_legend(graph) -> tuple[Legend, ...]:
    """One legend entry per learner group of ``graph``: colour, node kind, member slots, node count.

    >>> import graphflow as gf
    >>> from graphflow.presets import mnist
    >>> [entry.text for entry in learner_group_legend(gf.build(mnist()))][:2]
    ['W = dense0/w + dense2/w (weight, 7,700 nodes)', 'b = dense0/b + dense2/b (bias, 60 nodes)']
    """
    colours = group_colours(list(graph.groups))
    legend = []
    for group, members in graph.groups.items():
        slots = [graph.slots[m] for m in members]
        kind = slots[0].role if slots[0].loss_fn is None else f"{slots[0].loss_fn} loss"
        legend.append(Legend(group, colours[group], kind, tuple(members), sum(s.size for s in slots)))
    return tuple(legend)


def _box(graph, node: str, attrs: dict, collapsed: bool) -> Box:
    kind = attrs["kind"]
    if collapsed:
        part = node
        block = graph.units.get(part.split("/")[0])
        count = attrs["count"]
        if kind == "activation":
            noun = _activation_summary(block)
        elif kind == "loss":
            noun = f"{block.fn} loss" + ("es" if count != 1 else "")
        else:
            noun = _NOUNS[kind][count != 1]
        return Box(node, f"{part}\n{count:,} {noun}", kind, attrs["group"], part, count)
    part = attrs["part"]
    index = node[node.index("[") + 1:-1]
    block = graph.units.get(part.split("/")[0])
    if kind == "activation":
        prefix = attrs["label"]  # the unit's own function (layers may mix them)
    elif kind == "loss":
        prefix = block.fn
    else:
        prefix = _SCALAR_PREFIX[kind]
    return Box(node, f"{prefix}[{index}]", kind, attrs["group"], part)


def _activation_summary(block: ActivationNodes) -> str:
    if len(block.fns) == 1:
        return block.fns[0]
    counts: dict[str, int] = {}
    for fn in block.fns:
        counts[fn] = counts.get(fn, 0) + 1
    return "activations: " + ", ".join(f"{n} {fn}" for fn, n in counts.items())


def layered_positions(drawing: Drawing) -> dict[str, tuple[int, float]]:
    """(layer, rank) of every box for a left-to-right layered layout of the forward arrows.

    Inputs sit in layer 0; every other box sits just left of its first consumer, and boxes that
    feed nothing at the longest forward path reaching them (so a skip connection's weights sit
    next to the neurons they feed, and targets next to their losses). Inside a
    layer, boxes are ordered by the mean rank of their forward predecessors (then of their
    successors), keeping the boxes of one block part together; arrows stay short and mostly parallel.

    >>> import graphflow as gf
    >>> d = drawing_of(gf.build(gf.stack(2, gf.Dense(1), gf.L2Loss())))
    >>> pos = layered_positions(d)
    >>> pos["input/x[0]"][0], pos["dense0/w[0,0]"][0], pos["loss1/loss[0]"][0], pos["target/y[0]"][0]
    (0, 1, 4, 3)
    """
    forward = nx.DiGraph()
    forward.add_nodes_from(b.id for b in drawing.boxes)
    forward.add_edges_from((a.src, a.dst) for a in drawing.arrows if a.direction == "forward")
    kinds = {b.id: b.kind for b in drawing.boxes}
    layer: dict[str, int] = {}
    for node in nx.topological_sort(forward):
        preds = list(forward.predecessors(node))
        layer[node] = max((layer[p] + 1 for p in preds), default=0)
    for node in reversed(list(nx.topological_sort(forward))):
        if kinds[node] != "input" and forward.out_degree(node):
            layer[node] = min(layer[s] for s in forward.successors(node)) - 1

    by_layer: dict[int, list[str]] = {}
    for node in forward.nodes:  # drawing order: graph order
        by_layer.setdefault(layer[node], []).append(node)
    rank = {node: float(k) for members in by_layer.values() for k, node in enumerate(members)}

    parts = {b.id: b.part for b in drawing.boxes}

    def reorder(neighbours, layers) -> None:
        for lay in layers:
            members = by_layer[lay]
            centre = {}
            for node in members:
                near = [rank[n] for n in neighbours(node)]
                centre[node] = sum(near) / len(near) if near else rank[node]
            by_part: dict[str, list[float]] = {}
            for node in members:
                by_part.setdefault(parts[node], []).append(centre[node])
            part_centre = {part: (sum(v) / len(v), k) for k, (part, v) in enumerate(by_part.items())}
            # The nodes of one block part stay together, parts ordered by where their nodes pull.
            members.sort(key=lambda node: (part_centre[parts[node]], centre[node]))
            for k, node in enumerate(members):
                rank[node] = float(k)

    reorder(forward.predecessors, sorted(by_layer)[1:])
    reorder(forward.successors, sorted(by_layer, reverse=True)[1:])
    return {node: (layer[node], rank[node]) for node in forward.nodes}
