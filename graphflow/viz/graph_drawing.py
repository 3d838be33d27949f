"""Draw a graph to DOT, SVG or PNG: per scalar node for small graphs, collapsed to block parts for large ones.

Forward arrows are solid black, backward arrows dashed red; nodes are filled with the colour of
their learner group, listed in a legend. SVG and PNG come from Graphviz's ``dot`` when it is
installed, otherwise from a pure-Python layered layout drawn with matplotlib. Choose explicitly
with ``backend="graphviz"`` or ``backend="matplotlib"``, or with the environment variable
``GRAPHFLOW_DRAW_BACKEND``.

>>> import graphflow as gf
>>> g = gf.build(gf.stack(2, gf.Dense(1), gf.L2Loss()))
>>> graph_to_dot(g).count("->") == g.stats()["forward_arrows"] + g.stats()["backward_arrows"]
True
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from graphflow.errors import GraphflowError
from graphflow.viz.dot import dot_program, drawing_to_dot, render_dot
from graphflow.viz.drawing import COLLAPSE_ABOVE, drawing_of
from graphflow.viz.matplotlib_drawing import render_matplotlib

BACKENDS = ("auto", "graphviz", "matplotlib")
BACKEND_ENV = "GRAPHFLOW_DRAW_BACKEND"
FORMATS = {".png": "png", ".svg": "svg", ".dot": "dot", ".gv": "dot"}
FALLBACK_PER_NODE_MAX = 1200
"""The most nodes the matplotlib fallback draws one box per node (in tiles); more are drawn collapsed."""


def choose_backend(backend: str | None = None) -> str:
    """``graphviz`` or ``matplotlib``: as asked, else from ``GRAPHFLOW_DRAW_BACKEND``, else
    ``graphviz`` when ``dot`` is installed.

    >>> choose_backend("matplotlib")
    'matplotlib'
    """
    asked = (backend or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if asked not in BACKENDS:
        source = "backend" if backend else BACKEND_ENV
        raise GraphflowError(f"{source}={asked!r}: unknown drawing backend; choose one of {', '.join(BACKENDS)}")
    if asked == "auto":
        return "graphviz" if dot_program() else "matplotlib"
    return asked


def graph_to_dot(graph, collapsed: bool | None = None, threshold: int = COLLAPSE_ABOVE) -> str:
    """The DOT text of a graph's drawing (needs no Graphviz installed).

    Parameters
    ----------
    graph
        A built :class:`graphflow.graph.Graph`.
    collapsed
        True draws one box per block part with its node count, False one per scalar node;
        None collapses graphs of more than ``threshold`` nodes.
    threshold
        Node count above which ``collapsed=None`` collapses.

    >>> import graphflow as gf
    >>> from graphflow.presets import mnist
    >>> '"dense0/w" [label="dense0/w\\\\n7,200 weights"' in graph_to_dot(gf.build(mnist()))
    True
    """
    return drawing_to_dot(drawing_of(graph, collapsed, threshold))


def draw_graph(graph, path: str | Path, collapsed: bool | None = None, backend: str | None = None,
               threshold: int = COLLAPSE_ABOVE, fmt: str | None = None) -> Path:
    """Draw ``graph`` into ``path`` as PNG, SVG or DOT text (from ``fmt``, else from the suffix).

    Parameters
    ----------
    graph
        A built :class:`graphflow.graph.Graph`.
    path
        Output file; its parent folders are created.
    collapsed
        Force the collapsed (True) or per-scalar (False) drawing; None decides by ``threshold``.
    backend
        ``graphviz``, ``matplotlib`` or ``auto`` (default: ``GRAPHFLOW_DRAW_BACKEND``, else auto).
    threshold
        Node count above which ``collapsed=None`` collapses.
    fmt
        ``png``, ``svg`` or ``dot``; None reads it from the suffix (``.png``, ``.svg``, ``.dot``, ``.gv``).

    Returns
    -------
    Path
        The file written.

    >>> import tempfile, graphflow as gf
    >>> g = gf.build(gf.stack(1, gf.Dense(1), gf.L2Loss()))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     draw_graph(g, f"{tmp}/g.png", backend="matplotlib").read_bytes()[:4]
    b'\\x89PNG'
    """
    path = Path(path)
    if fmt is None:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise GraphflowError(f"{path}: cannot tell the picture format from the suffix; use one of "
                                 f"{', '.join(FORMATS)}")
    elif fmt not in FORMATS.values():
        raise GraphflowError(f"fmt={fmt!r}: unknown picture format; use one of {', '.join(sorted(set(FORMATS.values())))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    drawing = drawing_of(graph, collapsed, threshold)
    if fmt == "dot":
        path.write_text(drawing_to_dot(drawing))
        return path
    if choose_backend(backend) == "graphviz":
        return render_dot(drawing_to_dot(drawing), path, fmt)
    if not drawing.collapsed and len(drawing.boxes) > FALLBACK_PER_NODE_MAX:
        drawing = replace(drawing_of(graph, True), notes=(
            f"collapsed: one box per block part, with its node count ({len(drawing.boxes):,} nodes are more than "
            f"the {FALLBACK_PER_NODE_MAX:,} the matplotlib fallback draws one box per node; Graphviz draws them all)",))
    return render_matplotlib(drawing, path, fmt)
