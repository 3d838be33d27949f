"""``graphflow bench``: time graphflow against its baselines and write the report.

Examples::

    graphflow bench --quick --json bench.json
    graphflow bench --cases sinusoid-inner,mnist-inner
    graphflow bench --json results.json --plot docs/inner_step_scaling.png
    graphflow bench --cases scaling --max-nodes 300000
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from graphflow.cli import app


@app.command()
def bench(
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the JSON report here ('-': print it)"),
    backend: str = typer.Option("numpy", help="numpy or cupy"),
    quick: bool = typer.Option(False, "--quick", help="a smoke run for CI: few repetitions, a small sweep (well under a minute)"),
    cases: Optional[str] = typer.Option(None, help="comma-separated case groups (default all): sinusoid-inner, sinusoid-meta, "
                                                    "mnist-inner, mnist-meta, mnist784-inner, build, memory, scaling"),
    plot: Optional[Path] = typer.Option(None, help="where to draw the scaling plot (default: docs/inner_step_scaling.png "
                                                   "when ./docs exists and not --quick)"),
    max_nodes: Optional[int] = typer.Option(None, "--max-nodes", help="cap the scaling sweep at this many weight nodes "
                                                                      "(default: 2,000,000; --quick: 40,000)"),
) -> None:
    """Time inner and meta-training steps against a dense numpy baseline, the per-node interpreter and the
    reference implementation's stored figures; print a table (and the JSON report)."""
    from graphflow.bench import format_table, run_benchmarks, to_json, write_json

    names = [c.strip() for c in cases.split(",") if c.strip()] if cases else None
    if plot is None and not quick and Path("docs").is_dir():
        plot = Path("docs") / "inner_step_scaling.png"
    report = run_benchmarks(names, quick=quick, backend=backend, plot=plot, max_nodes=max_nodes,
                            progress=lambda message: typer.echo(f"[bench] {message}", err=True))
    typer.echo(format_table(report))
    if json_path is None or str(json_path) == "-":
        typer.echo(to_json(report))
    else:
        typer.echo(f"wrote {write_json(report, json_path)}")
