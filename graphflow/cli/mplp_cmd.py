"""``graphflow mplp``: the reference MPLP checkpoints — replay a trace, evaluate a protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from graphflow.cli import Typer, app

mplp = Typer(no_args_is_help=True, help="Run the published MPLP protocols (reference checkpoints).")
app.add_typer(mplp, name="mplp")


def _engine(preset: str, checkpoint: Path, backend: str):
    from graphflow.engine import Engine
    from graphflow.interop.mplp import load_checkpoint

    graph, protocol = load_checkpoint(preset, checkpoint)
    return Engine(graph, protocol, backend)


@mplp.command()
def replay(
    preset: str = typer.Option(..., help="The reference preset: sinusoid, maml-sinusoid or mnist."),
    checkpoint: Path = typer.Option(..., help="A reference checkpoint (flat float32 .npy)."),
    trace: Path = typer.Option(..., help="The trace file, with case<k>/x, y, init_W<n>, init_b<n>."),
    out: Path = typer.Option(..., help="Where to write the replayed trace (.npz)."),
    prior: Path = typer.Option(None, help="A flat prior (initial network) for cases without init_*."),
    inspect: str = typer.Option(None, help="Node ids or patterns to record, comma-separated, e.g. 'dense4/w[*,0]'."),
    inspect_out: Path = typer.Option(None, help="The JSON file for what --inspect records (default: OUT with "
                                                ".inspect.json)."),
    backend: str = typer.Option("numpy", help="numpy or cupy."),
) -> None:
    """Run the inner loop of every case of a trace file and write the same keys.

    With --inspect, each case is recorded (graphflow.recording): the --inspect-out JSON holds every
    recorded node's history per case, and beside it one run file per case,
    INSPECT_OUT.CASE.run.npz, for `graphflow inspect` and `graphflow explore`.
    """
    from graphflow.graph.ids import split_patterns
    from graphflow.interop.mplp import load_prior
    from graphflow.interop.traces import initial_params, read_cases, replay_case
    from graphflow.recording import Inspector

    engine = _engine(preset, checkpoint, backend)
    prior_params = load_prior(engine.graph, prior) if prior else None
    patterns = split_patterns(inspect) if inspect else []
    target = inspect_out or out.with_suffix(".inspect.json")
    cases = read_cases(trace)
    written, inspected, run_files = {}, {}, []
    for name, case in cases.items():
        inspector = Inspector(engine, patterns, meta={"title": f"{preset} replay of {trace.name} [{name}]",
                                                      "source": str(checkpoint), "trace": str(trace), "case": name}) \
            if patterns else None
        params = initial_params(engine.graph, case, prior_params, f"{trace} [{name}]")
        for key, value in replay_case(inspector or engine, case, params).items():
            written[f"{name}/{key}"] = value
        if inspector is not None:
            run = inspector.to_run()
            inspected[name] = run.histories_json()
            run_files.append(run.save(target.with_name(f"{target.stem}.{name}.run.npz")))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **written)
    typer.echo(f"replayed {len(cases)} case(s) of {trace} -> {out}")
    if inspect:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"patterns": patterns, "cases": inspected,
                                      "runs": {name: str(p) for name, p in zip(cases, run_files)}}))
        typer.echo(f"recorded {sum(len(v) for v in inspected.values())} node histories -> {target} "
                   f"(run files: {', '.join(p.name for p in run_files)})")


@mplp.command("eval")
def evaluate(
    preset: str = typer.Option(..., help="The reference preset: sinusoid, maml-sinusoid or mnist."),
    checkpoint: Path = typer.Option(..., help="A reference checkpoint (flat float32 .npy)."),
    prior: Path = typer.Option(None, help="A flat prior: the initial network (maml-sinusoid)."),
    data: Path = typer.Option(None, help="The folder with the MNIST IDX files (mnist)."),
    tasks: int = typer.Option(100, min=1, help="Number of tasks (runs)."),
    seed: int = typer.Option(0, min=0, help="Seed of the tasks and the initial networks."),
    steps: int = typer.Option(None, min=1, help="Inner steps (default: 5 sinusoid, 2 maml-sinusoid, 20 mnist)."),
    as_json: bool = typer.Option(False, "--json", help="Print the curve as JSON instead of a table."),
    backend: str = typer.Option("numpy", help="numpy or cupy."),
) -> None:
    """The reference evaluation protocol: per-step mean and standard deviation over tasks."""
    from graphflow.cli import fail
    from graphflow.evaluation import evaluate_mnist, evaluate_sinusoid
    from graphflow.interop.mplp import load_prior

    engine = _engine(preset, checkpoint, backend)
    if preset == "mnist":
        if data is None:
            fail("mnist needs --data DIR (the directory with t10k-images-idx3-ubyte[.gz])")
        from graphflow.tasks import load_mnist_task

        curve = evaluate_mnist(engine, load_mnist_task(data), tasks=tasks, seed=seed, steps=steps or 20)
    else:
        prior_params = load_prior(engine.graph, prior) if prior else None
        default_steps = 2 if preset == "maml-sinusoid" else 5
        curve = evaluate_sinusoid(engine, tasks=tasks, seed=seed, steps=steps or default_steps, prior=prior_params)
    result = {"preset": preset, "checkpoint": str(checkpoint), "seed": seed, **curve.to_json()}
    typer.echo(json.dumps(result) if as_json else curve.table())
