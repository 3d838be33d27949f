"""Render a :class:`~graphflow.viz.drawing.Drawing` with matplotlib alone (no Graphviz needed).

The layout is layered left to right by forward depth (:func:`~graphflow.viz.drawing.layered_positions`).
Boxes are text labels on rounded, group-coloured backgrounds, each naming its block
(``dense0 w[0,0]``: there are no cluster frames as Graphviz draws them); arrows end at the box
edges. A layer of more than :data:`MAX_ROWS` boxes is laid out in tiles: columns of
:data:`MAX_ROWS` side by side, so that a big per-node drawing grows sideways a little instead of
becoming one tall column, and the picture says so. The figure is sized to what was drawn (the
boxes, the bowed backward arrows, the title, the notes and the legend each get their own room:
nothing overlaps the graph, nothing is cut at the edge). Always uses the non-interactive Agg
canvas, so it runs on machines without a display.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from graphflow.viz.drawing import BACKWARD_COLOUR, FORWARD_COLOUR, Drawing, layered_positions

# Inches between layers, between the tile columns of one layer and between boxes of one column;
# collapsed boxes hold two text lines.
LAYER_GAP = {False: 1.5, True: 1.9}
TILE_GAP = {False: 1.05, True: 1.6}
ROW_GAP = {False: 0.32, True: 0.85}
FONT_SIZE = {False: 7, True: 9}
MAX_ROWS = 40
"""Boxes per column; a layer with more is laid out in tiles of columns of this many."""
DPI = 144
MARGIN = 0.12
"""Inches left around everything drawn."""
TEXT_LINE = 0.19
"""Inches per line of the title and notes."""
BOX_STYLE = {"input": "square", "target": "square", "bias": "square"}
DASHES = (0, (3, 2))


def _box_style(kind: str) -> str:
    # neuron sums are rounded like the learners' boxes, told apart by their white fill: a circle
    # around a named label ("dense0 Σ[3]") would dwarf its neighbours
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
    fig = figure_of(drawing)
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable, selectable
        fig.savefig(path, format=fmt)
    return Path(path)


def figure_of(drawing: Drawing):
    """The matplotlib Figure of a drawing, laid out and sized (what :func:`render_matplotlib` saves).

    One data unit is one inch in both directions. A first draw measures the boxes, the legend,
    the title and the notes; the arrows are then drawn from box edge to box edge (backward ones
    bowed) and the axes and the figure set to hold all of it at the same scale.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xy, tiled = tile_positions(drawing)
    if tiled:
        drawing = replace(drawing, notes=drawing.notes + (
            f"laid out in tiles: layers of more than {MAX_ROWS} nodes are wrapped into columns of {MAX_ROWS}, "
            "side by side (top to bottom, then left to right); collapsed=True or --collapsed draws one box "
            "per block part",))
    fig = Figure(figsize=(8, 8), dpi=DPI)
    canvas = FigureCanvasAgg(fig)  # never a GUI backend, whatever pyplot's default is
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    xs, ys = [p[0] for p in xy.values()], [p[1] for p in xy.values()]
    limits = (min(xs) - 1, max(xs) + 1, min(ys) - 1, max(ys) + 1)
    header = fig.text(0, 1, "\n".join((drawing.title,) + drawing.notes), ha="left", va="top", fontsize=8,
                      color="#333333", linespacing=1.4)
    legend = _draw_legend(fig, drawing)
    labels = _draw_boxes(ax, drawing, xy)
    _place(fig, ax, header, legend, limits, (0.0, 0.0), (0.0, 0.0))
    renderer = canvas.get_renderer()
    fig.draw(renderer)
    to_data = ax.transData.inverted()
    half = {}
    for box_id, label in labels.items():
        extent = label.get_bbox_patch().get_window_extent(renderer).transformed(to_data)
        half[box_id] = (extent.width / 2, extent.height / 2)
    curves = _draw_arrows(ax, drawing, xy, half)
    points = [p for curve in curves for p in curve]
    points += [(x + sx * w, y + sy * h) for box_id, (x, y) in xy.items() for w, h in [half[box_id]]
               for sx in (-1, 1) for sy in (-1, 1)]
    limits = (min(p[0] for p in points) - MARGIN, max(p[0] for p in points) + MARGIN,
              min(p[1] for p in points) - MARGIN, max(p[1] for p in points) + MARGIN)
    _place(fig, ax, header, legend, limits, _inches(legend.get_window_extent(renderer)),
           _inches(header.get_window_extent(renderer)))
    return fig


def _edge_point(centre, half, towards) -> tuple[float, float]:
    """Where the ray from a box's centre towards a point leaves the box (a small gap beyond)."""
    (x, y), (w, h) = centre, half
    dx, dy = towards[0] - x, towards[1] - y
    scale = min(w / abs(dx) if dx else float("inf"), h / abs(dy) if dy else float("inf"))
    gap = 0.02 / max(1e-9, (dx * dx + dy * dy) ** 0.5)
    return x + dx * (scale + gap), y + dy * (scale + gap)


def _arc_control(a, b, rad: float) -> tuple[float, float]:
    """The control point of matplotlib's ``arc3`` connection from a to b (display = data here: 1:1)."""
    return ((a[0] + b[0]) / 2 + rad * (b[1] - a[1]), (a[1] + b[1]) / 2 - rad * (b[0] - a[0]))


def _draw_arrows(ax, drawing: Drawing, xy, half) -> list[list[tuple[float, float]]]:
    """Every arrow from the edge of its source box to the edge of its target box; returns points
    along each drawn curve (for sizing the figure)."""
    from matplotlib.patches import FancyArrowPatch

    curves = []
    for arrow in drawing.arrows:
        forward = arrow.direction == "forward"
        # backward arrows bow out so that they never hide the forward arrow between the same boxes
        rad = 0.0 if forward else 0.3
        src, dst = xy[arrow.src], xy[arrow.dst]
        control = _arc_control(src, dst, rad)
        start = _edge_point(src, half[arrow.src], control if rad else dst)
        end = _edge_point(dst, half[arrow.dst], control if rad else src)
        ax.add_patch(FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=7, lw=0.6 if forward else 0.7, shrinkA=0, shrinkB=0,
            color=FORWARD_COLOUR if forward else BACKWARD_COLOUR, linestyle="-" if forward else DASHES,
            alpha=1.0 if forward else 0.75, zorder=1 if forward else 2, connectionstyle=f"arc3,rad={rad}"))
        c = _arc_control(start, end, rad)
        curves.append([((1 - t) ** 2 * start[0] + 2 * t * (1 - t) * c[0] + t * t * end[0],
                        (1 - t) ** 2 * start[1] + 2 * t * (1 - t) * c[1] + t * t * end[1])
                       for t in (0.0, 0.25, 0.5, 0.75, 1.0)])
    return curves


def tile_positions(drawing: Drawing) -> tuple[dict[str, tuple[float, float]], bool]:
    """Box centres in inches (layers left to right, each column centred vertically) and whether
    some layer was laid out in tiles (more than :data:`MAX_ROWS` boxes: several columns).

    >>> import graphflow as gf
    >>> from graphflow.viz.drawing import drawing_of
    >>> xy, tiled = tile_positions(drawing_of(gf.build(gf.stack(60, gf.Dense(1), gf.L2Loss()))))
    >>> tiled, len({x for x, _ in xy.values()})  # 60 inputs and 60 weights: two tile columns each
    (True, 7)
    """
    positions = layered_positions(drawing)
    layers: dict[int, list[tuple[float, str]]] = {}
    for node, (layer, rank) in positions.items():
        layers.setdefault(layer, []).append((rank, node))
    collapsed = drawing.collapsed
    xy: dict[str, tuple[float, float]] = {}
    x = 0.0
    tiled = False
    for layer in sorted(layers):
        members = [node for _, node in sorted(layers[layer])]
        columns = -(-len(members) // MAX_ROWS)
        tiled |= columns > 1
        per_column = -(-len(members) // columns)
        for k, node in enumerate(members):
            column, row = divmod(k, per_column)
            in_column = min(per_column, len(members) - column * per_column)
            xy[node] = (x + column * TILE_GAP[collapsed], ((in_column - 1) / 2 - row) * ROW_GAP[collapsed])
        x += (columns - 1) * TILE_GAP[collapsed] + LAYER_GAP[collapsed]
    return xy, tiled


def _inches(bbox) -> tuple[float, float]:
    return bbox.width / DPI, bbox.height / DPI


def _place(fig, ax, header, legend, limits, legend_size, header_size) -> None:
    """Size the figure and place the header band, the graph and the legend band, top to bottom."""
    x0, x1, y0, y1 = limits
    graph_w, graph_h = x1 - x0, y1 - y0
    head_h = header_size[1] + 2 * MARGIN if header_size[1] else TEXT_LINE
    legend_h = legend_size[1] + 2 * MARGIN if legend_size[1] else TEXT_LINE
    width = max(graph_w, header_size[0] + 2 * MARGIN, legend_size[0] + 2 * MARGIN)
    height = head_h + graph_h + legend_h
    fig.set_size_inches(width, height)
    ax.set_position(((width - graph_w) / 2 / width, legend_h / height, graph_w / width, graph_h / height))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    header.set_position((MARGIN / width, 1 - MARGIN / height))
    legend.set_bbox_to_anchor((MARGIN / width, MARGIN / height), transform=fig.transFigure)


def _draw_boxes(ax, drawing: Drawing, xy: dict[str, tuple[float, float]]) -> dict:
    collapsed = drawing.collapsed
    return {box.id: ax.text(*xy[box.id], box.named_label, ha="center", va="center", fontsize=FONT_SIZE[collapsed],
                            zorder=3, gid=box.id,
                            bbox=dict(boxstyle=f"{_box_style(box.kind)},pad=0.3", fc=drawing.fill(box),
                                      ec="#555555", lw=0.6))
            for box in drawing.boxes}


def _draw_legend(fig, drawing: Drawing):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=entry.colour, edgecolor="#555555", label=entry.text) for entry in drawing.legend]
    handles += [Line2D([], [], color=FORWARD_COLOUR, lw=1, label="forward arrow (values)"),
                Line2D([], [], color=BACKWARD_COLOUR, lw=1, linestyle=DASHES, label="backward arrow (messages; dashed)")]
    return fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.01, 0.01), fontsize=8, frameon=False,
                      ncols=1 if len(handles) <= 10 else 2,
                      title="learner groups (fill colour: nodes sharing f and g)", title_fontsize=8, alignment="left",
                      borderaxespad=0.0, borderpad=0.0)
