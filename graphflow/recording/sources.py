"""Where a run comes from: a saved run file, or a protocol checkpoint plus a task to run it on.

:func:`open_run` is what ``graphflow inspect`` and ``graphflow explore`` call: given a run file it
reads it; given a checkpoint (a graphflow protocol or training checkpoint, or a reference ``.npy``
checkpoint with its preset) it samples an inner loop of the task with a seed and records it. That
runs the engine, which is why this is :mod:`graphflow.recording`'s and not :mod:`graphflow.inspect`'s
(which reads run files only).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphflow.engine import Engine
from graphflow.errors import GraphflowError
from graphflow.inspect.run import HEADER_KEY, NPY_MAGIC, ZIP_MAGIC, Run, is_run_file, load_run
from graphflow.io import DAMAGED_FILE_ERRORS
from graphflow.recording.inspector import Inspector

REFERENCE_DEFAULTS = {"sinusoid": ("sinusoid", 5, 10), "maml-sinusoid": ("sinusoid", 2, 10), "mnist": ("mnist", 20, 8)}
"""Reference preset -> (task, inner steps, shots) of its published regime."""


@dataclass(frozen=True)
class RunRequest:
    """How to record a run from a checkpoint (anything left None comes from the checkpoint)."""

    patterns: list[str]
    task: str | None = None
    """``sinusoid`` or ``mnist``."""
    seed: int = 0
    steps: int | None = None
    shots: int | None = None
    tasks: int = 1
    gradients: bool = True
    data_dir: str | None = None
    """MNIST: the folder with the IDX files."""
    preset: str | None = None
    """For a reference ``.npy`` checkpoint: sinusoid, maml-sinusoid or mnist."""
    prior: str | None = None
    """For a reference ``.npy`` checkpoint: a flat prior (the initial network)."""


def inner_loop_data(graph, task: str, rng: np.random.Generator, steps: int, shots: int, tasks: int,
                    data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inner-loop batches ``xs``, ``ys`` [steps, tasks, shots, n] of ``tasks`` fresh tasks.

    >>> import graphflow as gf
    >>> g = gf.build(gf.stack(1, gf.Dense(2), gf.L2Loss()))
    >>> xs, ys = inner_loop_data(g, "sinusoid", np.random.default_rng(0), steps=3, shots=4, tasks=2)
    >>> xs.shape, ys.shape
    ((3, 2, 4, 1), (3, 2, 4, 1))
    """
    if task == "sinusoid":
        from graphflow.tasks import sample_sinusoid_meta_batch

        batch = sample_sinusoid_meta_batch(rng, tasks, steps, shots, 1)
        return np.swapaxes(batch["x"], 0, 1), np.swapaxes(batch["y"], 0, 1)
    if task == "mnist":
        if not data_dir:
            raise GraphflowError("the mnist task needs the folder with the IDX files (--data DIR)")
        from graphflow.tasks import load_mnist_task, mnist_batches

        return mnist_batches(load_mnist_task(data_dir), rng, steps, shots, tasks=tasks)
    raise GraphflowError(f"unknown task {task!r}; use sinusoid or mnist")


def _load_engine_source(path: Path, request: RunRequest):
    """(graph, protocol, initial network or None, (task, steps, shots, data dir), description)."""
    if path.suffix == ".npy":
        from graphflow.interop.mplp import load_checkpoint, load_prior

        if request.preset not in REFERENCE_DEFAULTS:
            raise GraphflowError(f"{path}: a reference .npy checkpoint needs --preset "
                                 f"({', '.join(REFERENCE_DEFAULTS)})")
        graph, protocol = load_checkpoint(request.preset, path)
        init = load_prior(graph, request.prior) if request.prior else None
        task, steps, shots = REFERENCE_DEFAULTS[request.preset]
        return graph, protocol, init, (task, steps, shots, None), f"reference checkpoint {path.name} ({request.preset})"
    from graphflow.meta.protocol_file import initial_network_arrays, load_protocol
    from graphflow.spec import ExperimentSpec

    graph, protocol, init, meta = load_protocol(path)
    exp = ExperimentSpec.model_validate(meta["experiment"])
    data_dir = getattr(exp.task, "data_dir", None)
    steps = meta.get("step", meta.get("trained_steps"))
    desc = f"{exp.name} ({path.name}" + (f", meta-step {steps})" if steps is not None else ")")
    return graph, protocol, initial_network_arrays(init), (exp.task.kind, exp.meta.inner_steps, exp.meta.shots,
                                                             data_dir), desc


def record_from_checkpoint(path: str | Path, request: RunRequest, backend: str = "numpy") -> Run:
    """Sample an inner loop of the checkpoint's task (seeded) and record the requested nodes.

    The initial network is the checkpoint's (MAML) initialization when it has one, else a fresh
    random network drawn from the same seed.
    """
    path = Path(path)
    graph, protocol, init, (task, steps, shots, data_dir), desc = _load_engine_source(path, request)
    task = request.task or task
    steps, shots = request.steps or steps, request.shots or shots
    engine = Engine(graph, protocol, backend)
    rng = np.random.default_rng(request.seed)
    xs, ys = inner_loop_data(graph, task, rng, steps, shots, request.tasks, request.data_dir or data_dir)
    if init is not None:
        state = engine.network_from_arrays({k: np.broadcast_to(v, (request.tasks,) + v.shape) for k, v in init.items()})
    else:
        state = engine.init_network(rng, request.tasks)
    meta = {"title": f"{desc}: {task}, seed {request.seed}", "source": str(path), "task": task,
            "seed": request.seed, "steps": steps, "shots": shots}
    insp = Inspector(engine, request.patterns, gradients=request.gradients, meta=meta)
    insp.record(state, xs, ys)
    return insp.to_run()


def source_kind(path: str | Path) -> str:
    """``run`` (an inspection run file), ``checkpoint`` (a graphflow ``.npz`` checkpoint) or
    ``reference`` (a reference ``.npy`` checkpoint); anything else is a :class:`GraphflowError`
    naming the file: a missing file, an archive too damaged to list, a plain array named ``.npz``,
    an archive that is neither a run nor a checkpoint.

    A run file damaged inside (a flipped byte, a missing array) is still a ``run``: reading it says
    what is wrong.
    """
    from graphflow.meta.checkpoint import META_KEY

    path = Path(path)
    if not path.exists():
        raise GraphflowError(f"{path}: no such run or checkpoint file")
    if path.is_dir():
        raise GraphflowError(f"{path}: a folder, not a run or checkpoint file")
    try:
        with open(path, "rb") as f:
            start = f.read(len(NPY_MAGIC))
    except OSError as err:
        raise GraphflowError(f"{path}: unreadable ({err.strerror or err})") from None
    if start.startswith(ZIP_MAGIC) and is_run_file(path):  # a run, whatever its name
        return "run"
    if path.suffix == ".npy":
        return "reference"
    if start == NPY_MAGIC:
        raise GraphflowError(f"{path}: a plain .npy array, not a run file or graphflow checkpoint (.npz archives); "
                             f"a reference checkpoint is read from a .npy file with --preset")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except DAMAGED_FILE_ERRORS as err:
        raise GraphflowError(f"{path}: unreadable: not an intact .npz archive, truncated or damaged "
                             f"({type(err).__name__}: {err})") from None
    if f"{HEADER_KEY}.npy" in names:
        return "run"
    if f"{META_KEY}.npy" in names:
        return "checkpoint"
    raise GraphflowError(f"{path}: neither an inspection run (no {HEADER_KEY} header) nor a graphflow checkpoint "
                         f"(no {META_KEY} header)")


def open_run(path: str | Path, request: RunRequest | None = None, backend: str = "numpy") -> Run:
    """A run file as it is, or a checkpoint recorded as ``request`` asks."""
    path = Path(path)
    if source_kind(path) == "run":
        return load_run(path)
    if request is None or not request.patterns:
        raise GraphflowError(f"{path} is a checkpoint, not a run: say which nodes to record (--nodes PATTERN)")
    return record_from_checkpoint(path, request, backend)
