"""The Python face of the command line: meta-train, evaluate and load protocols in three calls.

``gf.train`` is ``graphflow train``, ``gf.evaluate`` is ``graphflow eval`` and ``gf.load_protocol``
reads what both take; the commands call these functions, so the two never drift apart. They are
thin: the work is done by :class:`graphflow.meta.trainer.Trainer`, :mod:`graphflow.evaluation`
and :func:`graphflow.meta.protocol_file.load_protocol`.

>>> import graphflow as gf
>>> demo = gf.load_protocol("sinusoid_demo")           # the protocol bundled for the demo
>>> demo.kind, demo.graph.stats()["nodes"]["weight"]
('graphflow-protocol', 440)
>>> curves = gf.evaluate(demo, tasks=3, seed=0, steps=1)
>>> sorted(curves), curves["graphflow"].steps
(['adam', 'graphflow', 'sgd'], [0, 1])

Bad input is one :class:`graphflow.errors.GraphflowError` naming the argument, field or file.
This module imports the heavy parts (engine, trainer) only when a function runs, so that
``import graphflow`` stays light.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphflow.errors import GraphflowError, SpecError
from graphflow.meta.protocol_file import bundled_protocols, protocol_path  # noqa: F401 (graphflow.api's own names too)
from graphflow.spec import ExperimentSpec, load_spec, parse_experiment_spec, parse_graph_spec

if TYPE_CHECKING:
    from graphflow.evaluation import EvalCurve
    from graphflow.graph import Graph
    from graphflow.learners.protocol import Protocol
    from graphflow.meta.trainer import Trainer

LEARNERS = ("graphflow", "adam", "sgd")
"""What :func:`evaluate` compares: the protocol, then Adam and SGD (backprop on the same graph)."""


# ----------------------------------------------------------------------------------------------
# What the functions hand back


@dataclass(frozen=True)
class TrainedProtocol:
    """A protocol as read from a protocol file, a training checkpoint or a run folder.

    ``graph`` and ``protocol`` build an :class:`graphflow.engine.Engine`; ``init`` is the
    meta-trained initial network of a MAML run (None otherwise); ``header`` is the file's header
    (``kind``, ``experiment``, ``step`` or ``trained_steps``, ...).
    """

    path: Path | None
    """The file it was read from (None for the protocol a :class:`TrainResult` holds)."""
    experiment: ExperimentSpec = field(repr=False)
    graph: Graph = field(repr=False)
    protocol: Protocol = field(repr=False)
    init: dict | None = field(repr=False)
    header: dict = field(repr=False)

    @property
    def kind(self) -> str:
        """``graphflow-protocol`` (an exported protocol file) or ``graphflow-training-checkpoint``."""
        return self.header.get("kind", "")

    @property
    def trained_steps(self) -> int | None:
        """Meta-steps the protocol was trained for (None where the file does not say)."""
        steps = self.header.get("trained_steps", self.header.get("step"))
        return steps if isinstance(steps, int) and not isinstance(steps, bool) else None

    def __repr__(self) -> str:
        steps = self.trained_steps
        return (f"TrainedProtocol({str(self.path) if self.path else 'in memory'!r}: {self.experiment.name}, "
                f"{self.kind}" + (f", {steps} meta-steps" if steps is not None else "") + ")")

    def engine(self):
        """An :class:`graphflow.engine.Engine` running this protocol on its graph (the experiment's backend)."""
        from graphflow.engine import Engine

        return Engine(self.graph, self.protocol, self.experiment.backend)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` hands back: the run folder and what the run wrote into it.

    ``log`` holds every record of ``<folder>/log.jsonl`` in order (meta-steps, evals, rollbacks),
    also those written before a resume; :attr:`meta_losses` and :attr:`evals` are views of it.
    """

    folder: Path
    experiment: ExperimentSpec = field(repr=False)
    step: int
    """The meta-step the run reached (that of ``checkpoint.npz``)."""
    log: list[dict] = field(repr=False)
    graph: Graph = field(repr=False)
    protocol: Protocol = field(repr=False)
    """The final protocol (the learners' parameters)."""
    init: dict | None = field(repr=False)
    """The meta-trained initial network of a MAML run (None otherwise)."""

    def __repr__(self) -> str:
        losses, evals = self.meta_losses, len([r for r in self.log if "eval" in r])
        return (f"TrainResult({str(self.folder)!r}: {self.experiment.name} at meta-step {self.step}, "
                + (f"last meta-loss {losses[-1]:.4g}, " if losses else "") + f"{evals} eval(s))")

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.npz"

    @property
    def meta_losses(self) -> list[float]:
        """The meta-loss of every meta-step, in order."""
        return [r["meta_loss"] for r in self.log if "meta_loss" in r]

    @property
    def evals(self) -> dict[int, EvalCurve]:
        """The evaluations the run made (every ``eval_every`` meta-steps and at the end), by meta-step."""
        from graphflow.evaluation import EvalCurve

        return {r["step"]: EvalCurve(**r["eval"]) for r in self.log if "eval" in r}

    def trained_protocol(self) -> TrainedProtocol:
        """The final protocol as :func:`load_protocol` would read it from :attr:`checkpoint`."""
        return TrainedProtocol(None, self.experiment, self.graph, self.protocol, self.init,
                               {"kind": "graphflow-training-checkpoint", "step": self.step,
                                "experiment": self.experiment.model_dump(mode="json"), "name": self.experiment.name})

    def summary(self) -> dict:
        """What ``graphflow train`` prints: the step, the checkpoint, the last meta-step and eval records."""
        steps = [r for r in self.log if "meta_loss" in r]
        evals = [r for r in self.log if "eval" in r]
        return {"step": self.step, "checkpoint": str(self.checkpoint), "last": steps[-1] if steps else {},
                "eval": evals[-1]["eval"] if evals else None}


class Evaluation(dict):
    """Learner name -> :class:`graphflow.evaluation.EvalCurve` (``graphflow``, ``adam``, ``sgd``)."""

    trained_steps: int | None = None
    """Meta-steps of the protocol evaluated, where known (set by :func:`evaluate_sweep`)."""

    def to_json(self) -> dict:
        """What ``graphflow eval --json`` prints."""
        return {name: curve.to_json() for name, curve in self.items()}

    def table(self) -> str:
        """What ``graphflow eval`` prints: mean ± std per inner step, one column per learner."""
        first = next(iter(self.values()))
        lines = [f"{'step':>4}  " + "  ".join(f"{name:>18}" for name in self)]
        for k, step in enumerate(first.steps):
            lines.append(f"{step:>4}  " + "  ".join(f"{c.mean[k]:>9.4f} ± {c.std[k]:<6.4f}" for c in self.values()))
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Reading what users hand in


def experiment_spec(experiment) -> ExperimentSpec:
    """An :class:`ExperimentSpec` from a spec, a dict or the path of a JSON experiment file.

    >>> experiment_spec({"graph": {"kind": "stack", "inputs": 1, "layers": [{"kind": "loss", "fn": "l2"}]},
    ...                  "meta": {"steps": 0}})
    Traceback (most recent call last):
    ...
    graphflow.errors.SpecError: invalid experiment spec:
      meta.steps: Input should be greater than 0 (got 0)
    """
    if isinstance(experiment, ExperimentSpec):
        return experiment
    if isinstance(experiment, dict):
        return parse_experiment_spec(experiment)
    if isinstance(experiment, (str, Path)):
        spec = load_spec(experiment)
        if not isinstance(spec, ExperimentSpec):
            raise SpecError(f"{experiment}: a graph spec, not an experiment spec (it needs a 'graph' field and "
                            f"training settings)")
        return spec
    raise SpecError(f"experiment: expected an ExperimentSpec, a dict or the path of a JSON experiment file, not "
                    f"{type(experiment).__name__}")


def load_protocol(source: str | Path | None = None) -> TrainedProtocol:
    """The protocol of a protocol file, a training checkpoint, a run folder or a bundled name.

    Every header field and array is checked against the graph and learner the file names (a
    damaged file is a :class:`GraphflowError` naming the field or array). Default: the bundled
    demo protocol.

    >>> load_protocol().experiment.learner.kind
    'stateful'
    >>> load_protocol("no-such-protocol")
    Traceback (most recent call last):
    ...
    graphflow.errors.GraphflowError: no-such-protocol: no such checkpoint, run folder or bundled protocol (bundled: sinusoid_demo, maml-sinusoid, mnist, sinusoid)
    """
    from graphflow.meta.protocol_file import header_experiment
    from graphflow.meta.protocol_file import load_protocol as load_checked

    path = protocol_path(source)
    if path.suffix == ".npy":
        return published_protocol(path)
    graph, protocol, init, header = load_checked(path)
    return TrainedProtocol(path, header_experiment(header, path), graph, protocol, init, header)


PUBLISHED = "mplp-published-checkpoint"
"""The ``kind`` of a :class:`TrainedProtocol` read from a published MPLP checkpoint."""

NO_DATA = "(no data folder: a published checkpoint names none)"
"""The ``task.data_dir`` of a published MNIST checkpoint's experiment: evaluating it needs ``data``."""


def published_protocol(path: str | Path) -> TrainedProtocol:
    """A published MPLP checkpoint (a flat ``.npy``) with the experiment of its reference regime:
    the preset's graph and learner, its task, inner steps and shots (``graphflow mplp eval``'s
    defaults). MNIST reads no data folder of its own (evaluating it needs ``data``); a
    ``maml-sinusoid`` checkpoint comes with its prior, the initial network published beside it
    (:func:`graphflow.interop.mplp.published_prior`)."""
    from graphflow.interop.mplp import identify_checkpoint, load_published_prior, preset_graph_spec
    from graphflow.recording.sources import REFERENCE_DEFAULTS

    path = Path(path)
    preset, graph, protocol = identify_checkpoint(path)
    init = None
    if preset == "maml-sinusoid":
        try:
            init = load_published_prior(graph, path)
        except GraphflowError as err:
            raise GraphflowError(f"{err}; or graphflow mplp eval --preset maml-sinusoid --checkpoint {path} "
                                 f"--prior PRIOR") from None
    task, steps, shots = REFERENCE_DEFAULTS[preset]
    experiment = parse_experiment_spec({
        "name": f"published-{preset}", "graph": preset_graph_spec(preset).model_dump(mode="json"),
        "learner": protocol.spec.model_dump(mode="json"),
        "task": {"kind": "mnist", "data_dir": NO_DATA} if task == "mnist" else {"kind": task},
        "meta": {"inner_steps": steps, "shots": shots, "maml": init is not None}})
    return TrainedProtocol(path, experiment, graph, protocol, init, {"kind": PUBLISHED, "preset": preset})


def _as_trained(source) -> TrainedProtocol:
    if isinstance(source, TrainedProtocol):
        return source
    if isinstance(source, TrainResult):
        return source.trained_protocol()
    return load_protocol(source)


def _whole(name: str, value, minimum: int, optional: bool = False) -> int | None:
    """``value`` as a whole number of at least ``minimum`` (an error naming the argument otherwise)."""
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise GraphflowError(f"{name}: expected a whole number of at least {minimum}, not {value!r}")
    return int(value)


def _rate(name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise GraphflowError(f"{name}: expected a finite learning rate of at least 0, not {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------------------
# Meta-training


def run_folder(spec: ExperimentSpec, out: str | Path | None) -> Path:
    """Where a run of ``spec`` lives: ``out``, or ``runs/<name>`` (what ``graphflow train`` uses)."""
    return Path(out) if out is not None else Path("runs") / spec.name


def open_trainer(spec: ExperimentSpec, folder: Path, resume: bool = False, steps: int | None = None,
                 accept_checkpoint: bool = False, tensorboard: bool = False) -> Trainer:
    """A :class:`Trainer` for a fresh run in ``folder``, or one continuing its checkpoint (``resume``).

    A fresh run never overwrites a checkpoint; a resumed one needs a checkpoint of the same
    experiment (``accept_checkpoint``: continue the checkpoint's own) below ``steps`` (default:
    ``meta.steps``). With ``tensorboard``, the trainer also writes ``folder/tb/``
    (:class:`graphflow.meta.tensorboard.TensorBoardLog`; close it with :func:`close_trainer`).
    """
    if tensorboard:
        from graphflow.meta.tensorboard import require_tensorboardx

        require_tensorboardx()  # before any work
    trainer = _new_or_resumed(spec, folder, resume, steps, accept_checkpoint)
    if tensorboard:
        from graphflow.meta.tensorboard import TensorBoardLog

        TensorBoardLog(trainer)
    return trainer


def close_trainer(trainer: Trainer) -> None:
    """Stop a trainer's Ray workers and close its listeners (its TensorBoard event file)."""
    try:
        trainer.close()
    finally:
        for listener in list(trainer.listeners):
            if callable(getattr(listener, "close", None)):
                listener.close()


def _new_or_resumed(spec: ExperimentSpec, folder: Path, resume: bool, steps: int | None,
                    accept_checkpoint: bool) -> Trainer:
    from graphflow.meta.trainer import Trainer

    checkpoint = folder / "checkpoint.npz"
    if not resume:
        if checkpoint.exists():
            raise GraphflowError(f"{checkpoint} exists: pass --resume (resume=True) to continue it, or choose "
                                 f"another run folder (--out, out=)")
        return Trainer(spec, folder)
    if not checkpoint.exists():
        raise GraphflowError(f"--resume: no checkpoint at {checkpoint}")
    trainer = Trainer.resume(checkpoint, folder, config=spec, accept_checkpoint=accept_checkpoint)
    total = steps or trainer.exp.meta.steps
    if trainer.step >= total:
        asked = f"steps={total} (--steps)" if steps else f"meta.steps is {total}"
        raise GraphflowError(f"{checkpoint} is at meta-step {trainer.step} and the run's {asked}: nothing to do "
                             f"(ask for more steps to continue it: --steps N, or steps=N)")
    return trainer


def finish(trainer: Trainer) -> TrainResult:
    """The :class:`TrainResult` of a trainer whose run has ended (read back from its folder)."""
    from graphflow.io import read_records

    return TrainResult(trainer.out, trainer.exp, trainer.step, read_records(trainer.out / "log.jsonl", missing_ok=True),
                       trainer.graph, trainer.protocol, trainer.init)


def train(experiment, out: str | Path | None = None, resume: bool = False, progress: bool = True, *,
          steps: int | None = None, accept_checkpoint: bool = False, tensorboard: bool = False) -> TrainResult:
    """Meta-train a protocol, as ``graphflow train`` does: a run folder with its log, evals and checkpoint.

    Parameters
    ----------
    experiment
        An :class:`~graphflow.spec.ExperimentSpec`, a dict of the same fields, or the path of a
        JSON experiment file (``docs/experiments.md`` lists every field).
    out
        The run folder (default: ``runs/<experiment name>``). A fresh run refuses a folder that
        holds a checkpoint.
    resume
        Continue the folder's checkpoint exactly (the losses of an uninterrupted run).
    progress
        Show a progress bar (and say where a resumed run starts).
    steps
        Stop after this many meta-steps in all (default: ``meta.steps``).
    accept_checkpoint
        With ``resume``: continue the checkpoint's experiment where ``experiment`` differs from it.
    tensorboard
        Also write TensorBoard event files into ``<out>/tb/`` (meta-loss, evals, per learner group
        histograms of updates and messages: :mod:`graphflow.meta.tensorboard`); needs
        ``graphflow[tensorboard]``. A resumed run appends to them.

    ``docs/meta-training.md`` trains a free-form graph this way, end to end.
    """
    spec = experiment_spec(experiment)
    steps = _whole("steps", steps, 1, optional=True)
    trainer = open_trainer(spec, run_folder(spec, out), resume, steps, accept_checkpoint, tensorboard)
    if resume and progress:
        print(f"resuming {trainer.exp.name} at meta-step {trainer.step}", file=sys.stderr)
    try:
        trainer.train(steps, progress=progress)
    finally:
        close_trainer(trainer)
    return finish(trainer)


# ----------------------------------------------------------------------------------------------
# Evaluation


def evaluate(protocol: Any = None, tasks: int = 100, seed: int = 0, steps: int | None = None,
             adam_lr: float = 0.01, sgd_lr: float = 0.1, *, graph: Any = None,
             activations: dict[str, str] | None = None, data: str | Path | None = None) -> Evaluation:
    """A protocol against Adam and SGD on the same graph, tasks and initial networks (``graphflow eval``).

    ``protocol`` is a protocol file, a training checkpoint, a run folder, a bundled protocol's
    name (default: the demo's), or what :func:`load_protocol` or :func:`train` returned. The
    tasks are the experiment's (sinusoid: eval L2 on 100 points after each inner step; MNIST:
    accuracy on 100 held-out images), ``steps`` inner steps of ``meta.shots`` examples (default:
    ``meta.inner_steps``). ``evaluate(...).to_json()`` is what ``graphflow eval --json`` prints.

    The generalization probes run the protocol on another network at meta-test time
    (:func:`graphflow.learners.transfer.transfer_protocol`): ``graph`` (a preset name, a graph
    spec file or object) replaces the experiment's graph, and ``activations`` (``{"sigmoid":
    "step"}``) swaps activation functions in it. An MNIST graph's input size sets the image side
    (784 inputs: 28x28 images). ``data``: the MNIST folder (default: the experiment's
    ``task.data_dir``).

    >>> demo = load_protocol("sinusoid_demo")
    >>> curves = evaluate(demo, tasks=2, steps=1, activations={"relu": "tanh"})
    >>> curves["graphflow"].steps
    [0, 1]
    """
    from graphflow.baselines import BackpropBaseline
    from graphflow.evaluation import evaluate_mnist, evaluate_sinusoid

    tasks, seed = _whole("tasks", tasks, 1), _whole("seed", seed, 0)
    steps = _whole("steps", steps, 1, optional=True)
    adam_lr, sgd_lr = _rate("adam_lr", adam_lr), _rate("sgd_lr", sgd_lr)
    trained = _as_trained(protocol)
    if graph is not None or activations:
        trained = probe_protocol(trained, graph, activations)
    exp = trained.experiment
    engine = trained.engine()
    learners = dict(zip(LEARNERS, (engine, BackpropBaseline(engine, "adam", adam_lr),
                                   BackpropBaseline(engine, "sgd", sgd_lr))))
    n_steps = steps or exp.meta.inner_steps
    task_data = None
    if exp.task.kind == "mnist":
        if data is None and exp.task.data_dir == NO_DATA:
            raise GraphflowError(f"{trained.path}: a published MNIST checkpoint names no data folder: pass --data DIR "
                                 f"(data= in gf.evaluate)")
        task_data = _mnist_data(trained.graph, data if data is not None else exp.task.data_dir)
    elif data is not None:
        raise GraphflowError(f"data: the {exp.task.kind} task reads no data folder")
    curves = Evaluation()
    for name, learner in learners.items():
        if task_data is not None:
            curves[name] = evaluate_mnist(learner, task_data, tasks=tasks, seed=seed, steps=n_steps,
                                          batch=exp.meta.shots)
        else:
            curves[name] = evaluate_sinusoid(learner, tasks=tasks, seed=seed, steps=n_steps, shots=exp.meta.shots,
                                             prior=trained.init)
    return curves


@dataclass
class SweepEvaluation:
    """Every trained point of a sweep folder evaluated on the same tasks (:func:`evaluate_sweep`):
    each point's curves, and across the points the protocol's mean ± std per inner step and the
    best point."""

    points: dict = field(default_factory=dict)
    """Point label -> :class:`Evaluation`."""
    skipped: list = field(default_factory=list)
    """Labels of points with no checkpoint to evaluate (not started, or finished and kept as logs only)."""

    @property
    def metric(self) -> str:
        return next(iter(self.points.values()))["graphflow"].metric

    def across(self) -> dict:
        """The protocol's curve across the points: ``mean``, ``std`` (sample; 0 with one point) per
        inner step, and ``best``, the point whose last step is best (lowest loss, highest accuracy)."""
        import statistics

        curves = [e["graphflow"].mean for e in self.points.values()]
        mean = [statistics.fmean(v) for v in zip(*curves)]
        std = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in zip(*curves)]
        finals = {label: e["graphflow"].mean[-1] for label, e in self.points.items()}
        pick = max if self.metric == "accuracy" else min
        return {"metric": self.metric, "points": len(curves), "mean": mean, "std": std, "best": pick(finals, key=finals.get)}

    def to_json(self) -> dict:
        """What ``graphflow eval SWEEP_FOLDER --json`` prints."""
        return {"points": {label: e.to_json() for label, e in self.points.items()}, "across": self.across(),
                "skipped": self.skipped}

    def table(self) -> str:
        """What ``graphflow eval SWEEP_FOLDER`` prints: each point's last step, then across the points."""
        across = self.across()
        first = next(iter(self.points.values()))
        width = max(len(label) for label in self.points)
        # Points with learned initial networks (MAML) give Adam and SGD another start each: then every
        # point's row has its own baselines, and the last line none.
        own_baselines = any(e[name].mean != first[name].mean for e in self.points.values() for name in ("adam", "sgd"))
        lines = [f"{'point':<{width}}  {'meta-steps':>10}  {'graphflow':>18}"
                 + (f"  {'adam':>7}  {'sgd':>7}" if own_baselines else "") + f"  (last inner step, {across['metric']})"]
        for label, e in self.points.items():
            c = e["graphflow"]
            lines.append(f"{label:<{width}}  {e.trained_steps if e.trained_steps is not None else '-':>10}  "
                         f"{c.mean[-1]:>9.4f} ± {c.std[-1]:<6.4f}"
                         + (f"  {e['adam'].mean[-1]:>7.4f}  {e['sgd'].mean[-1]:>7.4f}" if own_baselines else ""))
        baselines = ("Adam and SGD from each point's own initial network" if own_baselines else
                     f"on the same tasks Adam {first['adam'].mean[-1]:.4f}, SGD {first['sgd'].mean[-1]:.4f}")
        lines.append(f"across {across['points']} points: {across['mean'][-1]:.4f} ± {across['std'][-1]:.4f} "
                     f"(std across points); best {across['best']}; {baselines}")
        if self.skipped:
            lines.append(f"not evaluated (no checkpoint): {', '.join(self.skipped)}")
        return "\n".join(lines)


def is_sweep_folder(path) -> bool:
    """Whether ``path`` is a folder ``graphflow sweep`` wrote (its ``sweep.json`` and ``points/``)."""
    path = Path(path)
    return (path / "sweep.json").is_file() and (path / "points").is_dir()


def evaluate_sweep(folder: str | Path, tasks: int = 100, seed: int = 0, steps: int | None = None,
                   adam_lr: float = 0.01, sgd_lr: float = 0.1, *, data: str | Path | None = None) -> SweepEvaluation:
    """Every point of a sweep folder that has a checkpoint, evaluated as :func:`evaluate` does on
    the same tasks and initial networks (a seeds sweep: the protocol's mean ± std across seeds,
    and the best seed)."""
    folder = Path(folder)
    if not is_sweep_folder(folder):
        raise GraphflowError(f"{folder}: not a sweep folder (no sweep.json and points/ in it)")
    out = SweepEvaluation()
    for point in sorted(p for p in (folder / "points").iterdir() if p.is_dir()):
        if not (point / "checkpoint.npz").is_file():
            out.skipped.append(point.name)
            continue
        trained = load_protocol(point)
        curves = evaluate(trained, tasks=tasks, seed=seed, steps=steps, adam_lr=adam_lr, sgd_lr=sgd_lr, data=data)
        curves.trained_steps = trained.trained_steps
        out.points[point.name] = curves
    if not out.points:
        raise GraphflowError(f"{folder}: no point of the sweep has a checkpoint to evaluate")
    return out


def _mnist_data(graph, directory):
    from graphflow.tasks import load_mnist_task

    pixels = graph.inputs[0].size
    side = math.isqrt(pixels)
    if side * side != pixels:
        raise GraphflowError(f"graph: an MNIST graph reads square images; its {pixels} inputs are not a square")
    return load_mnist_task(directory, size=side)


def probe_protocol(trained: TrainedProtocol, graph: Any = None,
                   activations: dict[str, str] | None = None) -> TrainedProtocol:
    """``trained`` moved onto another graph (``graph``: a preset name, a spec file, a spec; default
    its own) with activation functions swapped (``activations``: old name -> new name).

    >>> probe = probe_protocol(load_protocol("sinusoid_demo"), activations={"relu": "step"})
    >>> sorted(probe.graph.groups)[:3]
    ['dense0/b', 'dense0/w', 'dense2/b']
    >>> probe_protocol(load_protocol("sinusoid_demo"), activations={"sigmoid": "step"})
    Traceback (most recent call last):
    ...
    graphflow.errors.GraphflowError: activations: the graph has no sigmoid activation (it has: relu)
    """
    from graphflow.graph import build
    from graphflow.learners.transfer import transfer_protocol
    from graphflow.presets import graph_spec_for

    if trained.init is not None and graph is not None:
        raise GraphflowError("graph: a MAML protocol's meta-trained initial network fits its own graph only")
    if graph is None:
        spec = trained.experiment.graph
    elif isinstance(graph, (str, Path)):
        spec = graph_spec_for(graph)
    else:
        spec = graph
    if activations:
        spec = _swap_activations(spec, activations)
    target = build(spec)
    protocol = transfer_protocol(trained.protocol, trained.graph, target)
    experiment = trained.experiment.model_copy(update={"graph": parse_graph_spec(spec.model_dump(mode="json"))})
    return TrainedProtocol(trained.path, experiment, target, protocol, trained.init, trained.header)


def _swap_activations(spec, activations: dict[str, str]):
    """``spec`` with every activation ``old`` of ``activations`` replaced by its new name."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("kind") == "activation" and isinstance(node.get("fn"), str):
                found.add(node["fn"])
                if node["fn"] in activations:
                    node = dict(node, fn=activations[node["fn"]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    swapped = walk(spec.model_dump(mode="json"))
    absent = sorted(set(activations) - found)
    if absent:
        raise GraphflowError(f"activations: the graph has no {absent[0]} activation (it has: {', '.join(sorted(found))})")
    try:
        return parse_graph_spec(swapped)
    except SpecError as err:
        raise GraphflowError(f"activations: {err}") from None
