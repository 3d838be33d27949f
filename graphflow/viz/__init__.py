"""Pictures of graphs: DOT text, SVG and PNG, per scalar node or collapsed to block parts.

Reads built graphs only (:mod:`graphflow.graph`); never runs them.
"""

from graphflow.viz.drawing import COLLAPSE_ABOVE, Drawing, drawing_of
from graphflow.viz.graph_drawing import choose_backend, draw_graph, graph_to_dot

__all__ = ["COLLAPSE_ABOVE", "Drawing", "choose_backend", "draw_graph", "drawing_of", "graph_to_dot"]
