"""Graphviz DOT text of a :class:`~graphflow.viz.drawing.Drawing`, and rendering it with ``dot``.

Writing DOT needs nothing installed; rendering to SVG or PNG runs Graphviz's ``dot`` program
(Debian package ``graphviz``), found with :func:`shutil.which`.

>>> import graphflow as gf
>>> from graphflow.viz.drawing import drawing_of
>>> text = drawing_to_dot(drawing_of(gf.build(gf.stack(2, gf.Dense(1), gf.L2Loss()))))
>>> text.splitlines()[0], '"dense0/w[1,0]" -> "dense0/sum[0]"' in text
('digraph graphflow {', True)
"""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path

from graphflow.errors import GraphflowError
from graphflow.viz.drawing import BACKWARD_COLOUR, FORWARD_COLOUR, Box, Drawing

FONT = "DejaVu Sans"
SHAPES = {"input": "box", "target": "box", "weight": "ellipse", "neuron": "circle", "bias": "box",
          "activation": "ellipse", "softmax": "hexagon", "loss": "octagon"}
PNG_DPI = 144
SWATCH = 'width="30" height="13" fixedsize="true"'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "]"


def _node_line(drawing: Drawing, box: Box) -> str:
    shape = "ellipse" if drawing.collapsed and box.kind == "neuron" else SHAPES[box.kind]
    style = '"filled,rounded"' if shape == "box" else "filled"
    return f"{_quote(box.id)} " + _attrs(label=_quote(box.label), shape=shape, style=style,
                                         fillcolor=_quote(drawing.fill(box)), tooltip=_quote(box.id))


def _legend_label(drawing: Drawing) -> str:
    """An HTML-like table: one colour swatch per learner group, the two arrow styles, the counts.

    All text sits in the second column (a wide first column would push the swatches away from
    their names).
    """
    rows = ['<tr><td></td><td align="left"><b>learner groups</b> (fill colour: nodes sharing f and g)</td></tr>']
    for entry in drawing.legend:
        rows.append(f'<tr><td bgcolor="{entry.colour}" {SWATCH}></td><td align="left">{html.escape(entry.text)}</td></tr>')
    rows.append(f'<tr><td {SWATCH}><font color="{FORWARD_COLOUR}">──▶</font></td>'
                '<td align="left">forward arrow (values)</td></tr>')
    rows.append(f'<tr><td {SWATCH}><font color="{BACKWARD_COLOUR}">╌╌▶</font></td>'
                '<td align="left">backward arrow (messages; dashed)</td></tr>')
    for line in (drawing.title,) + drawing.notes:
        rows.append(f'<tr><td></td><td align="left">{html.escape(line)}</td></tr>')
    return '<<table border="0" cellborder="0" cellspacing="2">' + "".join(rows) + "</table>>"


def drawing_to_dot(drawing: Drawing) -> str:
    """DOT text of a drawing: left to right, forward arrows solid black, backward ones dashed red.

    Backward arrows do not take part in ranking (``constraint=false``), so the layout follows the
    forward direction. Per-scalar drawings put the nodes of each block part in a labelled cluster.
    """
    collapsed = drawing.collapsed
    graph_attrs = _attrs(rankdir="LR", fontname=_quote(FONT), fontsize=11, labelloc="b", labeljust="l",
                         nodesep=0.3 if collapsed else 0.12, ranksep=0.6 if collapsed else 0.45,
                         label=_legend_label(drawing))
    node_attrs = _attrs(fontname=_quote(FONT), fontsize=10 if collapsed else 9, penwidth=0.8,
                        margin='"0.06,0.03"', height=0.3)
    lines = ["digraph graphflow {", f"  graph {graph_attrs};", f"  node {node_attrs};",
             f"  edge {_attrs(arrowsize=0.6, penwidth=0.8)};"]
    if collapsed:
        lines += ["  " + _node_line(drawing, box) + ";" for box in drawing.boxes]
    else:
        parts: dict[str, list[Box]] = {}
        for box in drawing.boxes:
            parts.setdefault(box.part, []).append(box)
        for k, (part, boxes) in enumerate(parts.items()):
            lines.append(f"  subgraph cluster_{k} {{")
            lines.append(f'    label={_quote(part)}; style="rounded,dashed"; color="#aaaaaa"; fontsize=9;')
            lines += ["    " + _node_line(drawing, box) + ";" for box in boxes]
            lines.append("  }")
    for arrow in drawing.arrows:
        if arrow.direction == "forward":
            attrs = _attrs(color=_quote(FORWARD_COLOUR))
        else:
            attrs = _attrs(color=_quote(BACKWARD_COLOUR), style="dashed", constraint="false")
        lines.append(f"  {_quote(arrow.src)} -> {_quote(arrow.dst)} {attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_program() -> str | None:
    """The path of Graphviz's ``dot``, or None when it is not installed."""
    return shutil.which("dot")


def render_dot(dot_text: str, path: str | Path, fmt: str) -> Path:
    """Render DOT text to ``path`` as ``svg`` or ``png`` with Graphviz's ``dot``.

    Raises
    ------
    GraphflowError
        When ``dot`` is not installed or fails.
    """
    program = dot_program()
    if program is None:
        raise GraphflowError("Graphviz 'dot' is not installed (apt-get install graphviz); "
                             "draw with backend='matplotlib' instead")
    args = [program, f"-T{fmt}", "-o", str(path)]
    if fmt == "png":
        args.insert(1, f"-Gdpi={PNG_DPI}")
    result = subprocess.run(args, input=dot_text.encode(), capture_output=True, timeout=300)
    if result.returncode != 0:
        raise GraphflowError(f"dot failed rendering {path}: {result.stderr.decode(errors='replace').strip()}")
    return Path(path)
