"""``graphflow export``: a training checkpoint becomes a protocol file to ship (how the bundled demo
protocol ``graphflow/data/sinusoid_demo.npz`` is made), or a safetensors file that PyTorch, JAX and
numpy load without graphflow."""

from __future__ import annotations

from pathlib import Path

import typer

from graphflow.cli import app, fail

FORMATS = {"npz": ".npz", "safetensors": ".safetensors"}
"""--format -> the suffix of the file it writes."""


@app.command()
def export(
    source: Path = typer.Argument(..., metavar="CHECKPOINT|RUN_FOLDER",
                                  help="A training checkpoint, or a training run folder (its checkpoint.npz); "
                                       "with --format safetensors also a protocol file."),
    out: Path = typer.Option(..., help="The file to write (.npz, or .safetensors with --format safetensors)."),
    format: str = typer.Option("npz", "--format",
                               help="npz: a graphflow protocol file (graphflow eval, inspect, explore read it); "
                                    "safetensors: the protocol's arrays by name with a JSON metadata entry "
                                    "'graphflow' (graph, learner, version, trained steps), for PyTorch, JAX or "
                                    "numpy without graphflow (needs graphflow\\[safetensors])."),
    summary: bool = typer.Option(False, "--summary", help="Add a summary of the run's log.jsonl (meta-steps, "
                                                          "compute seconds, meta-loss per 500 steps, evals, rollbacks)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Write a protocol file (protocol and initial network, no optimizer state) from a training checkpoint,
    or a safetensors file of its arrays (--format safetensors)."""
    from graphflow.meta.protocol_file import export_protocol, export_safetensors, load_protocol
    from graphflow.meta.summary import summarize_log

    if format not in FORMATS:
        fail(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    checkpoint = source / "checkpoint.npz" if source.is_dir() else source
    if not checkpoint.exists():
        fail(f"{checkpoint}: no such training checkpoint" + (" in the run folder" if source.is_dir() else ""))
    suffix = FORMATS[format]
    if out.suffix != suffix:
        what = "a protocol file is an .npz archive" if format == "npz" else "--format safetensors writes a .safetensors file"
        fail(f"--out {out}: {what}; name it {out.stem}{suffix}")
    if out.is_dir():
        fail(f"--out {out}: a folder; name the protocol file to write")
    if out.exists() and out.resolve() == checkpoint.resolve():
        fail(f"--out {out}: that is the training checkpoint itself; write the protocol file somewhere else")
    if out.exists() and not force:
        fail(f"--out {out} exists: pass --force to replace it")
    log_summary = None
    if summary:
        log = checkpoint.parent / "log.jsonl"
        if not log.exists():
            fail(f"--summary: no log.jsonl next to {checkpoint}")
        log_summary = summarize_log(log)
    if format == "safetensors":
        export_safetensors(checkpoint, out, log_summary)
        _, protocol, init, meta = load_protocol(checkpoint)
        steps = meta.get("step", meta.get("trained_steps"))
        typer.echo(f"{out}: the protocol of {meta['experiment'].get('name')} after {steps} meta-steps, "
                   f"{len(protocol.flat()) + len(init or {})} arrays" + (", with its log's summary" if summary else ""))
        return
    export_protocol(checkpoint, out, log_summary)
    _, _, _, meta = load_protocol(out)  # read back as `graphflow eval` will read it
    typer.echo(f"{out}: the protocol of {meta['name']} after {meta['trained_steps']} meta-steps"
               + (", with its log's summary" if summary else ""))
