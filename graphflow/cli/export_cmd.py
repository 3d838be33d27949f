"""``graphflow export``: a training checkpoint becomes a protocol file to ship (how the bundled demo
protocol ``graphflow/data/sinusoid_demo.npz`` is made)."""

from __future__ import annotations

from pathlib import Path

import typer

from graphflow.cli import app, fail


@app.command()
def export(
    source: Path = typer.Argument(..., metavar="CHECKPOINT|RUN_FOLDER",
                                  help="A training checkpoint, or a training run folder (its checkpoint.npz)."),
    out: Path = typer.Option(..., help="The protocol file to write (.npz)."),
    summary: bool = typer.Option(False, "--summary", help="Add a summary of the run's log.jsonl (meta-steps, "
                                                          "compute seconds, meta-loss per 500 steps, evals, rollbacks)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Write a protocol file (protocol and initial network, no optimizer state) from a training checkpoint."""
    from graphflow.meta.protocol_file import export_protocol, load_protocol
    from graphflow.meta.summary import summarize_log

    checkpoint = source / "checkpoint.npz" if source.is_dir() else source
    if not checkpoint.exists():
        fail(f"{checkpoint}: no such training checkpoint" + (" in the run folder" if source.is_dir() else ""))
    if out.suffix != ".npz":
        fail(f"--out {out}: a protocol file is an .npz archive; name it {out.stem}.npz")
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
    export_protocol(checkpoint, out, log_summary)
    _, _, _, meta = load_protocol(out)  # read back as `graphflow eval` will read it
    typer.echo(f"{out}: the protocol of {meta['name']} after {meta['trained_steps']} meta-steps"
               + (", with its log's summary" if summary else ""))
