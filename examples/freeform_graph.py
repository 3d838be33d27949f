"""Build a free-form graph — a sparse mask, two activation kinds in one layer and a skip
connection — print its statistics and draw it.

Usage::

    python examples/freeform_graph.py [PICTURE]      # default: docs/freeform_graph.png

The picture's format follows its suffix (.png, .svg or .dot). Graphviz's ``dot`` draws it when
installed, matplotlib otherwise (``GRAPHFLOW_DRAW_BACKEND=matplotlib`` forces that).
"""

from __future__ import annotations

import sys
from pathlib import Path

import graphflow as gf
from graphflow.viz import draw_graph

DEFAULT_PICTURE = Path(__file__).resolve().parent.parent / "docs" / "freeform_graph.png"


def freeform_net() -> gf.FreeForm:
    """3 inputs -> 4 sparsely connected neurons (2 relu, 2 tanh) -> 2 outputs, plus a skip
    connection from the inputs straight to the outputs, and an L2 loss."""
    net = gf.FreeForm()
    x = net.input(3, name="x")
    h = net.neurons(4, name="h")
    net.connect(x, h, mask=[[1, 1, 0, 0],
                            [0, 1, 1, 0],
                            [0, 0, 1, 1]])                   # each input reaches two neurons
    a = net.activation(h, ["relu", "relu", "tanh", "tanh"], name="mix")
    out = net.neurons(2, name="out")
    net.connect(a, out)                                        # dense: 4 x 2 weights
    net.connect(x, out, name="skip")                           # skip connection: 3 x 2 weights
    net.loss(out, "l2", name="loss")
    return net


def main(argv: list[str]) -> int:
    picture = Path(argv[0]) if argv else DEFAULT_PICTURE
    graph = gf.build(freeform_net())
    stats = graph.stats()
    print(f"{graph!r}: {stats['nodes']['weight']} weights, {stats['forward_arrows']} forward and "
          f"{stats['backward_arrows']} backward arrows")
    print("learner groups:", ", ".join(graph.groups))
    print("wrote", draw_graph(graph, picture))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
