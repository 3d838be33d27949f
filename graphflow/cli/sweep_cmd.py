"""``graphflow sweep``: a grid of experiments, each an ordinary resumable run folder, and their results table.

Examples::

    graphflow sweep sweep.json --out sweeps/sharing               # one point after another, in this process
    graphflow sweep sweep.json --out sweeps/sharing --workers 4   # as Ray tasks, 4 at once (graphflow[ray])
    graphflow sweep sweep.json --out sweeps/sharing --workers 16 --address auto   # on a running Ray cluster
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from graphflow.cli import app
from graphflow.errors import GraphflowError


@app.command()
def sweep(
    sweep_file: Path = typer.Argument(..., metavar="SWEEP",
                                      help="The sweep, a JSON file: a base experiment, fixed fields and a grid of "
                                           "dotted experiment fields (docs/distributed.md)."),
    out: Path = typer.Option(..., help="The sweep folder: points/<label>/ per grid point, results.json, "
                                       "results.csv, summary.csv, results.png."),
    workers: int = typer.Option(0, min=0, help="Run this many points at once as Ray tasks (0 or 1: one after "
                                               "another in this process). Needs graphflow\\[ray]."),
    address: Optional[str] = typer.Option(None, help="With --workers: the Ray cluster to join ('auto', "
                                                     "'ray://host:port'; default: a local Ray instance)."),
) -> None:
    """Run every point of a grid of experiments (a rerun skips finished points and resumes the others)."""
    from graphflow.distributed.cluster import require_ray
    from graphflow.distributed.sweep import RAY_NEEDED_FOR, load_sweep, run_sweep, summary_table

    if address is not None and workers <= 1:
        raise GraphflowError("--address: a sweep runs on Ray only with --workers 2 or more")
    if workers > 1:
        require_ray(RAY_NEEDED_FOR)
    spec = load_sweep(sweep_file)
    typer.echo(f"sweep {spec.name}: {len(spec.points)} grid points in {out}", err=True)
    results = run_sweep(spec, out, workers=workers, address=address, report=lambda line: typer.echo(line, err=True))
    typer.echo(summary_table(results))
    typer.echo(f"results: {out / 'results.json'}, {out / 'results.csv'}, {out / 'summary.csv'}, "
               f"{out / 'results.png'}")
    if results["failed"]:
        raise GraphflowError(f"{len(results['failed'])} of {len(spec.points)} grid points failed: "
                             + "; ".join(f"{r['point']}: {r['error']}" for r in results["points"]
                                         if r["status"] == "failed")[:2000])
