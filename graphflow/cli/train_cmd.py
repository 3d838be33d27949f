"""``graphflow train``, ``graphflow eval``, ``graphflow demo`` and ``graphflow mplp metagrad``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from graphflow.cli import app, fail
from graphflow.cli.mplp_cmd import mplp


@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The experiment: a JSON file of the fields of "
                                                              "docs/experiments.md (schemas/experiment.schema.json)."),
    out: Path = typer.Option(None, help="The run folder (default: runs/<name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run folder's checkpoint.npz exactly."),
    accept_checkpoint: bool = typer.Option(False, "--accept-checkpoint",
                                           help="With --resume: continue the checkpoint's experiment even where "
                                                "CONFIG differs from it."),
    steps: int = typer.Option(None, min=1, help="Stop after this many meta-steps in all (default: meta.steps)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    workers: int = typer.Option(None, min=0, help="Compute each meta-gradient on this many Ray workers, each a "
                                                  "slice of the outer batch (0: in this process; default: the "
                                                  "experiment's distributed field). Needs graphflow's ray extra."),
    address: str = typer.Option(None, help="With --workers: the Ray cluster to join ('auto', 'ray://host:port'; "
                                           "default: a local Ray instance sized to this machine)."),
    tensorboard: bool = typer.Option(False, "--tensorboard",
                                     help="Also write TensorBoard event files into OUT/tb (meta-loss, evals, "
                                          "histograms of each learner group's updates and messages): "
                                          "tensorboard --logdir OUT. Needs graphflow's tensorboard extra."),
) -> None:
    """Meta-train a protocol: progress bar, JSONL log, evals, atomic checkpoints, exact resume."""
    from graphflow.api import close_trainer, experiment_spec, finish, open_trainer, run_folder

    spec = with_workers(experiment_spec(config), workers, address)
    trainer = open_trainer(spec, run_folder(spec, out), resume, steps, accept_checkpoint, tensorboard)
    if resume:
        typer.echo(f"resuming {trainer.exp.name} at meta-step {trainer.step}", err=True)
    try:
        trainer.train(steps, progress=progress)
    finally:
        close_trainer(trainer)
    typer.echo(json.dumps(finish(trainer).summary()))


def with_workers(spec, workers: int | None, address: str | None):
    """The experiment with its ``distributed`` field as ``--workers`` and ``--address`` say (unchanged without them)."""
    from graphflow.spec import parse_experiment_spec

    if workers is None and address is None:
        return spec
    if workers == 0:
        if address is not None:
            fail("--address: a run joins a Ray cluster only with --workers 1 or more")
        return spec.model_copy(update={"distributed": None})
    if workers is None:
        if spec.distributed is None:
            fail("--address: say how many Ray workers the run uses (--workers N)")
        workers = spec.distributed.workers
    data = spec.model_dump(mode="json")
    data["distributed"] = {"engine": "ray", "workers": workers, "address": address}
    return parse_experiment_spec(data)


def check_plot_path(plot: Path | None) -> None:
    """Refuse a picture format matplotlib cannot write before any work is done."""
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        fail(f"--plot {plot}: use a .png, .svg or .pdf file")


def check_finite_curves(curves: dict) -> None:
    """A protocol (or baseline) whose losses turned NaN or infinite is an error, not a table of NaN."""
    for name, curve in curves.items():
        bad = ~np.isfinite(np.asarray(curve.mean, np.float64))
        if bad.any():
            step = curve.steps[int(np.argmax(bad))]
            fail(f"{name}: the {curve.metric} is not finite from inner step {step} on (the learner diverged)")


@app.command("eval")
def evaluate(
    checkpoint: Path = typer.Argument(None, metavar="CHECKPOINT|RUN_FOLDER|NAME",
                                      help="A protocol file, training checkpoint or training run folder, the name "
                                           "of a bundled protocol (default: sinusoid_demo, the demo's), a published "
                                           "MPLP checkpoint (.npy; its preset and regime found from its layout), or a "
                                           "sweep folder (every point with a checkpoint, and mean ± std across them)."),
    tasks: int = typer.Option(100, min=1, help="Fresh tasks to evaluate on (the same for every learner)."),
    seed: int = typer.Option(0, min=0, help="Seed of the tasks and the initial networks."),
    steps: int = typer.Option(None, min=1, help="Inner steps (default: the experiment's meta.inner_steps)."),
    as_json: bool = typer.Option(False, "--json", help="Print the curves as JSON instead of a table."),
    plot: Path = typer.Option(None, help="Draw the curves into this PNG, SVG or PDF file."),
    adam_lr: float = typer.Option(0.01, min=0.0, help="Learning rate of the Adam baseline (backprop on the same graph)."),
    sgd_lr: float = typer.Option(0.1, min=0.0, help="Learning rate of the SGD baseline (backprop on the same graph)."),
    protocol: str = typer.Option(None, "--protocol", metavar="NAME",
                                 help="A bundled protocol by name instead of CHECKPOINT (see docs/reproduction.md)."),
    data: Path = typer.Option(None, help="The MNIST folder (IDX files; default: the experiment's task.data_dir)."),
    graph: str = typer.Option(None, metavar="PRESET|SPEC.json",
                              help="Probe: run the protocol on this graph instead of its own (a preset such as "
                                   "mnist-784, or a graph spec file); layer sizes may differ, learner groups must match."),
    activation: list[str] = typer.Option(None, "--activation", metavar="OLD=NEW",
                                         help="Probe: swap an activation function of the graph (e.g. sigmoid=step); "
                                              "repeatable."),
) -> None:
    """Evaluate a learned protocol against Adam and SGD (backprop on the same graph, same tasks)."""
    from graphflow.api import bundled_protocols, evaluate_sweep, is_sweep_folder, load_protocol, probe_protocol
    from graphflow.api import evaluate as evaluate_protocol

    check_plot_path(plot)
    if protocol is not None:
        if checkpoint is not None:
            fail(f"--protocol {protocol}: give a bundled protocol's name or CHECKPOINT, not both")
        if protocol not in bundled_protocols():
            fail(f"--protocol {protocol}: no such bundled protocol (bundled: {', '.join(bundled_protocols())})")
        checkpoint = protocol
    swaps = {}
    for item in activation or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            fail(f"--activation {item}: write OLD=NEW, e.g. sigmoid=step")
        swaps[old] = new
    if checkpoint is not None and is_sweep_folder(checkpoint):
        if graph is not None or swaps or plot:
            fail(f"{checkpoint}: a sweep folder is evaluated point by point; --graph, --activation and --plot take "
                 f"one protocol (a point's folder, {checkpoint}/points/LABEL)")
        sweep = evaluate_sweep(checkpoint, tasks=tasks, seed=seed, steps=steps, adam_lr=adam_lr, sgd_lr=sgd_lr,
                               data=data)
        for curves in sweep.points.values():
            check_finite_curves(curves)
        typer.echo(json.dumps(sweep.to_json()) if as_json else sweep.table())
        return
    trained = load_protocol(checkpoint)
    if graph is not None or swaps:
        trained = probe_protocol(trained, graph, swaps)
    curves = evaluate_protocol(trained, tasks=tasks, seed=seed, steps=steps, adam_lr=adam_lr, sgd_lr=sgd_lr, data=data)
    check_finite_curves(curves)
    if plot:
        from graphflow.viz.curves import plot_eval_curves

        name = trained.header.get("name")
        plot_eval_curves(curves, plot, protocol=f"{name} ({trained.path.name})" if name else str(trained.path))
    typer.echo(json.dumps(curves.to_json()) if as_json else curves.table())


@app.command()
def demo(
    plot: Path = typer.Option(Path("graphflow_demo.png"), help="Draw the demo into this PNG, SVG or PDF file."),
    seed: int = typer.Option(5, min=0, help="Seed of the sine task and the initial network shown (the summary's "
                                           "tasks use seed + 1)."),
    tasks: int = typer.Option(100, min=1, help="Fresh tasks for the summary numbers."),
) -> None:
    """A fresh network learns a sine in 5 steps with graphflow's own learned protocol, next to Adam."""
    check_plot_path(plot)
    from graphflow.baselines import BackpropBaseline
    from graphflow.engine import Engine
    from graphflow.evaluation import evaluate_sinusoid
    from graphflow.meta.protocol_file import BUNDLED, load_protocol
    from graphflow.tasks import SinusoidTask
    from graphflow.viz.curves import plot_demo

    graph, protocol, _, meta = load_protocol(BUNDLED)
    engine = Engine(graph, protocol)
    adam = BackpropBaseline(engine, "adam", 0.01)
    rng = np.random.default_rng(seed)
    task = SinusoidTask(float(rng.uniform(0.1, 0.5)), float(rng.uniform(0, np.pi)))
    x, y = task.sample(rng, 50)
    xs, ys = x.reshape(5, 1, 10, 1), y.reshape(5, 1, 10, 1)
    grid = np.linspace(-5, 5, 200, dtype=np.float32).reshape(1, 200, 1)
    init = engine.init_network(rng, 1)
    traces = {}
    for name, learner in (("graphflow", engine), ("adam", adam)):
        state = learner.network_from_arrays({k: engine.be.to_numpy(v) for k, v in init.params.items()}) \
            if name == "adam" else init
        preds = [engine.be.to_numpy(learner.predict(state, grid)[graph.losses[0].name])[0, :, 0]]
        for k in range(5):
            state, _ = learner.step(state, xs[k], ys[k])
            preds.append(engine.be.to_numpy(learner.predict(state, grid)[graph.losses[0].name])[0, :, 0])
        traces[name] = preds
    truth = task(grid[0, :, 0])
    typer.echo(f"task: y = {task.amplitude:.3f} sin(x + {task.phase:.3f}); 5 inner steps of 10 points")
    typer.echo(f"{'step':>4}  {'graphflow MPLP':>15}  {'Adam lr 0.01':>13}   (eval L2 on 200 points)")
    for k in range(6):
        l_g = float(np.mean((traces['graphflow'][k] - truth) ** 2) / 2)
        l_a = float(np.mean((traces['adam'][k] - truth) ** 2) / 2)
        typer.echo(f"{k:>4}  {l_g:>15.5f}  {l_a:>13.5f}")
    summary_seed = seed + 1  # other tasks than the one drawn above
    curves = {name: evaluate_sinusoid(learner, tasks=tasks, seed=summary_seed) for name, learner in
              (("graphflow", engine), ("adam", adam))}
    typer.echo(f"over {tasks} fresh tasks (seed {summary_seed}), step-5 eval loss: graphflow "
               f"{curves['graphflow'].mean[-1]:.4f}, Adam {curves['adam'].mean[-1]:.4f} "
               f"(step 0: {curves['graphflow'].mean[0]:.4f})")
    plot_demo(grid[0, :, 0], truth, traces, x[:, 0], y[:, 0], curves, plot, meta)
    typer.echo(f"plot: {plot}")


@mplp.command()
def metagrad(
    preset: str = typer.Option(..., help="The reference preset: sinusoid or maml-sinusoid."),
    checkpoint: Path = typer.Option(..., help="A reference checkpoint (flat float32 .npy)."),
    case: Path = typer.Option(..., help="The case file: x, y (steps, B, 1), xe, ye (H, 1), init_W<n>."),
    out: Path = typer.Option(..., help="Where to write meta_loss and grad/<name> (.npz)."),
    prior: Path = typer.Option(None, help="Initial weights from this flat prior instead of the case's init_W<n> "
                                          "(its biases are replaced by zeros, as in the case format)."),
    hint_weight: float = typer.Option(0.7, help="Weight of the mean hint loss (after each inner step) in the "
                                                "meta-loss."),
    heldout_weight: float = typer.Option(0.3, help="Weight of the held-out loss (after the last inner step) in the "
                                                   "meta-loss."),
    dtype: str = typer.Option("float32", help="float32 or float64 (for checks; the gradients are written in it)."),
) -> None:
    """The reference regime's meta-loss of one case and its gradient for every trainable parameter."""
    from graphflow.interop.mplp import gradient_names, load_checkpoint
    from graphflow.interop.traces import dense_layer_keys
    from graphflow.meta.metaloss import MetaBatch, MetaGradient

    if preset not in ("sinusoid", "maml-sinusoid"):
        fail(f"metagrad supports the sinusoid presets, not {preset!r}")
    graph, protocol = load_checkpoint(preset, checkpoint)
    try:
        data = np.load(case)
    except FileNotFoundError:
        fail(f"{case}: no such case file")
    missing = [k for k in ("x", "y", "xe", "ye") if k not in data.files]
    if missing:
        fail(f"{case}: missing {', '.join(missing)}")
    if dtype not in ("float32", "float64"):
        fail(f"--dtype {dtype!r}: use float32 or float64")
    np_dtype = np.float64 if dtype == "float64" else np.float32
    batch = MetaBatch(data["x"][None], data["y"][None], data["xe"][None], data["ye"][None])
    prior_params = None
    if prior is not None:
        from graphflow.interop.mplp import load_prior

        prior_params = load_prior(graph, prior)
    init = {}
    for n, (wkey, bkey) in enumerate(dense_layer_keys(graph), start=1):
        if prior_params is not None:
            init[wkey] = prior_params[wkey][None]
        elif f"init_W{n}" in data.files:
            init[wkey] = data[f"init_W{n}"][None]
        else:
            fail(f"{case}: init_W{n} is missing (or pass --prior)")
        init[bkey] = np.zeros((1, graph.units[bkey.split('/')[0]].size), np.float32)
    trainable = protocol.trainable(train_g=preset != "maml-sinusoid")
    mg = MetaGradient(graph, protocol, dtype=np_dtype, trainable=trainable)
    loss, grads = mg(protocol, batch, init, hint_weight, heldout_weight)
    names = gradient_names(graph, protocol)
    result = {"meta_loss": np.asarray(loss, np.float64)}
    result.update({f"grad/{names[key]}": np.asarray(g, np_dtype) for key, g in grads.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **result)
    typer.echo(f"meta_loss {loss:.9g}; {len(result) - 1} gradients -> {out}")
