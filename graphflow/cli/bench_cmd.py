"""``graphflow bench``: time graphflow against its baselines and write the report.

Examples::

    graphflow bench --quick --json bench.json
    graphflow bench --cases sinusoid-inner,mnist-inner
    graphflow bench --json results.json --plot docs/inner_step_scaling.png
    graphflow bench --cases scaling --max-nodes 300000
    graphflow bench --cases estimators --json estimators.json
    graphflow bench --reference /tmp/mplp-tf-venv/bin/python --cases sinusoid-inner,sinusoid-meta --rounds 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from graphflow.cli import app, fail


@app.command()
def bench(
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the JSON report here ('-': print it)"),
    backend: str = typer.Option("numpy", help="numpy or cupy"),
    quick: bool = typer.Option(False, "--quick", help="a smoke run for CI: few repetitions, a small sweep (well under a minute)"),
    cases: Optional[str] = typer.Option(None, help="comma-separated case groups (default all but scale): sinusoid-inner, "
                                                    "sinusoid-inner-4, sinusoid-meta, sinusoid-meta-64, mnist-inner, mnist-meta, "
                                                    "mnist784-inner, build, memory, scaling, scale (784-1000-1000-10: minutes), "
                                                    "estimators (bptt, truncated, es, pes at T = 20 and 100: "
                                                    "minutes; not in the default)"),
    plot: Optional[Path] = typer.Option(None, help="where to draw the scaling plot (default: docs/inner_step_scaling.png "
                                                   "when ./docs exists and not --quick)"),
    max_nodes: Optional[int] = typer.Option(None, "--max-nodes", help="cap the scaling sweep at this many weight nodes "
                                                                      "(default: 2,000,000; --quick: 40,000)"),
    reference: Optional[str] = typer.Option(None, "--reference", metavar="PYTHON",
                                            help="also time the reference implementation in this run: its timing script "
                                                 "run by this python (e.g. the one shared/reference/tf/setup.sh prints), "
                                                 "rounds alternating with graphflow's"),
    reference_script: Optional[Path] = typer.Option(None, "--reference-script",
                                                    help="the reference's timing script (default: "
                                                         "../shared/reference/tf/timing.py from the current directory)"),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="rounds of the timed cases (default: 3 with --reference, else 1); "
                                                                "each case reports the median of its round medians"),
) -> None:
    """Time inner and meta-training steps against a dense numpy baseline, the per-node interpreter and, with
    --reference, the reference implementation measured in the same run; print a table (and the JSON report)."""
    from graphflow.bench import ReferenceScript, format_table, run_benchmarks, to_json, write_json
    from graphflow.bench.reference import DEFAULT_SCRIPT

    if reference_script is not None and reference is None:
        fail("--reference-script needs --reference PYTHON (the python that runs it)")
    script = None if reference is None else ReferenceScript.locate(reference, reference_script or DEFAULT_SCRIPT)
    names = [c.strip() for c in cases.split(",") if c.strip()] if cases else None
    if plot is None and not quick and Path("docs").is_dir():
        plot = Path("docs") / "inner_step_scaling.png"
    report = run_benchmarks(names, quick=quick, backend=backend, plot=plot, max_nodes=max_nodes, reference=script,
                            rounds=rounds, progress=lambda message: typer.echo(f"[bench] {message}", err=True))
    typer.echo(format_table(report))
    if json_path is None or str(json_path) == "-":
        typer.echo(to_json(report))
    else:
        typer.echo(f"wrote {write_json(report, json_path)}")
