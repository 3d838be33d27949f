"""``graphflow inspect`` and ``graphflow explore``: look at what single nodes did during an inner loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from graphflow.cli import app, fail
from graphflow.io.jsonl import finite_or_none

PLOT_KINDS = ("report", "curve", "heatmap", "graph", "scatter", "groups", "meta")
"""--kind values; ``meta`` reads a meta-training log instead of a run (see :func:`_meta_log`)."""
MAX_TABLES = 8
SOURCE_HELP = {
    "task": "Checkpoint sources: sinusoid or mnist (default: the checkpoint's).",
    "seed": "Checkpoint sources: seed of the task, its data and the initial network.",
    "inner_steps": "Checkpoint sources: inner steps (default: the checkpoint's).",
    "shots": "Checkpoint sources: examples per step (default: the checkpoint's).",
    "data": "Checkpoint sources, mnist: folder with the IDX files.",
    "preset": "Reference .npy checkpoints: sinusoid, maml-sinusoid or mnist.",
    "prior": "Reference .npy checkpoints: flat prior (initial network).",
}
"""Help of the options that say how ``inspect`` and ``explore`` record a run from a checkpoint."""
PICTURES = (".png", ".svg")
"""What ``inspect --plot`` writes."""


def _recording_source(source: Path, nodes: str | None, otherwise: str = "") -> Path:
    """The file to read or record: a training run folder stands for its ``checkpoint.npz`` (which
    needs ``--nodes``, as every checkpoint does); anything else is itself."""
    if not source.is_dir():
        return source
    checkpoint = source / "checkpoint.npz"
    if not checkpoint.exists():
        fail(f"{source}: a folder without a checkpoint.npz, not a training run folder")
    if not nodes:
        fail(f"{source} is a training run folder: say which nodes to record from its checkpoint "
             f"(--nodes PATTERN){otherwise}")
    return checkpoint


def _check_picture(plot: Path | None) -> None:
    if plot is not None and plot.suffix.lower() not in PICTURES:
        fail(f"--plot {plot}: pictures are written as {' or '.join(PICTURES)}")


def _source_options(nodes: str | None, task, seed, steps, shots, tasks, gradients, data, preset, prior):
    from graphflow.graph.ids import split_patterns
    from graphflow.recording import RunRequest

    return RunRequest(split_patterns(nodes) if nodes else [], task, seed, steps, shots, tasks, gradients,
                      str(data) if data else None, preset, str(prior) if prior else None)


def _parse_steps(text: str | None, total: int) -> list[int]:
    if not text:
        return list(range(total))
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"--steps {text!r}: give step numbers separated by commas, e.g. 0,2,4")
    bad = [s for s in steps if not 0 <= s < total]
    if bad:
        fail(f"--steps: step {bad[0]} is out of range; the run has steps 0..{total - 1}")
    return steps


def _fmt(v) -> str:
    v = float(v)
    if not np.isfinite(v):
        return "-"
    if v == 0:
        return "0"
    return f"{v:.3e}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4) else f"{v:.4f}"


def _loss_lines(run, step_list: list[int]) -> str:
    """The loss per step; with several loss blocks the total, labelled so, then each block by name."""
    line = lambda values: "  ".join(f"{s}: {_fmt(values[s])}" for s in step_list)  # noqa: E731
    if len(run.losses) == 1:
        return "loss per step: " + line(run.mean_loss())
    lines = [f"loss per step, total of {' + '.join(run.losses)}: " + line(run.mean_loss())]
    width = max(len(block) for block in run.losses)
    for block, values in run.losses.items():
        lines.append(f"  {block:<{width}}  " + line(values.mean(axis=(2, 3)).mean(axis=1)))
    return "\n".join(lines)


def _node_table(run, nid: str, steps: list[int]) -> str:
    hist = run.node(nid)
    cols = []
    if "message_in" in hist:
        cols.append(("|msg in|", hist.message_norm("message_in").mean("task").values))
    if "message_out" in hist:
        cols.append(("|msg out|", hist.message_norm("message_out").mean("task").values))
    if hist.role in ("weight", "bias"):
        cols.append(("value", hist.value.mean("task").values))
    if "update" in hist:
        cols.append(("update", hist["update"].mean("task").values))
    if "gradient" in hist:
        cols.append(("-gradient", -hist["gradient"].mean("task").values))
    lines = [f"{nid}  ({hist.role} node, learner group {hist.group or '-'})",
             f"  {'step':>4}  " + "  ".join(f"{name:>11}" for name, _ in cols)]
    for s in steps:
        lines.append(f"  {s:>4}  " + "  ".join(f"{_fmt(values[s]):>11}" for _, values in cols))
    return "\n".join(lines)


def _plot(run, kind: str, path: Path, nodes: list[str], pattern: str | None, steps: list[int] | None,
          quantity: str) -> Path:
    from graphflow.viz import run_plots

    step = steps[0] if steps else None
    if kind == "report":
        return run_plots.plot_node_report(run, path, nodes)
    if kind == "curve":
        return run_plots.plot_inner_curve(run, path)
    if kind == "heatmap":
        return run_plots.plot_layer_heatmaps(run, path, step=step)
    if kind == "graph":
        return run_plots.plot_graph_quantity(run, path, quantity, step)
    if kind == "scatter":
        return run_plots.plot_message_vs_gradient(run, path, pattern)
    return run_plots.plot_group_distribution(run, path)


def _meta_log(source: Path, plot: Path | None, run_only: dict[str, object]) -> None:
    """``--kind meta``: summarize a training run's ``log.jsonl`` (``source`` is the log or its run
    folder) and draw it into ``plot``; errors name the log file (and line)."""
    from graphflow.viz.run_plots import meta_log_path, plot_meta_log, read_meta_log

    given = [option for option, value in run_only.items() if value]
    if given:
        fail(f"{', '.join(given)}: not for --kind meta, which draws a meta-training log (these select "
             f"nodes and steps of an inner-loop run)")
    log = meta_log_path(source)
    rec = read_meta_log(log)
    steps, loss = rec["step"], rec["meta_loss"]
    typer.echo(f"{log}: {len(steps)} meta-step(s) ({steps[0]}..{steps[-1]}), "
               f"meta-loss {_fmt(loss[0])} at the first, {_fmt(loss[-1])} at the last")
    if rec["rollback"]:
        typer.echo("rolled back (non-finite) at meta-step(s): " + ", ".join(str(s) for s in rec["rollback"]))
    if rec["eval"]:
        ev, at = rec["eval"][-1], rec["eval_step"][-1]
        typer.echo(f"{len(rec['eval'])} eval(s); the last, at meta-step {at}: {ev.get('metric', 'eval')} "
                   f"{_fmt(ev['mean'][0])} before the inner loop, {_fmt(ev['mean'][-1])} after "
                   f"{ev['steps'][-1]} inner steps")
    if plot:
        title = f"{log.parent.name}: meta-training" if log.parent.name else None
        typer.echo(f"wrote {plot_meta_log(log, plot, title)}", err=True)


@app.command("inspect")
def inspect_command(
    source: Path = typer.Argument(..., metavar="RUN_FILE|CHECKPOINT|FOLDER",
                                  help="A run file (from --save-run, `mplp replay --inspect` or the Python API), or a "
                                       "checkpoint to record a run from with --nodes: a graphflow protocol/training "
                                       "checkpoint (.npz), a training run folder (its checkpoint.npz) or a reference "
                                       ".npy with --preset. With --kind meta: a training run folder or its log.jsonl."),
    nodes: str = typer.Option(None, "--nodes", help="Node ids or globs, comma-separated: 'dense2/w[3,*],relu1/act[*]'. "
                                                    "A checkpoint records these; a run shows these (default: all)."),
    steps: str = typer.Option(None, "--steps", help="Steps to show, e.g. 0,2,4 (default: all)."),
    json_out: Path = typer.Option(None, "--json", help="Write the selected histories and the query results as JSON."),
    plot: Path = typer.Option(None, "--plot", help="Draw a picture into this PNG or SVG file (see --kind)."),
    kind: str = typer.Option("report", "--kind", help=f"Picture for --plot: {', '.join(PLOT_KINDS)} (meta: the "
                                                      "meta-loss and evals of a training log, not a run)."),
    quantity: str = typer.Option("abs_update", "--quantity",
                                 help="--kind graph colours nodes by: update, abs_update, gradient, message_out, message_in."),
    top: int = typer.Option(5, "--top", help="How many of the most-changed nodes to list."),
    low: float = typer.Option(1e-6, "--low", help="A message norm below this counts as vanished."),
    high: float = typer.Option(1e3, "--high", help="A message norm above this counts as exploded."),
    save_run: Path = typer.Option(None, "--save-run", help="Checkpoint sources: also save the recorded run here (.npz)."),
    task: str = typer.Option(None, "--task", help=SOURCE_HELP["task"]),
    seed: int = typer.Option(0, "--seed", help=SOURCE_HELP["seed"]),
    inner_steps: int = typer.Option(None, "--inner-steps", help=SOURCE_HELP["inner_steps"]),
    shots: int = typer.Option(None, "--shots", help=SOURCE_HELP["shots"]),
    tasks: int = typer.Option(1, "--tasks", help="Checkpoint sources: tasks run side by side."),
    gradients: bool = typer.Option(True, "--gradients/--no-gradients",
                                   help="Checkpoint sources: record the backprop gradients of the selected weights/biases."),
    data: Path = typer.Option(None, "--data", help=SOURCE_HELP["data"]),
    preset: str = typer.Option(None, "--preset", help=SOURCE_HELP["preset"]),
    prior: Path = typer.Option(None, "--prior", help=SOURCE_HELP["prior"]),
) -> None:
    """Per-node histories of an inner loop: messages, updates and the backprop gradient beside them."""
    from graphflow.inspect import message_alerts, message_vs_gradient, top_changed
    from graphflow.inspect.run import part_of
    from graphflow.recording import open_run

    if kind not in PLOT_KINDS:
        fail(f"--kind {kind!r}: choose one of {', '.join(PLOT_KINDS)}")
    _check_picture(plot)
    if kind == "meta":
        return _meta_log(source, plot, {"--nodes": nodes, "--steps": steps, "--json": json_out, "--save-run": save_run})
    if source.suffix == ".jsonl":
        fail(f"{source} is a .jsonl log, not a run or checkpoint file; a training run's meta-training log is drawn "
             f"with --kind meta --plot F")
    source = _recording_source(source, nodes, ", or draw its meta-training log with --kind meta --plot F")
    request = _source_options(nodes, task, seed, inner_steps, shots, tasks, gradients, data, preset, prior)
    run = open_run(source, request)
    if save_run:
        run.save(save_run)
        typer.echo(f"saved the run -> {save_run}", err=True)
    shown = run.select(nodes) if nodes else run.node_ids()
    step_list = _parse_steps(steps, run.steps)

    typer.echo(repr(run))
    typer.echo(_loss_lines(run, step_list))
    for nid in shown[:MAX_TABLES]:
        typer.echo("")
        typer.echo(_node_table(run, nid, step_list))
    if len(shown) > MAX_TABLES:
        typer.echo(f"\n... and {len(shown) - MAX_TABLES} more node(s) (all of them in --json)")

    result = {"run": {"steps": run.steps, "tasks": run.header["tasks"], "batch": run.header["batch"],
                      "gradients": run.has_gradients, "meta": run.header.get("meta", {})},
              "patterns": run.patterns, "steps": step_list, "nodes": {},
              "loss": [float(v) for v in run.mean_loss()]}
    shown_fields = {name for part in {part_of(n) for n in shown} for name in run.parts[part].fields}
    if "update" in shown_fields:
        ranked = top_changed(run, top, nodes)
        typer.echo("\nchanged most (total update over all steps): " +
                   ", ".join(f"{nid} {_fmt(total)}" for nid, total in ranked))
        result["top_changed"] = [{"node": nid, "total_update": total} for nid, total in ranked]
    alerts = message_alerts(run, low, high, pattern=nodes)
    typer.echo(f"\nmessages outside [{low:g}, {high:g}]: " +
               (f"{len(alerts)}, first: step {alerts[0].step} {alerts[0].node} {alerts[0].kind} "
                f"(norm {_fmt(alerts[0].norm)})" if alerts else "none"))
    result["alerts"] = [a.__dict__ for a in alerts]
    if "gradient" in shown_fields:
        cmp = message_vs_gradient(run, nodes)
        if len(cmp.nodes) > 1:
            typer.echo(f"\nlearned update and message vs the backprop gradient, across {len(cmp.nodes)} nodes:")
            typer.echo(cmp.table(step_list))
        else:
            typer.echo("\n(correlations with the gradient are taken across nodes: select two or more, "
                       "e.g. --nodes 'dense2/w[*,0]')")
        result["message_vs_gradient"] = cmp.to_json()

    if json_out:
        for nid in shown:
            hist = run.node(nid)
            result["nodes"][nid] = {"part": hist.part, "role": hist.role, "group": hist.group,
                                    **{name: a.isel(step=step_list).to_json() for name, a in hist.fields.items()}}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(finite_or_none(result), allow_nan=False))
        typer.echo(f"\nwrote {json_out}", err=True)
    if plot:
        written = _plot(run, kind, plot, shown, nodes, step_list if steps else None, quantity)
        typer.echo(f"wrote {written}", err=True)


@app.command("explore")
def explore_command(
    source: Path = typer.Argument(..., metavar="RUN_FILE|CHECKPOINT|FOLDER",
                                  help="A run file, or a checkpoint or training run folder (its checkpoint.npz) with "
                                       "--nodes (recorded as `graphflow inspect` does)."),
    out: Path = typer.Option(None, "--out", help="The HTML file to write (default: the source with .html: "
                                                 "runs/sin.html for runs/sin)."),
    nodes: str = typer.Option(None, "--nodes", help="Checkpoint sources: the nodes to record."),
    collapsed: bool = typer.Option(None, "--collapsed/--per-node",
                                   help="Draw block parts (--collapsed) or scalar nodes (--per-node); default: "
                                        "collapsed above 300 nodes."),
    task: str = typer.Option(None, "--task", help=SOURCE_HELP["task"]),
    seed: int = typer.Option(0, "--seed", help=SOURCE_HELP["seed"]),
    inner_steps: int = typer.Option(None, "--inner-steps", help=SOURCE_HELP["inner_steps"]),
    shots: int = typer.Option(None, "--shots", help=SOURCE_HELP["shots"]),
    data: Path = typer.Option(None, "--data", help=SOURCE_HELP["data"]),
    preset: str = typer.Option(None, "--preset", help=SOURCE_HELP["preset"]),
    prior: Path = typer.Option(None, "--prior", help=SOURCE_HELP["prior"]),
) -> None:
    """Write one self-contained HTML page to explore a run: graph, step slider, per-node histories."""
    from graphflow.recording import open_run
    from graphflow.viz.explorer import write_explorer

    if out is not None and out.suffix.lower() not in (".html", ".htm"):
        fail(f"--out {out}: the explorer is an HTML page; name it {out.stem}.html")
    target = out or (source.resolve() if source.is_dir() else source).with_suffix(".html")
    source = _recording_source(source, nodes)
    run = open_run(source, _source_options(nodes, task, seed, inner_steps, shots, 1, True, data, preset, prior))
    write_explorer(run, target, collapsed)
    typer.echo(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB); open it in a browser")
