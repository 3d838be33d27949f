"""Free-form topologies: blocks joined by explicit connections, down to single neurons.

Each method adds one block of a block kind of :mod:`graphflow.spec.graph` (``input``, ``target``,
``neurons``, ``weights``, ``activation``, ``softmax``, ``loss``) and returns a :class:`Units` handle
on it; :meth:`FreeForm.spec` is the spec, which :func:`graphflow.build` turns into a graph. This
module writes specs only: it never imports the graph.

>>> import graphflow as gf
>>> net = gf.FreeForm()
>>> x = net.input(3)
>>> h = net.neurons(4)
>>> net.connect(x, h, mask=[[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
'h0'
>>> a = net.activation(h, ["relu", "relu", "tanh", "tanh"])
>>> o = net.neurons(1)
>>> _ = net.connect(a, o); _ = net.connect(x, o)       # skip connection from the input
>>> net.connect(x[2], h[0])                            # one more single weight
'h0'
>>> _ = net.loss(o, "l2")
>>> gf.build(net).stats()["nodes"]["weight"]      # 6 masked + 1 single + 4 + 3 (skip)
14
"""

from __future__ import annotations

from dataclasses import dataclass

from graphflow.spec import graph as S
from graphflow.spec import parse_graph_spec


@dataclass(frozen=True)
class Units:
    """A handle on a block's units (or on some of them, after indexing: ``h[0]``, ``h[1:3]``, ``h[[0, 2]]``).

    >>> h = Units("h0", size=4)
    >>> h[1:].index, h[-1].index
    ((1, 2, 3), (3,))
    """

    block: str
    index: tuple[int, ...] | None = None
    size: int | None = None
    """Number of units of the block (lets slices like ``h[2:]`` and negative indices resolve)."""

    def __getitem__(self, k) -> "Units":
        if isinstance(k, slice):
            if self.size is None and (k.stop is None or k.stop < 0):
                raise IndexError(f"{self.block}[{k.start}:{k.stop}]: the size of {self.block!r} is unknown; give the end")
            idx = tuple(range(*k.indices(self.size if self.size is not None else k.stop)))
        else:
            idx = (k,) if isinstance(k, int) else tuple(k)
        if self.size is not None:
            bad = [i for i in idx if not -self.size <= i < self.size]
            if bad:
                raise IndexError(f"{self.block}[{bad[0]}]: {self.block!r} has {self.size} units")
            idx = tuple(i % self.size for i in idx)
        return Units(self.block, idx, self.size)

    def __str__(self) -> str:
        return self.block


class FreeForm:
    """Builder of a :class:`~graphflow.spec.graph.FreeFormSpec`."""

    def __init__(self, sharing: str = "layer", groups: dict[str, str] | None = None):
        self.sharing = sharing
        self.groups = dict(groups or {})
        self._blocks: list[dict] = []
        self._counts: dict[str, int] = {}

    def _name(self, kind: str, name: str | None) -> str:
        if name:
            return name
        taken = {b["name"] for b in self._blocks}
        while True:  # skip names the user already gave explicitly
            k = self._counts.get(kind, 0)
            self._counts[kind] = k + 1
            if f"{kind}{k}" not in taken:
                return f"{kind}{k}"

    def _find(self, name: str, kind: str | None = None) -> dict | None:
        for b in self._blocks:
            if b["name"] == name and (kind is None or b["kind"] == kind):
                return b
        return None

    def input(self, size: int, name: str | None = None) -> Units:
        """An input block of ``size`` units (named ``input``, then ``input1``, ... unless named)."""
        name = name or ("input" if not self._find("input") else self._name("input", None))
        self._blocks.append({"kind": "input", "name": name, "size": size})
        return Units(name, size=size)

    def target(self, size: int, name: str | None = None) -> Units:
        """A target block of ``size`` units, for a loss to compare its input with."""
        name = self._name("target", name)
        self._blocks.append({"kind": "target", "name": name, "size": size})
        return Units(name, size=size)

    def neurons(self, size: int, name: str | None = None) -> Units:
        """A neurons block: ``size`` neuron sums, each with its bias."""
        name = self._name("h", name)
        self._blocks.append({"kind": "neurons", "name": name, "size": size})
        return Units(name, size=size)

    def connect(self, src: Units, dst: Units, mask=None, name: str | None = None) -> str:
        """A weights block from ``src`` units to ``dst`` neurons; returns the weights block's name.

        Whole blocks connect densely (or through ``mask[i][j]``); indexed handles (``x[2]``,
        ``h[0:3]``) add single weights, all pairs of the given units, to the block of that
        (src, dst) pair. The first block into ``dst`` takes ``dst``'s name, later ones
        ``<dst>_from_<src>``.
        """
        existing = [b for b in self._blocks if b["kind"] == "weights" and b["dst"] == dst.block]
        same_pair = [b for b in existing if b["src"] == src.block and (name is None or b["name"] == name)]
        if src.index is None and dst.index is None:
            wname = name or (dst.block if not existing else f"{dst.block}_from_{src.block}")
            block = {"kind": "weights", "name": wname, "src": src.block, "dst": dst.block}
            if mask is not None:
                block["mask"] = [[int(v) for v in row] for row in mask]
            self._blocks.append(block)
            return wname
        block = same_pair[0] if same_pair else None
        if block is None:
            wname = name or (dst.block if not existing else f"{dst.block}_from_{src.block}")
            block = {"kind": "weights", "name": wname, "src": src.block, "dst": dst.block, "edges": []}
            self._blocks.append(block)
        src_idx = src.index if src.index is not None else tuple(range(self._size(src.block)))
        dst_idx = dst.index if dst.index is not None else tuple(range(self._size(dst.block)))
        pairs = [(i, j) for i in src_idx for j in dst_idx]
        if "edges" not in block:  # a dense or masked block: turn it into explicit edges
            n_src, n_dst = self._size(block["src"]), self._size(block["dst"])
            mask = block.pop("mask", None)
            block["edges"] = [(i, j) for i in range(n_src) for j in range(n_dst) if mask is None or mask[i][j]]
        have = set(block["edges"])
        block["edges"] += [p for p in pairs if p not in have]
        return block["name"]

    def activation(self, src: Units, fn: str | list[str] = "relu", name: str | None = None) -> Units:
        """An activation block: one activation node per neuron of ``src``; ``fn`` may list one
        function per unit."""
        name = self._name(fn if isinstance(fn, str) else "mixed", name)
        self._blocks.append({"kind": "activation", "name": name, "src": src.block, "fn": fn})
        return Units(name, size=self._known_size(src.block))

    def softmax(self, src: Units, name: str | None = None) -> Units:
        """A softmax block over the neurons of ``src``: each unit reads all of them."""
        name = self._name("softmax", name)
        self._blocks.append({"kind": "softmax", "name": name, "src": src.block})
        return Units(name, size=self._known_size(src.block))

    def loss(self, src: Units, fn: str = "l2", target: Units | None = None, name: str | None = None) -> Units:
        """A loss block on ``src``; a target block of the right size (``<name>_target``) is created
        unless given."""
        name = self._name("loss", name)
        if target is None:
            target = self.target(self._size(src.block), name=f"{name}_target")
        self._blocks.append({"kind": "loss", "name": name, "src": src.block, "fn": fn, "target": target.block})
        return Units(name, size=self._known_size(src.block))

    def _known_size(self, block: str) -> int | None:
        try:
            return self._size(block)
        except KeyError:
            return None  # a block defined later; graphflow.build resolves (or rejects) it

    def _size(self, block: str) -> int:
        b = next((b for b in self._blocks if b["name"] == block and b["kind"] != "weights"), None)
        if b is None:
            raise KeyError(f"no block {block!r} in this builder")
        if "size" in b:
            return b["size"]
        return self._size(b["src"])

    def spec(self) -> S.FreeFormSpec:
        """The validated spec of everything added so far (raises :class:`~graphflow.errors.SpecError`)."""
        return parse_graph_spec({"kind": "freeform", "blocks": self._blocks, "sharing": self.sharing,
                                 "groups": self.groups})
