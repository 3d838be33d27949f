"""The run explorer: one self-contained HTML file to browse a recorded run in any browser.

The page shows the node graph (per scalar node for small graphs; collapsed to block parts for big
ones, a part expanding into the grid of its nodes on click) coloured by a chosen quantity, a step
slider, the inner loss curve, and, for a clicked node, its message and update history as small
SVG charts. Everything is inline — the run's numbers as JSON, the script (vanilla JavaScript
drawing SVG) and the style — so the file opens offline, from disk, with no server and no CDN.

>>> import tempfile
>>> from graphflow.inspect._example import example_run
>>> with tempfile.TemporaryDirectory() as tmp:
...     html = write_explorer(example_run(), f"{tmp}/run.html").read_text()
>>> "<script src" in html, "dense2/w[1,0]" in html
(False, True)
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np

from graphflow.inspect.queries import node_series
from graphflow.io.jsonl import finite_or_none
from graphflow.viz.drawing import COLLAPSE_ABOVE, drawing_of, layered_positions

MAX_DETAILED_NODES = 4000
"""Nodes beyond this many keep their colours but not their per-step history (keeps the file small)."""
PX = {False: (58, 48), True: (140, 60)}
"""Pixels between neighbours of one layer and between layers, per scalar (False) and collapsed (True).
Layers run top (inputs) to bottom (losses), so that deep graphs fit beside the history panel."""
LABEL_WIDTH = {False: PX[False][0] - 6, True: 116}
"""The widest a box's label may be drawn, in pixels (a scalar node's label sits above its circle
between its neighbours'; a part's inside its 124-pixel box); the page cuts longer labels with an
ellipsis and keeps the whole text in the box's tooltip."""
DESCENT = "descent direction (−gradient)"
"""How the page names and signs the backprop gradient everywhere (colours, values, charts): as
−gradient, the direction an update should point, so that it reads beside the learned update."""
QUANTITY_LABELS = {"abs_update": "|update|", "update": "update", "descent": DESCENT,
                   "message_out": "outgoing message norm", "message_in": "incoming message norm"}
"""What the page can colour nodes by, in the selector's order (``descent`` is −``gradient``)."""


def _round(values, digits: int = 4):
    """Nested lists of floats with ``digits`` significant digits (a smaller page); NaN and inf as None."""
    a = np.asarray(values, np.float64)
    rounded = np.array([float(f"{v:.{digits}g}") for v in a.ravel()], np.float64).reshape(a.shape)
    return finite_or_none(rounded)


def _colour_values(run) -> dict[str, dict[str, np.ndarray]]:
    """Quantity -> part -> [step, node] values the page colours by (``descent``: −gradient)."""
    out = {}
    for key in QUANTITY_LABELS:
        series = node_series(run, "gradient" if key == "descent" else key)
        out[key] = {part: -v for part, v in series.items()} if key == "descent" else series
    return out


def _part_histories(run, rec) -> dict[str, np.ndarray]:
    """The per-node histories the details panel charts, for every recorded node of one part at once
    (the reductions of :class:`~graphflow.inspect.run.NodeHistory`, with the ``node`` axis kept)."""
    steps = run.step_labels
    out = {}
    if "update" in rec.fields:
        out["update"] = rec.labelled("update", steps).mean("task").values  # [step, node]
    if "gradient" in rec.fields:
        out["descent"] = -rec.labelled("gradient", steps).mean("task").values
    if rec.role in ("weight", "bias") and "states" in rec.fields:
        out["value"] = rec.labelled("states", steps).isel(example=0, channel=0).mean("task").values
    for name in ("message_in", "message_out"):
        if name in rec.fields:
            message = rec.labelled(name, steps)
            out[f"{name}_norm"] = message.norm("channel").mean("example").mean("task").values
            out[name] = message.mean(("task", "example")).values  # [step, node, channel]
    return out


def _node_entries(run, limit: int = MAX_DETAILED_NODES) -> dict[str, dict]:
    """Node id -> what the details panel shows, for the first ``limit`` recorded nodes (a few numpy
    reductions per part, not per node: a run of hundreds of nodes on a 1.8M-node graph stays quick)."""
    nodes: dict[str, dict] = {}
    for part, rec in run.parts.items():
        if len(nodes) >= limit:
            break
        histories = _part_histories(run, rec)
        for pos, nid in enumerate(rec.ids[:limit - len(nodes)]):
            entry = {"part": part, "role": rec.role, "group": rec.group,
                     "recorded": [bool(r) for r in rec.recorded[:, pos]]}
            for name, values in histories.items():
                entry[name] = _round(values[:, pos])
                if name in ("message_in", "message_out"):
                    entry[f"{name}_channels"] = list(rec.channels.get(name, []))
            nodes[nid] = entry
    return nodes


def explorer_data(run, collapsed: bool | None = None, threshold: int = COLLAPSE_ABOVE) -> dict:
    """Everything the page shows, as plain JSON-ready data (the layout is computed here, not in the page)."""
    graph = run.graph
    drawing = drawing_of(graph, collapsed, threshold)
    positions = layered_positions(drawing)
    rows: dict[int, int] = {}
    for layer, _ in positions.values():
        rows[layer] = rows.get(layer, 0) + 1
    widest = max(rows.values())
    dx, dy = PX[drawing.collapsed]
    index = {box.id: k for k, box in enumerate(drawing.boxes)}
    recorded_parts = set(run.parts)
    recorded_ids = set(run.node_ids())
    boxes = []
    for box in drawing.boxes:
        layer, rank = positions[box.id]
        x = ((widest - rows[layer]) / 2 + rank) * dx
        recorded = box.id in recorded_parts if drawing.collapsed else box.id in recorded_ids
        boxes.append({"id": box.id, "label": box.label, "kind": box.kind, "part": box.part, "count": box.count,
                      "x": x, "y": layer * dy, "fill": drawing.fill(box), "recorded": recorded})
    arrows = [[index[a.src], index[a.dst]] for a in drawing.arrows if a.direction == "forward"]

    values = {q: {part: _round(v) for part, v in by_part.items()} for q, by_part in _colour_values(run).items()}
    quantities = {q: label for q, label in QUANTITY_LABELS.items() if values[q]}
    parts = {}
    for part, rec in run.parts.items():
        block, label = part.split("/")
        if label == "w":
            w = graph.weights[block]
            i, j = w.edges()
            shape, cells = [int(w.n_src), int(w.n_dst)], [[int(i[n]), int(j[n])] for n in rec.nodes]
        else:
            shape, cells = [1, graph.part_size(part)], [[0, int(n)] for n in rec.nodes]
        parts[part] = {"role": rec.role, "group": rec.group, "ids": rec.ids, "shape": shape, "cells": cells}

    nodes = _node_entries(run)
    source = run.header.get("meta", {})
    return {
        "title": str(source.get("title") or f"graphflow run: {', '.join(run.patterns)}"),
        "subtitle": f"{run.steps} inner step{'s' if run.steps != 1 else ''}, {run.header['tasks']} task(s) of "
                    f"{run.header['batch']} examples; "
                    f"{len(recorded_ids)} recorded nodes" + ("; with backprop gradients" if run.has_gradients else ""),
        "steps": run.steps,
        "collapsed": drawing.collapsed,
        "graph_title": drawing.title,
        "width": max(widest - 1, 1) * dx, "height": max(rows) * dy, "label_width": LABEL_WIDTH[drawing.collapsed],
        "boxes": boxes, "arrows": arrows, "parts": parts,
        "quantities": quantities, "values": values, "nodes": nodes, "descent": DESCENT,
        "detailed": len(nodes) == len(recorded_ids),
        "loss": _round(run.mean_loss()),
    }


def _asset(name: str) -> str:
    return resources.files("graphflow.viz").joinpath("assets", name).read_text(encoding="utf-8")


PLACEHOLDER = re.compile(r"/\*\{\{(\w+)\}\}\*/|\{\{(\w+)\}\}")
"""``{{name}}`` or ``/*{{name}}*/`` (the form that keeps the CSS and the script of the template valid)."""
SCRIPT_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
"""Characters written as JSON escapes inside the page's data script element: with no ``<`` there,
no ``</script>``, ``<!--`` or ``<script`` can end or derail the element, whatever a title holds."""


def script_json(data) -> str:
    r"""``data`` as JSON that is safe as the text of a ``<script>`` element (and the same under ``JSON.parse``).

    >>> print(script_json({"title": "</script><!--", "n": 1}))
    {"title":"\u003c/script\u003e\u003c!--","n":1}
    """
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: SCRIPT_SAFE[m.group()], text)


def fill_template(template: str, values: dict[str, str]) -> str:
    """Replace every placeholder of ``template`` by its value in one pass: text put in is never
    searched for placeholders again (a title ``{{data}}`` stays that text)."""
    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"explorer template: no value for placeholder {m.group()!r}")
        return values[name]

    return PLACEHOLDER.sub(value, template)


def explorer_html(run, collapsed: bool | None = None, threshold: int = COLLAPSE_ABOVE) -> str:
    """The explorer page for ``run`` as one HTML string (no external resources)."""
    data = explorer_data(run, collapsed, threshold)
    return fill_template(_asset("explorer.html"), {
        "title": html.escape(data["title"]),
        "style": _asset("explorer.css"),
        "data": script_json(data),
        "script": _asset("explorer.js"),
    })


def write_explorer(run, path: str | Path, collapsed: bool | None = None, threshold: int = COLLAPSE_ABOVE) -> Path:
    """Write the explorer page of ``run`` (a :class:`~graphflow.inspect.Run`) to ``path`` (atomically)."""
    from graphflow.io import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, explorer_html(run, collapsed, threshold))
    return path


class InlineExplorer:
    """The explorer of a run inside a notebook cell (``run.explorer()``): the page in an iframe of
    its own document, so that its script and styles stay apart from the notebook's.

    >>> from graphflow.inspect._example import example_run
    >>> cell = InlineExplorer(example_run(), height=500)._repr_html_()
    >>> cell.startswith('<iframe srcdoc="<!DOCTYPE html>') or cell.startswith('<iframe srcdoc="&lt;')
    True
    >>> 'height:500px' in cell
    True
    """

    def __init__(self, run, height: int = 720, collapsed: bool | None = None):
        self.run, self.height, self.collapsed = run, int(height), collapsed

    def _repr_html_(self) -> str:
        page = explorer_html(self.run, self.collapsed)
        return (f'<iframe srcdoc="{html.escape(page, quote=True)}" sandbox="allow-scripts" '
                f'style="width:100%;height:{self.height}px;border:1px solid #ccc"></iframe>')
