"""networkx views of a graph, materialized on demand: per scalar node, or collapsed to blocks.

Edges carry ``direction`` = ``forward`` or ``backward``; nodes carry ``kind``, ``group`` (learner
group, where the node has one) and ``label``.
"""

from __future__ import annotations

import networkx as nx

from graphflow.errors import GraphError
from graphflow.graph.blocks import (
    ActivationNodes,
    LossNodes,
    NeuronNodes,
    SoftmaxNodes,
    WeightNodes,
)
from graphflow.graph.ids import format_id


def _producer(graph, unit: str, k: int) -> str:
    """Id of the node whose value a consumer of unit ``unit``[k] reads (a bias for neuron blocks)."""
    b = graph.units[unit]
    return format_id(unit, b.label, k)


def to_networkx(graph, collapsed: bool = False, max_nodes: int = 20000) -> nx.MultiDiGraph:
    """The node graph as a networkx MultiDiGraph.

    >>> import graphflow as gf
    >>> g = gf.build(gf.stack(2, gf.Dense(2), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    >>> v = to_networkx(g)
    >>> v.nodes["dense0/w[1,0]"]["kind"], v.number_of_nodes()
    ('weight', 18)
    >>> sorted(to_networkx(g, collapsed=True).nodes)[:3]
    ['dense0/b', 'dense0/sum', 'dense0/w']
    """
    return _collapsed(graph) if collapsed else _per_scalar(graph, max_nodes)


def _group_of(graph, part: str) -> str | None:
    slot = graph.slots.get(part)
    return slot.group if slot else None


def _per_scalar(graph, max_nodes: int) -> nx.MultiDiGraph:
    total = graph.stats()["total_nodes"]
    if total > max_nodes:
        raise GraphError(f"{total} nodes is too many to draw one by one (limit {max_nodes}); use collapsed=True")
    g = nx.MultiDiGraph()
    for b in graph.blocks:
        if isinstance(b, WeightNodes):
            part = f"{b.name}/w"
            i, j = b.edges()
            for ii, jj in zip(i.tolist(), j.tolist()):
                wid = format_id(b.name, "w", ii, jj)
                g.add_node(wid, kind="weight", group=_group_of(graph, part), part=part, label=f"w{ii},{jj}")
                src = _producer(graph, b.src, ii)
                g.add_edge(src, wid, direction="forward")
                g.add_edge(wid, format_id(b.dst, "sum", jj), direction="forward")
                g.add_edge(format_id(b.dst, "b", jj), wid, direction="backward")
                g.add_edge(wid, src, direction="backward")
        elif isinstance(b, NeuronNodes):
            for k in range(b.size):
                s, bias = format_id(b.name, "sum", k), format_id(b.name, "b", k)
                g.add_node(s, kind="neuron", group=None, part=f"{b.name}/sum", label=f"Σ{k}")
                g.add_node(bias, kind="bias", group=_group_of(graph, f"{b.name}/b"), part=f"{b.name}/b", label=f"b{k}")
                g.add_edge(s, bias, direction="forward")
        else:
            part = f"{b.name}/{b.label}"
            for k in range(b.size):
                nid = format_id(b.name, b.label, k)
                label = b.fn_of(k) if isinstance(b, ActivationNodes) else f"{b.label}{k}"
                g.add_node(nid, kind=b.kind if b.kind != "activation" else "activation", group=_group_of(graph, part),
                           part=part, label=label)
            if isinstance(b, ActivationNodes):
                for k in range(b.size):
                    g.add_edge(_producer(graph, b.src, k), format_id(b.name, "act", k), direction="forward")
                    g.add_edge(format_id(b.name, "act", k), _producer(graph, b.src, k), direction="backward")
            elif isinstance(b, SoftmaxNodes):
                for k in range(b.size):
                    for q in range(b.size):
                        g.add_edge(_producer(graph, b.src, q), format_id(b.name, "unit", k), direction="forward")
                    g.add_edge(format_id(b.name, "unit", k), _producer(graph, b.src, k), direction="backward")
            elif isinstance(b, LossNodes):
                for k in range(b.size):
                    lid = format_id(b.name, "loss", k)
                    g.add_edge(_producer(graph, b.src, k), lid, direction="forward")
                    g.add_edge(format_id(b.target, "y", k), lid, direction="forward")
                    g.add_edge(lid, _producer(graph, b.src, k), direction="backward")
    return g


def _collapsed(graph) -> nx.MultiDiGraph:
    """One node per block part, with its node count; arrows between parts."""
    g = nx.MultiDiGraph()
    for b in graph.blocks:
        if isinstance(b, NeuronNodes):
            g.add_node(f"{b.name}/sum", kind="neuron", group=None, count=b.size, label=f"{b.name} Σ ×{b.size}")
            g.add_node(f"{b.name}/b", kind="bias", group=_group_of(graph, f"{b.name}/b"), count=b.size,
                       label=f"{b.name} b ×{b.size}")
            g.add_edge(f"{b.name}/sum", f"{b.name}/b", direction="forward")
        else:
            part = f"{b.name}/{b.label}"
            kind = "weight" if isinstance(b, WeightNodes) else b.kind
            g.add_node(part, kind=kind, group=_group_of(graph, part), count=b.size, label=f"{b.name} {b.label} ×{b.size}")

    def out_part(unit: str) -> str:
        return f"{unit}/{graph.units[unit].label}"

    for b in graph.blocks:
        if isinstance(b, WeightNodes):
            part = f"{b.name}/w"
            g.add_edge(out_part(b.src), part, direction="forward")
            g.add_edge(part, f"{b.dst}/sum", direction="forward")
            g.add_edge(f"{b.dst}/b", part, direction="backward")
            g.add_edge(part, out_part(b.src), direction="backward")
        elif isinstance(b, (ActivationNodes, SoftmaxNodes, LossNodes)):
            part = f"{b.name}/{b.label}"
            g.add_edge(out_part(b.src), part, direction="forward")
            g.add_edge(part, out_part(b.src), direction="backward")
            if isinstance(b, LossNodes):
                g.add_edge(out_part(b.target), part, direction="forward")
    return g
