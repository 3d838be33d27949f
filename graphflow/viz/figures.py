"""What every matplotlib picture of graphflow shares: an Agg figure, legends that never cover the
data, colour bars without offset text, and heatmap ticks on every index (or every k-th).

Never a GUI backend: figures are made on the Agg canvas directly, so pictures draw on machines
without a display whatever pyplot's default is.

>>> index_ticks(6), index_ticks(45)
(([0, 1, 2, 3, 4, 5], 1), ([0, 5, 10, 15, 20, 25, 30, 35, 40], 5))
"""

from __future__ import annotations

from pathlib import Path

from graphflow.errors import GraphflowError

MAX_INDEX_LABELS = 20
"""Heatmap axes of up to this many cells label every index; longer ones every k-th (k = 2, 5, 10, ...)."""
TICK_STRIDES = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000)


def figure(width: float, height: float, dpi: int, layout: str | None = "constrained"):
    """A matplotlib Figure on the Agg canvas (constrained layout: outside legends get their room)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: str | Path, dpi: int, formats: tuple[str, ...] = ("png", "svg")) -> Path:
    """Write ``fig`` to ``path`` in the format of its suffix (one of ``formats``)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in formats:
        raise GraphflowError(f"{path}: pictures are written as {' or '.join('.' + f for f in formats)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=dpi)
    return path


def legend_beside(ax, handles=None, fontsize: float = 7, **kwargs):
    """The legend of ``ax`` to the right of its axes, outside the plotted area (so it covers no data).

    With a twin axis on the right (its tick labels would sit under the legend) use
    :func:`legend_above` instead.
    """
    kwargs = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": fontsize,
              "frameon": False, **kwargs}
    return ax.legend(handles=handles, **kwargs) if handles is not None else ax.legend(**kwargs)


def legend_above(ax, handles=None, fontsize: float = 7, ncols: int = 2, **kwargs):
    """The legend of ``ax`` in a band just above its axes (under the title: give the title ``pad``)."""
    kwargs = {"loc": "lower left", "bbox_to_anchor": (0.0, 1.01), "borderaxespad": 0.0, "fontsize": fontsize,
              "frameon": False, "ncols": ncols, "handlelength": 1.5, "columnspacing": 1.0, **kwargs}
    return ax.legend(handles=handles, **kwargs) if handles is not None else ax.legend(**kwargs)


def plain_numbers(axis) -> None:
    """Tick labels as plain numbers: no offset text (``1e-12+1.1252``), no shared exponent."""
    from matplotlib.ticker import ScalarFormatter

    formatter = ScalarFormatter(useOffset=False)
    formatter.set_powerlimits((-4, 5))
    axis.set_major_formatter(formatter)


def index_ticks(n: int, max_labels: int = MAX_INDEX_LABELS) -> tuple[list[int], int]:
    """Tick positions on the cells of an axis of ``n`` cells and the stride between them.

    Every index up to ``max_labels`` cells, else every k-th index from 0 with the smallest k of
    1, 2, 5, 10, 20, 25, 50, ... that needs at most ``max_labels`` labels; a tick's label is its index.

    >>> index_ticks(1), index_ticks(20)[1], index_ticks(21)
    (([0], 1), 1, ([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20], 2))
    """
    stride = next((k for k in TICK_STRIDES if -(-n // k) <= max_labels), TICK_STRIDES[-1])
    return list(range(0, n, stride)), stride


def stride_note(stride: int) -> str:
    """What an axis label adds when not every index is labelled."""
    if stride == 1:
        return ""
    return " (every 2nd index)" if stride == 2 else f" (every {stride}th index)"
