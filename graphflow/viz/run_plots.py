"""Pictures of recorded runs and of meta-training logs (matplotlib on the Agg canvas, PNG or SVG).

- :func:`plot_inner_curve`: the loss at every inner step of a run;
- :func:`plot_meta_log`: meta-training from a ``log.jsonl`` or a run folder (meta-loss, and the evals);
- :func:`plot_layer_heatmaps`: weight matrices (and bias rows) as heatmaps of updates and message norms;
- :func:`plot_graph_quantity`: the node graph coloured by a quantity at a step;
- :func:`plot_message_vs_gradient`: learned updates and messages against the backprop gradient;
- :func:`plot_node_report`: a few nodes side by side: update next to -gradient, message norms, channels;
- :func:`plot_group_distribution`: how each learner group's updates spread over its nodes.

Reads :class:`graphflow.inspect.Run` objects (or log files); never runs a network. The graph
drawing's layout comes from :mod:`graphflow.viz.drawing`, so a run's picture has the same shape as
``graphflow graph --png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.inspect.queries import QUANTITIES, group_update_distribution, message_vs_gradient, node_values
from graphflow.meta.summary import meta_log_path, read_meta_log  # the one reader of a training log's records
from graphflow.viz import figures
from graphflow.viz.drawing import drawing_of, layered_positions
from graphflow.viz.figures import legend_above, legend_beside

DPI = 130
MISSING = "#dddddd"
"""Fill of nodes (or matrix cells) that were not recorded."""
SIGNED = ("update", "gradient")


def _figure(width: float, height: float, layout: str | None = "constrained"):
    return figures.figure(width, height, DPI, layout)


def _save(fig, path: str | Path) -> Path:
    return figures.save(fig, path, DPI)


def _cmap(quantity: str):
    import matplotlib

    return matplotlib.colormaps["RdBu_r" if quantity in SIGNED else "viridis"].with_extremes(bad=MISSING)


def _norm(quantity: str, values: np.ndarray):
    from matplotlib.colors import Normalize, TwoSlopeNorm

    finite = values[np.isfinite(values)]
    if quantity in SIGNED:
        top = float(np.max(np.abs(finite))) if finite.size else 1.0
        top = top or 1.0
        return TwoSlopeNorm(0.0, -top, top)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:  # constant data: a range around the value, so that the colour bar reads it plainly
        pad = abs(lo) * 0.05 or 1.0
        return Normalize(lo - pad, lo + pad)
    return Normalize(lo, hi)


def _quantity_title(quantity: str, step: int | None) -> str:
    label = QUANTITIES[quantity]
    if step is not None:
        return f"{label} at step {step}"
    return f"total {label} over all steps" if quantity in ("update", "abs_update", "gradient") else f"mean {label} over steps"


# ---------------------------------------------------------------------------------------- curves
def block_losses(run) -> dict[str, np.ndarray]:
    """Loss block -> its loss per step and task [step, task] (the mean over examples and units);
    :meth:`graphflow.inspect.Run.task_loss` is their sum."""
    return {block: values.mean(axis=(2, 3)) for block, values in run.losses.items()}


def _loss_name(run, block: str) -> str:
    unit = run.graph.units.get(block)
    return f"{block} ({unit.fn} loss)" if unit is not None and hasattr(unit, "fn") else block


def plot_inner_curve(run, path: str | Path, title: str | None = None) -> Path:
    """The loss at every inner step (measured on the step's batch, before its update). A graph
    of several losses gets one line per loss block, named, and their sum labelled as the total.

    >>> import tempfile
    >>> from graphflow.inspect._example import example_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_inner_curve(example_run(), f"{tmp}/c.png").stat().st_size > 0
    True
    """
    per_block = block_losses(run)
    per_task = run.task_loss()  # [step, task]
    steps = np.arange(run.steps)
    tasks = per_task.shape[1]
    fig = _figure(6.8, 3.6)
    ax = fig.add_subplot()
    several = len(per_block) > 1
    total = (f"total of the {len(per_block)} losses" if several else _loss_name(run, next(iter(per_block)))) + \
        (f", mean of {tasks} tasks" if tasks > 1 else "")
    if tasks > 1:
        for t in range(tasks):
            ax.plot(steps, per_task[:, t], color="#1f77b4", alpha=0.25, lw=1,
                    label=("one task" + (" (total)" if several else "")) if t == 0 else None)
    ax.plot(steps, per_task.mean(axis=1), color="#1f77b4", lw=2, marker="o", label=total)
    if several:
        colours = ("#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
        for k, (block, values) in enumerate(per_block.items()):
            ax.plot(steps, values.mean(axis=1), color=colours[k % len(colours)], lw=1.5, marker="s", ms=4,
                    ls="--", label=_loss_name(run, block))
    positive = per_task[np.isfinite(per_task)]
    if positive.size and positive.min() > 0 and positive.max() > 10 * positive.min():
        ax.set_yscale("log")
    ax.set_xticks(steps)
    ax.set_xlabel("inner step")
    ax.set_ylabel("mean loss on the step's batch\n(before the step's update)")
    ax.set_title(title or ("inner loop: each loss and their total, per step" if several
                           else "inner loop: loss per step"))
    ax.grid(alpha=0.3)
    legend_beside(ax, fontsize=8)
    return _save(fig, path)


def plot_meta_log(log: str | Path, path: str | Path, title: str | None = None) -> Path:
    """Meta-training from a ``log.jsonl`` (or a training run folder holding one): the meta-loss per
    meta-step (and its running mean) and, when the log has evals, the eval metric before and after
    the inner loop per eval."""
    rec = read_meta_log(log)
    evals = rec["eval"]
    fig = _figure(12.5 if evals else 6.8, 3.6)
    ax = fig.add_subplot(1, 2 if evals else 1, 1)
    steps, loss = np.asarray(rec["step"]), np.asarray(rec["meta_loss"], np.float64)
    ax.plot(steps, loss, color="#1f77b4", alpha=0.35, lw=1, marker="o" if len(loss) == 1 else None,
            label="meta-loss")  # one meta-step is a point, not a line
    window = max(1, len(loss) // 20)
    if window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="#1f77b4", lw=2, label=f"running mean ({window} steps)")
    for k, s in enumerate(rec["rollback"]):
        ax.axvline(s, color="#d62728", ls=":", lw=1, label="rollback (non-finite)" if k == 0 else None)
    if loss.min() > 0 and loss.max() > 10 * loss.min():
        ax.set_yscale("log")
    ax.set_xlabel("meta-step")
    ax.set_ylabel("meta-loss")
    ax.set_title(title or "meta-training")
    ax.grid(alpha=0.3)
    legend_beside(ax, fontsize=8)
    if evals:
        bx = fig.add_subplot(1, 2, 2)
        metric = evals[0].get("metric", "eval")
        first = np.array([e["mean"][0] for e in evals])
        last = np.array([e["mean"][-1] for e in evals])
        inner = evals[0]["steps"][-1]
        bx.plot(rec["eval_step"], first, color="#7f7f7f", ls="--", marker=".", label="before the inner loop (step 0)")
        bx.plot(rec["eval_step"], last, color="#2ca02c", marker="o", label=f"after {inner} inner steps")
        bx.set_xlabel("meta-step")
        bx.set_ylabel(f"eval {metric} ({evals[0].get('tasks', '?')} tasks)")
        bx.set_title("evaluation during meta-training")
        bx.grid(alpha=0.3)
        legend_beside(bx, fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------- heatmaps
def _cells(graph, part: str, values: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Values of a part's recorded nodes laid out as its matrix (weights) or row (others); NaN elsewhere."""
    block, label = part.split("/")
    if label == "w":
        w = graph.weights[block]
        i, j = w.edges()
        out = np.full((w.n_src, w.n_dst), np.nan)
        out[i[nodes], j[nodes]] = values
        return out
    out = np.full((1, graph.part_size(part)), np.nan)
    out[0, nodes] = values
    return out


def plot_layer_heatmaps(run, path: str | Path, quantities: tuple[str, ...] = ("update", "message_out"),
                        step: int | None = None) -> Path:
    """Every dense layer with recorded weights or biases: the weight matrix (rows: inputs i,
    columns: neurons j) as a heatmap and its biases as a row beneath, one row of panels per
    quantity (``update``, ``abs_update``, ``gradient``, ``message_out``, ``message_in``).

    >>> import tempfile
    >>> from graphflow.inspect._example import example_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_layer_heatmaps(example_run(), f"{tmp}/h.svg").read_text().count("<svg") > 0
    True
    """
    graph = run.graph
    layers = []
    for w in graph.weights.values():
        parts = [p for p in (f"{w.name}/w", f"{w.dst}/b") if p in run.parts]
        if parts:
            layers.append((w.name, f"{w.name}/w", f"{w.dst}/b"))
    if not layers:
        raise GraphflowError("no weight or bias node was recorded: select some (e.g. 'dense2/w[*,*]') for heatmaps")
    quantities = tuple(q for q in quantities if any(node_values(run, q, step).get(p) is not None
                                                     for _, wp, bp in layers for p in (wp, bp)))
    fig = _figure(max(4.5, 4.3 * len(layers)), 3.6 * len(quantities) + 0.5, layout="constrained")
    grid = fig.add_gridspec(2 * len(quantities), len(layers), height_ratios=[8, 1] * len(quantities))
    for row, quantity in enumerate(quantities):
        values = node_values(run, quantity, step)
        for col, (block, wpart, bpart) in enumerate(layers):
            mats = {}
            for part in (wpart, bpart):
                if part in values:
                    mats[part] = _cells(graph, part, values[part], run.parts[part].nodes)
                elif part in graph.slots or part.endswith("/w"):
                    shape = (graph.weights[block].n_src, graph.weights[block].n_dst) if part.endswith("/w") \
                        else (1, graph.part_size(part))
                    mats[part] = np.full(shape, np.nan)
            both = np.concatenate([m.ravel() for m in mats.values()])
            norm, cmap = _norm(quantity, both), _cmap(quantity)
            ax = fig.add_subplot(grid[2 * row, col])
            image = ax.imshow(mats[wpart], cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
            ax.set_title(f"{wpart}: {_quantity_title(quantity, step)}", fontsize=8)
            rows_note, cols_note = _index_ticks(ax, mats[wpart].shape)
            ax.set_ylabel("input i" + rows_note, fontsize=8)
            ax.tick_params(labelsize=7, labelbottom=False)
            bx = fig.add_subplot(grid[2 * row + 1, col], sharex=ax)
            bx.imshow(mats[bpart], cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
            _index_ticks(bx, mats[bpart].shape)
            bx.set_yticks([0], [bpart], fontsize=7)
            bx.set_xlabel("neuron j" + cols_note, fontsize=8)
            bx.tick_params(labelsize=7)
            _colour_bar(fig, image, [ax, bx], both)
    fig.suptitle("per-layer heatmaps (grey: not recorded)", fontsize=10)
    return _save(fig, path)


def _index_ticks(ax, shape: tuple[int, int]) -> tuple[str, str]:
    """Ticks on the cells' centres labelled with their indices: every index, or every k-th on long
    axes (imshow's own ticks fall between cells). Returns what the row and column labels add."""
    (rows, row_stride), (cols, col_stride) = figures.index_ticks(shape[0]), figures.index_ticks(shape[1])
    ax.set_yticks(rows, [str(i) for i in rows])
    ax.set_xticks(cols, [str(j) for j in cols])
    return figures.stride_note(row_stride), figures.stride_note(col_stride)


def _colour_bar(fig, image, axes, values: np.ndarray):
    """A colour bar of plain numbers (no offset text); constant data gets one tick at its value."""
    bar = fig.colorbar(image, ax=axes, fraction=0.05, pad=0.03)
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() == finite.max():
        bar.set_ticks([float(finite[0])], labels=[f"{finite[0]:.4g}\n(every cell)"])
    else:
        figures.plain_numbers(bar.ax.yaxis)
    bar.ax.tick_params(labelsize=7)
    return bar


# ---------------------------------------------------------------------------------------- graph
def box_values(run, quantity: str, step: int | None, collapsed: bool | None = None):
    """The graph drawing of the run and one value per drawn box (a node, or a block part's mean)."""
    drawing = drawing_of(run.graph, collapsed)
    values = node_values(run, quantity, step)
    by_box: dict[str, float] = {}
    for part, vals in values.items():
        if drawing.collapsed:
            if np.isfinite(vals).any():
                by_box[part] = float(np.nanmean(vals))
        else:
            for nid, v in zip(run.parts[part].ids, vals):
                if np.isfinite(v):
                    by_box[nid] = float(v)
    return drawing, by_box


def plot_graph_quantity(run, path: str | Path, quantity: str = "abs_update", step: int | None = None,
                        collapsed: bool | None = None) -> Path:
    """The node graph (the layout of ``graphflow graph``) with every recorded node coloured by
    ``quantity`` at ``step`` (None: total or mean over the steps). Large graphs are drawn
    collapsed to block parts, coloured by the mean over their recorded nodes.

    >>> import tempfile
    >>> from graphflow.inspect._example import example_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_graph_quantity(example_run(), f"{tmp}/g.png", "update", step=1).stat().st_size > 0
    True
    """
    drawing, values = box_values(run, quantity, step, collapsed)
    positions = layered_positions(drawing)
    rows: dict[int, int] = {}
    for layer, _ in positions.values():
        rows[layer] = rows.get(layer, 0) + 1
    dx, dy = (1.25, 0.8) if drawing.collapsed else (0.9, 0.32)
    xy = {b: (layer * dx, ((rows[layer] - 1) / 2 - rank) * dy) for b, (layer, rank) in positions.items()}
    width = max(6.0, (max(rows) + 1) * dx + 1.5)
    height = max(3.2, max(rows.values()) * dy + 1.8)
    fig = _figure(width, height, layout=None)  # axes placed by hand: the graph, its colour bar
    ax = fig.add_axes((0.02, 0.04, 0.84, 0.86))
    ax.set_axis_off()
    finite = np.array(list(values.values()) or [np.nan])
    norm, cmap = _norm(quantity, finite), _cmap(quantity)
    for arrow in drawing.arrows:
        if arrow.direction == "forward":
            (x0, y0), (x1, y1) = xy[arrow.src], xy[arrow.dst]
            ax.plot([x0, x1], [y0, y1], color="#bbbbbb", lw=0.5, zorder=1)
    for box in drawing.boxes:
        x, y = xy[box.id]
        value = values.get(box.id)
        colour = cmap(norm(value)) if value is not None else "#ffffff"
        if drawing.collapsed:
            ax.text(x, y, box.label, ha="center", va="center", fontsize=8, zorder=3, color=_ink(colour),
                    bbox=dict(boxstyle="round,pad=0.35", fc=colour, ec="#333333" if value is not None else "#aaaaaa",
                              lw=1.0 if value is not None else 0.6, ls="-" if value is not None else "--"))
        else:
            ax.scatter([x], [y], s=90, c=[colour], edgecolors="#333333" if value is not None else "#aaaaaa",
                       linewidths=0.8 if value is not None else 0.5, zorder=3)
            ax.annotate(box.named_label, (x, y), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=5.5,
                        color="#333333" if value is not None else "#999999", zorder=4)
    xs, ys = zip(*xy.values())
    pad = 0.9 if drawing.collapsed else 0.5
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    from matplotlib.cm import ScalarMappable

    cax = fig.add_axes((0.88, 0.15, 0.02, 0.65))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax).set_label(QUANTITIES[quantity], fontsize=8)
    cax.tick_params(labelsize=7)
    what = "block parts coloured by the mean of their recorded nodes" if drawing.collapsed else "nodes"
    fig.text(0.02, 0.97, f"{_quantity_title(quantity, step)}: {what} (white: not recorded, or without this quantity; grey lines: forward arrows)",
             fontsize=9, va="top")
    return _save(fig, path)


def _ink(fill) -> str:
    """Black text on light fills, white on dark ones."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(fill)
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "#ffffff"


# ---------------------------------------------------------------------------------------- gradients
def plot_message_vs_gradient(run, path: str | Path, pattern: str | None = None) -> Path:
    """Learned updates and messages of the recorded weights/biases against their backprop gradients.

    Left: update against -gradient, every node at every step (colour: step). Middle: at every step
    the message channel that correlates best with the gradient at that step (the best channel of
    :meth:`~graphflow.inspect.queries.GradientComparison.table`, named in the legend), against the
    gradient. Right: per step, the correlations across nodes and the sign agreements, each
    best-channel point marked with its channel.

    >>> import tempfile
    >>> from graphflow.inspect._example import example_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_message_vs_gradient(example_run(), f"{tmp}/s.png").stat().st_size > 0
    True
    """
    import matplotlib

    cmp = message_vs_gradient(run, pattern)
    steps = cmp.gradient.shape[0]
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, steps))
    names = cmp.message.labels("channel")
    best = [names[c] for c in cmp.best_channel]
    fig = _figure(15, 4.4)
    ax, bx, cx = (fig.add_subplot(1, 3, k) for k in (1, 2, 3))
    for s in range(steps):
        g, u = cmp.gradient.values[s].ravel(), cmp.update.values[s].ravel()
        m = cmp.message.values[s, ..., cmp.best_channel[s]].ravel()
        ax.scatter(-g, u, s=14, color=colours[s], alpha=0.8, label=f"step {s}")
        bx.scatter(g, m, s=14, color=colours[s], alpha=0.8,
                   label=f"step {s}: {best[s]} (r = {cmp.message_correlation[s]:+.2f})")
    for axis in (ax, bx):
        axis.axhline(0, color="#999999", lw=0.6)
        axis.axvline(0, color="#999999", lw=0.6)
        axis.grid(alpha=0.25)
    ax.set_xlabel("−gradient (backprop, same loss)")
    ax.set_ylabel("update (learned)")
    ax.set_title(f"update vs −gradient ({len(cmp.nodes)} nodes)", fontsize=10)
    legend_beside(ax, markerscale=1.2)
    bx.set_xlabel("gradient (backprop)")
    bx.set_ylabel(f"{cmp.message_field}: the step's best channel (batch mean)")
    same = len(set(best)) == 1
    bx.set_title(f"message channel {best[0]} vs gradient" if same else
                 "each step's best message channel vs gradient", fontsize=10)
    legend_beside(bx, title="step: channel (corr)", title_fontsize=7, markerscale=1.2)
    x = np.arange(steps)
    cx.plot(x, cmp.update_correlation, marker="o", color="#1f77b4", label="corr(update, −gradient)")
    cx.plot(x, cmp.update_sign_agreement, marker="o", ls="--", color="#1f77b4", alpha=0.6,
            label="sign agreement update / −gradient")
    cx.plot(x, np.abs(cmp.message_correlation), marker="s", color="#ff7f0e",
            label="|corr(best channel, gradient)|")
    cx.plot(x, cmp.message_sign_agreement, marker="s", ls="--", color="#ff7f0e", alpha=0.6,
            label="sign agreement best channel")
    for s in range(steps):
        cx.annotate(best[s], (s, abs(cmp.message_correlation[s])), xytext=(0, 5), textcoords="offset points",
                    ha="center", fontsize=7, color="#ff7f0e")
    cx.axhline(0, color="#999999", lw=0.6)
    cx.axhline(0.5, color="#cccccc", lw=0.6, ls=":")
    cx.set_ylim(-1.05, 1.15)
    cx.set_xticks(x)
    cx.set_xlabel("inner step")
    cx.set_title("agreement with backprop, per step", fontsize=10)
    legend_beside(cx)
    cx.grid(alpha=0.25)
    return _save(fig, path)


def plot_node_report(run, path: str | Path, nodes: list[str] | None = None, max_nodes: int = 6) -> Path:
    """A few nodes side by side, one row each: update next to -gradient per step (if recorded),
    incoming and outgoing message norms per step, and the outgoing message's channels per step.

    >>> import tempfile
    >>> from graphflow.inspect._example import example_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_node_report(example_run(), f"{tmp}/n.png").stat().st_size > 0
    True
    """
    nodes = (nodes or run.node_ids())[:max_nodes]
    fig = _figure(13, 2.8 * len(nodes) + 0.3)
    x = np.arange(run.steps)
    for row, nid in enumerate(nodes):
        hist = run.node(nid)
        ax = fig.add_subplot(len(nodes), 3, 3 * row + 1)
        if "update" in hist:
            upd = hist["update"].mean("task").values
            width = 0.38
            ax.bar(x - width / 2, upd, width, color="#1f77b4", label="update (learned)")
            ax.set_ylabel("update", fontsize=8)
            ax.axhline(0, color="#999999", lw=0.6)
            if "gradient" in hist:
                gx = ax.twinx()
                gx.bar(x + width / 2, -hist["gradient"].mean("task").values, width, color="#d62728", alpha=0.7,
                       label="−gradient (backprop)")
                _align_zero(ax, gx)
                gx.set_ylabel("−gradient", fontsize=8, color="#d62728")
                gx.tick_params(labelsize=7, colors="#d62728")
                handles = ax.get_legend_handles_labels()[0] + gx.get_legend_handles_labels()[0]
                legend_above(ax, handles=handles)
            else:
                legend_above(ax)
        else:
            ax.text(0.5, 0.5, f"{hist.role} node: no update", ha="center", va="center", transform=ax.transAxes,
                    fontsize=8, color="#777777")
            ax.set_yticks([])
        ax.set_title(nid, fontsize=9, loc="left", fontweight="bold", pad=16)
        bx = fig.add_subplot(len(nodes), 3, 3 * row + 2)
        for name, colour in (("message_in", "#2ca02c"), ("message_out", "#9467bd")):
            if name in hist:
                bx.plot(x, hist.message_norm(name).mean("task").values, marker="o", color=colour,
                        label=f"{name.replace('_', ' ')} norm")
        bx.set_ylabel("mean norm", fontsize=8)
        bx.set_title("message norms (mean over examples)", fontsize=8, pad=16)
        if bx.lines:
            legend_above(bx)
        cx = fig.add_subplot(len(nodes), 3, 3 * row + 3)
        if "message_out" in hist:
            msg = hist["message_out"].mean(("task", "example"))  # [step, channel]
            top = float(np.nanmax(np.abs(msg.values))) or 1.0
            image = cx.imshow(msg.values.T, cmap=_cmap("update"), vmin=-top, vmax=top, aspect="auto",
                              interpolation="nearest")
            cx.set_yticks(range(msg.shape[1]), msg.labels("channel"), fontsize=6)
            cx.set_ylabel("channel", fontsize=8)
            cx.set_title("outgoing message, batch mean", fontsize=8, pad=16)
            fig.colorbar(image, ax=cx, fraction=0.05).ax.tick_params(labelsize=6)
        for axis in (ax, bx, cx):
            axis.set_xticks(x)
            axis.tick_params(labelsize=7)
            if row == len(nodes) - 1:
                axis.set_xlabel("inner step", fontsize=8)
    return _save(fig, path)


def _align_zero(ax, twin) -> None:
    """Make the zero lines of two y axes coincide: both symmetric around zero."""
    for axis in (ax, twin):
        top = max(abs(v) for v in axis.get_ylim()) or 1.0
        axis.set_ylim(-top, top)


def plot_group_distribution(run, path: str | Path) -> Path:
    """For every learner group with parameters: the spread of its updates over all its nodes per
    step (min–max, 10–90 % and 25–75 % bands, median).

    >>> import tempfile
    >>> from graphflow.inspect._example import example_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_group_distribution(example_run(), f"{tmp}/d.png").stat().st_size > 0
    True
    """
    dist = group_update_distribution(run)
    cols = min(3, len(dist))
    rows = -(-len(dist) // cols)
    fig = _figure(4.2 * cols, 3.0 * rows + 0.7)
    x = np.arange(run.steps)
    handles = []
    for k, (group, d) in enumerate(dist.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        q = d["quantiles"]
        band = lambda lo, hi: (q.sel(quantile=lo).values, q.sel(quantile=hi).values)  # noqa: E731
        ax.fill_between(x, *band(0.0, 1.0), color="#1f77b4", alpha=0.12, label="min–max")
        ax.fill_between(x, *band(0.1, 0.9), color="#1f77b4", alpha=0.22, label="10–90 %")
        ax.fill_between(x, *band(0.25, 0.75), color="#1f77b4", alpha=0.35, label="25–75 %")
        ax.plot(x, q.sel(quantile=0.5).values, color="#1f77b4", marker="o", lw=1.5, label="median")
        ax.axhline(0, color="#999999", lw=0.6)
        ax.set_title(f"group {group}", fontsize=9)
        ax.set_xticks(x)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("inner step", fontsize=8)
        ax.set_ylabel("update", fontsize=8)
        if k == 0:
            handles = ax.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=7, frameon=False)
    fig.suptitle("how each learner group's updates spread over all its nodes", fontsize=10)
    return _save(fig, path)
