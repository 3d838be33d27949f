"""Render a :class:`~graphflow.viz.drawing.Drawing` with matplotlib alone (no Graphviz needed).

The layout is layered left to right by forward depth (:func:`~graphflow.viz.drawing.layered_positions`).
Boxes are text labels on rounded, group-coloured backgrounds; arrows end at the box edges. Always
uses the non-interactive Agg canvas, so it runs on machines without a display.
"""

from __future__ import annotations

from pathlib import Path

from graphflow.viz.drawing import BACKWARD_COLOUR, FORWARD_COLOUR, Drawing, layered_positions

# Inches between layers and between boxes of one layer; collapsed boxes hold two text lines.
LAYER_GAP = {False: 1.1, True: 1.6}
ROW_GAP = {False: 0.32, True: 0.85}
FONT_SIZE = {False: 7, True: 9}
DPI = 144
BOX_STYLE = {"input": "square", "target": "square", "bias": "square", "neuron": "circle"}
DASHES = (0, (3, 2))


def _box_style(kind: str, collapsed: bool) -> str:
    if kind == "neuron" and collapsed:
        return "round"  # a circle around two lines of text would dwarf its neighbours
    return BOX_STYLE.get(kind, "round")


def render_matplotlib(drawing: Drawing, path: str | Path, fmt: str) -> Path:
    """Draw ``drawing`` into ``path`` as ``png`` or ``svg``.

    >>> import tempfile, graphflow as gf
    >>> from graphflow.viz.drawing import drawing_of
    >>> d = drawing_of(gf.build(gf.stack(1, gf.Dense(1), gf.L2Loss())))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     render_matplotlib(d, f"{tmp}/g.svg", "svg").read_text().startswith("<?xml")
    True
    """
    import io

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xy, width, graph_height = _positions_in_inches(drawing)
    legend_height = 0.19 * (len(drawing.legend) + 3) + 0.2
    total = graph_height + legend_height
    fig = Figure(figsize=(width, total), dpi=DPI)
    FigureCanvasAgg(fig)  # never a GUI backend, whatever pyplot's default is
    ax = fig.add_axes((0, legend_height / total, 1, graph_height / total))
    ax.set_xlim(-1.0, width - 1.0)
    ax.set_ylim(-graph_height / 2, graph_height / 2)
    ax.set_axis_off()
    _draw_boxes_and_arrows(ax, drawing, xy)
    _draw_legend(fig, drawing)
    # Arrows end where the boxes' outlines are, which are known only once the text is laid out:
    # a first pass at the same format and resolution places them, the second one is kept.
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable, selectable
        fig.savefig(io.BytesIO(), format=fmt)
        fig.savefig(path, format=fmt)
    return Path(path)


def _positions_in_inches(drawing: Drawing) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Box centres (layers left to right, each layer centred vertically), figure width and graph height."""
    positions = layered_positions(drawing)
    rows: dict[int, int] = {}
    for layer, _ in positions.values():
        rows[layer] = rows.get(layer, 0) + 1
    dx, dy = LAYER_GAP[drawing.collapsed], ROW_GAP[drawing.collapsed]
    xy = {node: (layer * dx, ((rows[layer] - 1) / 2 - rank) * dy) for node, (layer, rank) in positions.items()}
    width = max(6.0, (max(rows) * dx) + 2.0)
    graph_height = max(1.5, (max(rows.values()) - 1) * dy + 0.8)
    return xy, width, graph_height


def _draw_boxes_and_arrows(ax, drawing: Drawing, xy: dict[str, tuple[float, float]]) -> None:
    collapsed = drawing.collapsed
    labels = {}
    for box in drawing.boxes:
        labels[box.id] = ax.text(
            *xy[box.id], box.label, ha="center", va="center", fontsize=FONT_SIZE[collapsed], zorder=3,
            bbox=dict(boxstyle=f"{_box_style(box.kind, collapsed)},pad=0.3", fc=drawing.fill(box),
                      ec="#555555", lw=0.6),
        )
    for arrow in drawing.arrows:
        forward = arrow.direction == "forward"
        ax.annotate(
            "", xy=xy[arrow.dst], xytext=xy[arrow.src], zorder=1 if forward else 2,
            arrowprops=dict(
                arrowstyle="-|>", mutation_scale=7, lw=0.6 if forward else 0.7,
                color=FORWARD_COLOUR if forward else BACKWARD_COLOUR, linestyle="-" if forward else DASHES,
                patchA=labels[arrow.src].get_bbox_patch(), patchB=labels[arrow.dst].get_bbox_patch(),
                shrinkA=1, shrinkB=1, alpha=1.0 if forward else 0.75,
                # backward arrows bow out so that they never hide the forward arrow between the same boxes
                connectionstyle="arc3,rad=0" if forward else "arc3,rad=0.3",
            ),
        )


def _draw_legend(fig, drawing: Drawing) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=entry.colour, edgecolor="#555555", label=entry.text) for entry in drawing.legend]
    handles += [Line2D([], [], color=FORWARD_COLOUR, lw=1, label="forward arrow (values)"),
                Line2D([], [], color=BACKWARD_COLOUR, lw=1, linestyle=DASHES, label="backward arrow (messages; dashed)")]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.01, 0.01), fontsize=8, frameon=False,
               title="learner groups (fill colour: nodes sharing f and g)", title_fontsize=8, alignment="left")
    fig.text(0.01, 0.995, drawing.title, ha="left", va="top", fontsize=8, color="#333333")
