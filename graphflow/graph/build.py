"""Spec -> graph: resolve names, wire blocks into the block DAG, validate the structure, assign
slots to learner groups and normalization groups.

Every error names the block, node or field at fault. The reverse direction
(:func:`graph_to_spec`) writes the spec back, so that spec -> graph -> spec is the identity. This
module reads specs and writes :class:`~graphflow.graph.graph.Graph` objects; it never knows how a
graph is scheduled or run.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import networkx as nx
import numpy as np

from graphflow.errors import GraphError, GraphWarning
from graphflow.graph import kinds
from graphflow.graph.blocks import (
    ActivationNodes,
    Block,
    InputNodes,
    LossNodes,
    NeuronNodes,
    SoftmaxNodes,
    TargetNodes,
    WeightNodes,
    block_key,
)
from graphflow.graph.graph import Graph, Slot, messages_received, wiring_index
from graphflow.graph.ids import format_id
from graphflow.graph.memory import INT64_MAX, require_memory
from graphflow.spec import graph as S
from graphflow.spec import parse_graph_spec

WEIGHT_SOURCES = (InputNodes, NeuronNodes, ActivationNodes, SoftmaxNodes)
SIZED_BY_SRC = (S.ActivationBlock, S.SoftmaxBlock, S.LossBlock)
"""Spec blocks with as many units as the block they read (``src``)."""
UNIT_SOURCE_KINDS = {
    "activation": (("neurons",), "activations read neuron blocks"),
    "softmax": (("neurons",), "a softmax reads a neuron block"),
    "loss": (("neurons", "activation", "softmax"), "a loss reads neurons, activations or a softmax"),
}
"""The block kinds that each block kind may read (``src``), and how to say so."""


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def build(spec) -> Graph:
    """Build and validate the node graph of a spec (a pydantic spec, a dict, JSON text or a DSL builder).

    >>> import graphflow as gf
    >>> build({"kind": "stack", "inputs": 1, "layers": [{"kind": "dense", "units": 1}, {"kind": "loss", "fn": "l2"}]})
    Graph(6 nodes, 5 blocks, 3 learner groups)
    """
    if hasattr(spec, "spec") and callable(spec.spec):
        spec = spec.spec()
    if isinstance(spec, (dict, str)):
        spec = parse_graph_spec(spec)
    if not isinstance(spec, (S.StackSpec, S.FreeFormSpec)):
        raise GraphError(f"cannot build a graph from {type(spec).__name__}")
    check_sizes(spec)  # before any array is allocated
    blocks = _stack_blocks(spec) if isinstance(spec, S.StackSpec) else _freeform_blocks(spec)
    dag = block_dag(blocks)
    _check_wiring(blocks, dag)
    _warn_cross_entropy_without_softmax(blocks)
    waves = block_waves(dag, blocks)
    ordered = [b for wave in waves for b in wave]
    slots = _assign_groups(ordered, spec.sharing, spec.groups)
    return Graph(ordered, slots, waves, dag, spec)


def _warn_cross_entropy_without_softmax(blocks) -> None:
    """A cross-entropy loss reads probabilities: on anything but a softmax it is rarely meant."""
    units = {b.name: b for b in blocks if not isinstance(b, WeightNodes)}  # a weight block may share its neurons' name
    for b in blocks:
        if isinstance(b, LossNodes) and b.fn == "ce" and not isinstance(units.get(b.src), SoftmaxNodes):
            warnings.warn(f"loss {b.name!r}: cross-entropy on {b.src!r} ({getattr(units.get(b.src), 'kind', '?')} block), "
                          f"not on a softmax; it clips its input to (0, 1) and reads it as probabilities", GraphWarning,
                          stacklevel=3)


# ---------------------------------------------------------------------------------------------
# Sizes and memory, from the spec alone (Python integers: nothing allocated, nothing overflows)


@dataclass(frozen=True)
class BlockSize:
    """What one block of a spec will hold once built, computed from the spec without building it."""

    kind: str
    """Block kind: input, target, neurons, weights, activation, softmax or loss."""
    name: str
    nodes: int
    """Scalar nodes of the block (a neuron block: its sums and its biases)."""
    units: int
    """Units (a weights block: its weight nodes)."""
    build_bytes: int
    """Bytes :func:`build` allocates for the block, at most (index arrays, masks, fan counts)."""
    shape: tuple[int, int] | None = None
    """A weights block: (source units, destination neurons)."""

    def describe(self) -> str:
        what = {"weights": "weight nodes", "neurons": "neurons"}.get(self.kind, "units")
        return f"{self.kind} {self.name!r}: {_count(self.units)} {what}"


def _num(n: int) -> str:
    """An integer from a spec, for a message (Python will not print one of more than 4300 digits)."""
    return str(n) if n.bit_length() <= 1000 else f"about {'-' if n < 0 else ''}10^{int(math.log10(abs(n)))}"


def _count(n: int) -> str:
    """An integer for a message: ``1,000,000`` or ``10^5000`` (Python will not print huge ones)."""
    if n.bit_length() > 100:
        return f"about 10^{int(math.log10(n))}"
    return f"{n:,}"


def block_sizes(spec) -> list[BlockSize]:
    """Node counts and build memory of every block of a (validated) graph spec, in spec order.

    Sizes that the spec leaves to references it cannot resolve count as 0: :func:`build` names
    such errors itself.

    >>> import graphflow as gf
    >>> [(b.name, b.nodes) for b in block_sizes(gf.stack(3, gf.Dense(2), gf.L2Loss()))]
    [('input', 3), ('dense0', 6), ('dense0', 4), ('target', 2), ('loss1', 2)]
    """
    if hasattr(spec, "spec") and callable(spec.spec):
        spec = spec.spec()
    if isinstance(spec, (dict, str)):
        spec = parse_graph_spec(spec)
    out: list[BlockSize] = []

    def unit(kind: str, name: str, size: int, extra: int = 0):
        # fan-out counts (int64) and their == 0 test (bool) in _check_wiring; neurons: fan-in too
        per = 18 if kind == "neurons" else 9
        out.append(BlockSize(kind, name, 2 * size if kind == "neurons" else size, size, per * size + extra))

    def dense(name: str, n_src: int, n_dst: int):
        # no index arrays; fan-out / fan-in counts of n_src and n_dst entries while wiring is checked
        out.append(BlockSize("weights", name, n_src * n_dst, n_src * n_dst, 8 * (n_src + n_dst), (n_src, n_dst)))

    if isinstance(spec, S.StackSpec):
        unit("input", "input", spec.inputs)
        size = spec.inputs
        for p, layer in enumerate(spec.layers):
            name = default_layer_name(layer, p)
            if isinstance(layer, S.DenseLayer):
                dense(name, size, layer.units)
                unit("neurons", name, layer.units)
                size = layer.units
            elif isinstance(layer, S.LossLayer):
                unit("target", "target", size)
                unit("loss", name, size)
            else:
                fn_list = isinstance(getattr(layer, "fn", None), list)
                unit(layer.kind, name, size, 8 * size if fn_list else 0)
        return out

    sizes = _unit_sizes(spec)
    for b in spec.blocks:
        if isinstance(b, S.WeightBlock):
            n_src, n_dst = sizes.get(b.src, 0), sizes.get(b.dst, 0)
            if b.mask is not None:
                entries = sum(len(row) for row in b.mask)
                ones = sum(row.count(1) for row in b.mask)
                # the mask as an array and its tests, then the int64 (i, j) of each weight, copied
                out.append(BlockSize("weights", b.name, ones, ones, 11 * entries + 32 * ones + 8 * (n_src + n_dst),
                                     (n_src, n_dst)))
            elif b.edges is not None:
                # (i, j) pairs, keys, sort and unique, the sorted (i, j) and the given order
                m = len(b.edges)
                out.append(BlockSize("weights", b.name, m, m, 96 * m + 8 * (n_src + n_dst), (n_src, n_dst)))
            else:
                dense(b.name, n_src, n_dst)
        elif isinstance(b, S.NeuronBlock):
            unit("neurons", b.name, b.size, 48 * b.size if b.bias_edges is not None else 0)
        elif isinstance(b, (S.InputBlock, S.TargetBlock)):
            unit(b.kind, b.name, b.size)
        else:
            size = sizes.get(b.name, 0)
            unit(b.kind, b.name, size, 8 * size if isinstance(getattr(b, "fn", None), list) else 0)
    return out


def estimate_bytes(spec) -> int:
    """Bytes :func:`build` needs for the graph of ``spec``, from the spec alone (no array allocated).

    Later stages add their own needs (engine state per node and task, pools of initial networks)
    and check the sum with :func:`graphflow.graph.memory.require_memory`.

    >>> import graphflow as gf
    >>> estimate_bytes(gf.stack(784, gf.Dense(1000), gf.ReLU(), gf.Dense(10), gf.Softmax(), gf.CrossEntropy())) < 10**6
    True
    """
    return sum(b.build_bytes for b in block_sizes(spec))


def check_sizes(spec, available: int | None = None) -> list[BlockSize]:
    """Refuse a spec whose node counts do not fit 64-bit indices, or whose graph needs more memory
    to build than is available; returns :func:`block_sizes`.

    >>> import graphflow as gf
    >>> check_sizes(gf.stack(2**62, gf.Dense(4), gf.L2Loss()))
    Traceback (most recent call last):
    ...
    graphflow.errors.GraphError: weights 'dense0': 4,611,686,018,427,387,904 x 4 = 18,446,744,073,709,551,616 weight nodes, more than a 64-bit index holds (at most 2^63 - 1)
    """
    sizes = block_sizes(spec)
    for b in sizes:
        if b.units > INT64_MAX or b.nodes > INT64_MAX:
            if b.kind == "weights" and b.units > INT64_MAX:
                src, dst = b.shape or (0, 0)
                shape = f"{_count(src)} x {_count(dst)} = " if src * dst == b.units else ""
                raise GraphError(f"weights {b.name!r}: {shape}{_count(b.units)} weight nodes, more than a 64-bit index "
                                 "holds (at most 2^63 - 1)")
            raise GraphError(f"{b.describe()}: more than a 64-bit index holds (at most 2^63 - 1 nodes)")
    total = sum(b.nodes for b in sizes)
    if total > INT64_MAX:
        biggest = max(sizes, key=lambda b: b.nodes)
        raise GraphError(f"the graph has {_count(total)} nodes, more than a 64-bit index holds "
                         f"(at most 2^63 - 1; largest block: {biggest.describe()})")
    if sizes:
        biggest = max(sizes, key=lambda b: b.build_bytes)
        require_memory(sum(b.build_bytes for b in sizes), "graph", f"largest block: {biggest.describe()}",
                       available=available)
    return sizes


# ---------------------------------------------------------------------------------------------
# Stacks


def default_layer_name(layer, position: int) -> str:
    if layer.name:
        return layer.name
    if isinstance(layer, S.ActivationLayer):
        return f"{layer.fn}{position}" if isinstance(layer.fn, str) else f"mixed{position}"
    return f"{layer.kind}{position}"


def _stack_blocks(spec: S.StackSpec) -> list[Block]:
    losses = [p for p, layer in enumerate(spec.layers) if isinstance(layer, S.LossLayer)]
    if losses != [len(spec.layers) - 1]:
        raise GraphError("stack: exactly one loss layer, and it must be the last layer "
                         f"(loss layers at positions {losses} of {len(spec.layers)})")
    blocks: list[Block] = [InputNodes("input", spec.inputs)]
    prev, size = "input", spec.inputs
    prev_dense = False
    names = {"input", "target"}
    for p, layer in enumerate(spec.layers):
        name = default_layer_name(layer, p)
        if name in names:
            raise GraphError(f"layer {p}: duplicate layer name {name!r}")
        names.add(name)
        if isinstance(layer, S.DenseLayer):
            blocks.append(WeightNodes(name, prev, name, size, layer.units))
            blocks.append(NeuronNodes(name, layer.units))
            size = layer.units
        elif isinstance(layer, S.ActivationLayer):
            if not prev_dense:  # activations read neuron sums, as in free-form graphs
                raise GraphError(f"layer {p} ({name}): an activation must follow a dense layer, not {prev!r}")
            blocks.append(ActivationNodes(name, prev, size, _activation_fns(layer.fn, size, name)))
        elif isinstance(layer, S.SoftmaxLayer):
            if not prev_dense:
                raise GraphError(f"layer {p} ({name}): a softmax must follow a dense layer, not {prev!r}")
            blocks.append(SoftmaxNodes(name, prev, size))
        else:
            if prev == "input":
                raise GraphError(f"layer {p} ({name}): a loss needs a dense layer before it")
            blocks.append(TargetNodes("target", size))
            blocks.append(LossNodes(name, prev, "target", layer.fn, size))
        prev = name
        prev_dense = isinstance(layer, S.DenseLayer)
    return blocks


def _activation_fns(fn, size: int, where: str) -> tuple[str, ...]:
    fns = (fn,) if isinstance(fn, str) else tuple(fn)
    if len(fns) not in (1, size):
        raise GraphError(f"{where}: {len(fns)} activation functions for {size} units (give one, or one per unit)")
    unknown = [f for f in fns if f not in kinds.ACTIVATIONS]
    if unknown:
        raise GraphError(f"{where}: unknown activation {unknown[0]!r}; known: {sorted(kinds.ACTIVATIONS)}")
    return fns


# ---------------------------------------------------------------------------------------------
# Free-form graphs


def _freeform_blocks(spec: S.FreeFormSpec) -> list[Block]:
    units: dict[str, Block] = {}
    weight_names: set[str] = set()
    for b in spec.blocks:
        if isinstance(b, S.WeightBlock):
            if b.name in weight_names:
                raise GraphError(f"duplicate weights block {b.name!r}")
            weight_names.add(b.name)
        elif b.name in units:
            raise GraphError(f"duplicate block {b.name!r} (a {units[b.name].kind} block and a {b.kind} block)")
        else:
            units[b.name] = b
    for w in spec.blocks:
        if isinstance(w, S.WeightBlock) and w.name in units and w.name != w.dst:
            raise GraphError(f"duplicate block {w.name!r}: a weights block may share its name only with its dst neurons")

    def src_block(owner: str, field: str, name: str, allowed: tuple, what: str) -> Block:
        blk = resolved.get(name)
        if blk is None:
            raise GraphError(f"{owner}: {field} {name!r} is not a block of this graph (dangling reference)")
        if not isinstance(blk, allowed):
            raise GraphError(f"{owner}: {field} {name!r} is {_a(blk.kind)} block; {what}")
        return blk

    spec_kinds = {b.name: b.kind for b in spec.blocks if not isinstance(b, S.WeightBlock)}
    for b in spec.blocks:
        allowed = UNIT_SOURCE_KINDS.get(b.kind)
        if allowed and b.src in spec_kinds and spec_kinds[b.src] not in allowed[0]:
            raise GraphError(f"{b.kind} {b.name!r}: src {b.src!r} is {_a(spec_kinds[b.src])} block; {allowed[1]}")

    resolved: dict[str, Block] = {}
    for b in spec.blocks:  # unit blocks whose size the spec gives
        if isinstance(b, S.InputBlock):
            resolved[b.name] = InputNodes(b.name, b.size)
        elif isinstance(b, S.TargetBlock):
            resolved[b.name] = TargetNodes(b.name, b.size)
        elif isinstance(b, S.NeuronBlock):
            resolved[b.name] = NeuronNodes(b.name, b.size, _bias_edges(b))
    sizes = _unit_sizes(spec)
    for b in spec.blocks:  # unit blocks sized by the block they read (its kind is checked above)
        if not isinstance(b, SIZED_BY_SRC) or b.name not in sizes:
            continue
        size = sizes[b.name]
        if isinstance(b, S.ActivationBlock):
            fns = _activation_fns(b.fn, size, f"activation {b.name!r}")
            resolved[b.name] = ActivationNodes(b.name, b.src, size, fns, fn_list=not isinstance(b.fn, str))
        elif isinstance(b, S.SoftmaxBlock):
            resolved[b.name] = SoftmaxNodes(b.name, b.src, size)
        else:
            if b.target is None:
                raise GraphError(f"loss {b.name!r}: no target (every loss node compares its input with a target node)")
            tgt = src_block(f"loss {b.name!r}", "target", b.target, (TargetNodes,), "the target must be a target block")
            if tgt.size != size:
                raise GraphError(f"loss {b.name!r}: target {b.target!r} has {tgt.size} units but src {b.src!r} has {size}")
            resolved[b.name] = LossNodes(b.name, b.src, b.target, b.fn, size)
    for b in spec.blocks:
        if isinstance(b, SIZED_BY_SRC) and b.name not in resolved:
            raise GraphError(f"{b.kind} {b.name!r}: src {b.src!r} is not a block of this graph (dangling reference)")

    built: list[Block] = []
    for b in spec.blocks:
        if isinstance(b, S.WeightBlock):
            owner = f"weights {b.name!r}"
            src = src_block(owner, "src", b.src, WEIGHT_SOURCES, "weights read input, neuron, activation or softmax units")
            dst = src_block(owner, "dst", b.dst, (NeuronNodes,), "weights sum into a neuron block")
            built.append(_weight_nodes(b, src.size, dst.size))
        else:
            built.append(resolved[b.name])
    return built


def _unit_sizes(spec: S.FreeFormSpec) -> dict[str, int]:
    """The number of units of each unit block of a free-form spec, as far as it resolves.

    Input, target and neurons blocks give their size; activation, softmax and loss blocks have that
    of the block they read (``src``), which the spec may list later. The sizes spread along the
    ``src`` references, one generation at a time from the blocks that give theirs; a block whose
    ``src`` is no unit block, or that reads itself through a cycle, is left out (:func:`build`
    names the error).

    >>> import graphflow as gf
    >>> net = gf.FreeForm()
    >>> _ = net.loss(net.activation(net.neurons(3, name="h"), "relu", name="a"), "l2", name="fit")
    >>> _unit_sizes(net.spec())
    {'h': 3, 'fit_target': 3, 'a': 3, 'fit': 3}
    """
    sizes: dict[str, int] = {}
    for b in spec.blocks:
        if isinstance(b, (S.InputBlock, S.TargetBlock, S.NeuronBlock)):
            sizes.setdefault(b.name, b.size)
    reads = nx.DiGraph()  # an edge from each block to the blocks sized by it
    reads.add_nodes_from(sizes)
    reads.add_edges_from((b.src, b.name) for b in spec.blocks if isinstance(b, SIZED_BY_SRC) and b.name not in sizes)
    for generation in list(nx.bfs_layers(reads, list(sizes)))[1:]:
        for name in generation:
            sizes[name] = next(sizes[src] for src in reads.predecessors(name) if src in sizes)
    return sizes


def _bias_edges(b: S.NeuronBlock) -> np.ndarray | None:
    if b.bias_edges is None:
        return None
    for bias, neuron in b.bias_edges:  # in Python integers first: an index past int64 names the edge too
        for what, v in (("bias", bias), ("neuron", neuron)):
            if not 0 <= v < b.size:
                raise GraphError(f"neurons {b.name!r}: bias edge ({_num(bias)}, {_num(neuron)}) names {what} {_num(v)}, "
                                 f"which does not exist (size {b.size}; dangling node)")
    edges = np.asarray(b.bias_edges, dtype=np.int64).reshape(-1, 2)
    fed = np.bincount(edges[:, 0], minlength=b.size)
    if (fed > 1).any():
        bias = int(np.argmax(fed > 1))
        neurons = edges[edges[:, 0] == bias, 1]
        raise GraphError(f"{format_id(b.name, 'b', bias)}: a bias feeds exactly one neuron, this one feeds "
                         f"{len(neurons)}: {', '.join(format_id(b.name, 'sum', n) for n in neurons)}")
    has = np.bincount(edges[:, 1], minlength=b.size)
    if (has != 1).any():
        neuron = int(np.argmax(has != 1))
        raise GraphError(f"{format_id(b.name, 'sum', neuron)}: every neuron has exactly one bias, this one has {has[neuron]}")
    return edges


def _weight_nodes(b: S.WeightBlock, n_src: int, n_dst: int) -> WeightNodes:
    owner = f"weights {b.name!r}"
    if b.fan_in is not None and b.fan_in != n_src:
        raise GraphError(f"{owner}: declared fan-in {_num(b.fan_in)} does not match src {b.src!r} with {n_src} units")
    if b.mask is not None and b.edges is not None:
        raise GraphError(f"{owner}: give a mask or edges, not both")
    if b.mask is not None:
        rows = len(b.mask)
        if rows != n_src:
            raise GraphError(f"{owner}: mask has {rows} rows but src {b.src!r} has {n_src} units (fan-in mismatch)")
        for r, row in enumerate(b.mask):
            if len(row) != n_dst:
                raise GraphError(f"{owner}: mask row {r} has {len(row)} entries but dst {b.dst!r} has {n_dst} neurons")
        if not set().union(*map(set, b.mask)) <= {0, 1}:
            raise GraphError(f"{owner}: mask entries must be 0 or 1")
        m = np.asarray(b.mask, dtype=np.int8).reshape(n_src, n_dst)
        i, j = np.nonzero(m)
        return WeightNodes(b.name, b.src, b.dst, n_src, n_dst, i.astype(np.int64), j.astype(np.int64), "mask", b.fan_in)
    if b.edges is not None:
        for i, j in b.edges:  # in Python integers first: an index past int64 names the edge too
            if not 0 <= i < n_src:
                raise GraphError(f"{owner}: edge ({_num(i)}, {_num(j)}) reads {b.src}[{_num(i)}], "
                                 f"which does not exist ({b.src!r} has {n_src} units; dangling node)")
            if not 0 <= j < n_dst:
                raise GraphError(f"{owner}: edge ({_num(i)}, {_num(j)}) feeds {b.dst}/sum[{_num(j)}], which does not exist "
                                 f"({b.dst!r} has {n_dst} neurons; dangling node)")
        e = np.asarray(b.edges, dtype=np.int64).reshape(-1, 2)
        keys = e[:, 0] * n_dst + e[:, 1]
        uniq, counts = np.unique(keys, return_counts=True)
        if (counts > 1).any():
            i, j = divmod(int(uniq[counts > 1][0]), n_dst)
            raise GraphError(f"{owner}: duplicate node {format_id(b.name, 'w', i, j)} (edge ({i}, {j}) listed twice)")
        order = np.argsort(keys, kind="stable")
        w = WeightNodes(b.name, b.src, b.dst, n_src, n_dst, e[order, 0], e[order, 1], "edges", b.fan_in)
        w.given_order = order
        return w
    return WeightNodes(b.name, b.src, b.dst, n_src, n_dst, None, None, "dense", b.fan_in)


# ---------------------------------------------------------------------------------------------
# Whole-graph checks


def block_dag(blocks: list[Block]) -> nx.DiGraph:
    """The block DAG of ``blocks`` (kept as :attr:`graphflow.graph.Graph.dag`); a cycle is an error
    naming its blocks.

    >>> import graphflow as gf
    >>> dag = gf.build(gf.stack(2, gf.Dense(1), gf.L2Loss())).dag
    >>> sorted(dag.edges(data="via"))
    [('dense0', 'loss1', 'src'), ('input', 'weights:dense0', 'src'), ('target', 'loss1', 'target'), ('weights:dense0', 'dense0', 'dst')]
    """
    dag = nx.DiGraph()
    for b in blocks:
        dag.add_node(block_key(b), block=b)
    for b in blocks:
        if isinstance(b, WeightNodes):
            dag.add_edge(b.src, block_key(b), via="src")
            dag.add_edge(block_key(b), b.dst, via="dst")
        elif isinstance(b, (ActivationNodes, SoftmaxNodes, LossNodes)):
            dag.add_edge(b.src, b.name, via="src")
            if isinstance(b, LossNodes):
                dag.add_edge(b.target, b.name, via="target")
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        return dag
    path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
    raise GraphError(f"cycle: {path} (the forward graph must be acyclic; split recurrent neurons into separate blocks)")


def block_waves(dag: nx.DiGraph, blocks: list[Block]) -> list[list[Block]]:
    """The topological generations of the block DAG, each in the order of ``blocks``: a block's
    inputs all lie in earlier waves."""
    order = {block_key(b): k for k, b in enumerate(blocks)}
    return [[dag.nodes[k]["block"] for k in sorted(gen, key=order.get)] for gen in nx.topological_generations(dag)]


def _check_wiring(blocks: list[Block], dag: nx.DiGraph) -> None:
    """A graph has a loss and an input, and no dangling node: every unit but the inputs and
    targets feeds something (otherwise no message ever reaches it), every neuron has an incoming
    weight."""
    if not any(isinstance(b, LossNodes) for b in blocks):
        raise GraphError("the graph has no loss block: messages are seeded at loss nodes")
    if not any(isinstance(b, InputNodes) for b in blocks):
        raise GraphError("the graph has no input block")
    consumers, incoming = wiring_index(dag, blocks)
    for b in blocks:
        if isinstance(b, (NeuronNodes, ActivationNodes, SoftmaxNodes)):
            idle = np.nonzero(messages_received(b, consumers[b.name]) == 0)[0]
            if len(idle):
                label = "b" if isinstance(b, NeuronNodes) else b.label
                ids = ", ".join(format_id(b.name, label, k) for k in idle[:5]) + (" ..." if len(idle) > 5 else "")
                raise GraphError(f"dangling node: {ids} feeds nothing (no path to a loss; no message can reach it)")
        if isinstance(b, NeuronNodes):
            fan_in = sum((w.fan_in_counts() for w in incoming[b.name]), np.zeros(b.size, dtype=np.int64))
            empty = np.nonzero(fan_in == 0)[0]
            if len(empty):
                ids = ", ".join(format_id(b.name, "sum", k) for k in empty[:5])
                raise GraphError(f"dangling node: {ids} has no incoming weight (fan-in 0)")


# ---------------------------------------------------------------------------------------------
# Learner groups


def learner_slots(blocks: list[Block]) -> list[tuple[str, str, str, int, tuple[str, ...], str | None]]:
    """(key, block, node kind, size, states, loss fn) of every slot (a part whose nodes run a
    learner), in the order of ``blocks``."""
    out = []
    for b in blocks:
        if isinstance(b, WeightNodes):
            out.append((f"{b.name}/w", b.name, "weight", b.size, kinds.WEIGHT.states, None))
        elif isinstance(b, NeuronNodes):
            out.append((f"{b.name}/b", b.name, "bias", b.size, kinds.BIAS.states, None))
        elif isinstance(b, ActivationNodes):
            out.append((f"{b.name}/act", b.name, "activation", b.size, kinds.ACTIVATION.states, None))
        elif isinstance(b, SoftmaxNodes):
            out.append((f"{b.name}/unit", b.name, "softmax", b.size, kinds.SOFTMAX.states, None))
        elif isinstance(b, LossNodes):
            out.append((f"{b.name}/loss", b.name, "loss", b.size, kinds.LOSS_STATES[b.fn], b.fn))
    return out


SHARED_BY_KIND = {"weight": "W", "bias": "b"}
"""The learner group of the weight and bias slots under ``sharing="kind"`` (the other slots keep
one group each)."""


def _assign_groups(blocks: list[Block], sharing: str, user_groups: dict[str, str]) -> list[Slot]:
    """Every slot with its learner group and normalization group: per slot (``"layer"``), shared by
    node kind (``"kind"``, ``"kind+norm"``: :data:`SHARED_BY_KIND`), then as ``user_groups`` say."""
    raw = learner_slots(blocks)
    known = {key for key, *_ in raw}
    for key in user_groups:
        if key not in known:
            raise GraphError(f"groups: {key!r} is not a learner slot of this graph; slots: {', '.join(sorted(known))}")
    slots = []
    for key, block, role, size, states, fn in raw:
        group = SHARED_BY_KIND.get(role, key) if sharing in ("kind", "kind+norm") else key
        group = user_groups.get(key, group)
        norm = group if sharing == "kind+norm" else key
        slots.append(Slot(key, block, role, size, states, group, norm, fn))
    by_group: dict[str, list[Slot]] = {}
    for s in slots:
        by_group.setdefault(s.group, []).append(s)
    for group, members in by_group.items():
        roles = {(s.role, s.loss_fn) for s in members}
        if len(roles) > 1:
            desc = ", ".join(f"{s.key} ({s.role if not s.loss_fn else s.loss_fn + ' loss'})" for s in members)
            raise GraphError(f"learner group {group!r} mixes node kinds that cannot share f and g: {desc} "
                             "(weights, biases, activations, softmax and each loss kind need their own learners)")
    return slots


# ---------------------------------------------------------------------------------------------
# Back to the spec


def graph_to_spec(graph: Graph):
    """Write the spec of a graph (the inverse of :func:`build`)."""
    src = graph.source
    if isinstance(src, S.StackSpec):
        layers = []
        for layer in src.layers:
            layers.append(layer.model_copy())
        return S.StackSpec(inputs=graph.inputs[0].size, layers=layers, sharing=src.sharing, groups=dict(src.groups))
    blocks = []
    for spec_block in src.blocks:
        b = graph.units.get(spec_block.name) if not isinstance(spec_block, S.WeightBlock) else graph.weights[spec_block.name]
        blocks.append(_block_spec(b))
    return S.FreeFormSpec(blocks=blocks, sharing=src.sharing, groups=dict(src.groups))


def _block_spec(b: Block):
    if isinstance(b, InputNodes):
        return S.InputBlock(name=b.name, size=b.size)
    if isinstance(b, TargetNodes):
        return S.TargetBlock(name=b.name, size=b.size)
    if isinstance(b, NeuronNodes):
        edges = None if b.bias_edges is None else [tuple(int(v) for v in e) for e in b.bias_edges]
        return S.NeuronBlock(name=b.name, size=b.size, bias_edges=edges)
    if isinstance(b, WeightNodes):
        mask = edges = None
        if b.connectivity == "mask":
            m = np.zeros((b.n_src, b.n_dst), dtype=int)
            m[b.src_idx, b.dst_idx] = 1
            mask = m.tolist()
        elif b.connectivity == "edges":
            pairs = np.empty((b.size, 2), dtype=np.int64)
            pairs[b.given_order] = np.stack([b.src_idx, b.dst_idx], axis=1)
            edges = [(int(i), int(j)) for i, j in pairs]
        return S.WeightBlock(name=b.name, src=b.src, dst=b.dst, mask=mask, edges=edges, fan_in=b.fan_in)
    if isinstance(b, ActivationNodes):
        return S.ActivationBlock(name=b.name, src=b.src, fn=b.fns[0] if len(b.fns) == 1 and not b.fn_list else list(b.fns))
    if isinstance(b, SoftmaxNodes):
        return S.SoftmaxBlock(name=b.name, src=b.src)
    return S.LossBlock(name=b.name, src=b.src, fn=b.fn, target=b.target)
