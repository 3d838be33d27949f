"""Sweeps: a grid over experiment fields, each grid point an ordinary, resumable run folder.

A sweep file names a base experiment, fields set the same way in every point and a grid of
values (dotted field paths)::

    {"name": "sharing", "base": "tiny_sinusoid.json",
     "fixed": {"meta.steps": 200},
     "grid": {"learner.message_size": [1, 4, 8], "graph.sharing": ["layer", "kind"], "seed": [0, 1, 2]}}

``run_sweep`` writes::

    <out>/sweep.json              the sweep as run (its base experiment written out)
    <out>/points/<label>/         one experiment folder per grid point (experiment.json, log.jsonl,
                                  checkpoint.npz), as ``graphflow train`` writes it
    <out>/results.json            every point and, per config (the point without its seed), mean ± std
    <out>/results.csv             one row per point; summary.csv: one row per config
    <out>/results.png             final eval per inner step per config, and meta-step times

A rerun skips finished points (their checkpoint is at ``meta.steps``) and resumes the others from
their checkpoints (exactly, as ``graphflow train --resume``). Points run as Ray tasks
(``workers`` >= 2, at most that many at once) or one after another in this process.

>>> grid_labels({"learner.message_size": [1, 4], "seed": [0]})
['learner.message_size=1,seed=0', 'learner.message_size=4,seed=0']
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from graphflow.errors import GraphflowError, SpecError
from graphflow.spec import ExperimentSpec, format_validation_error, load_spec, parse_experiment_spec, read_json_file
from graphflow.spec.types import Text

SEED_FIELD = "seed"
"""The grid field that repeats a config: mean ± std are taken across its values."""
POINTS_FOLDER = "points"
RAY_NEEDED_FOR = "a sweep on Ray workers (--workers 2 or more)"
RESULT_FILES = ("results.json", "results.csv", "summary.csv", "results.png")


class SweepSpec(BaseModel):
    """A sweep file: a base experiment, fields fixed in every point, and the grid."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Text | None = None
    """The sweep's name (default: the sweep file's name without ``.json``)."""
    base: Text | dict[str, JsonValue]
    """The experiment every grid point starts from: the path of an experiment JSON file (relative
    to the sweep file) or the experiment itself."""
    fixed: dict[str, JsonValue] = {}
    """Dotted experiment fields set to the same value in every point (``{"meta.steps": 2}``)."""
    grid: dict[str, list[JsonValue]] = Field(min_length=1)
    """Dotted experiment fields and the values each takes; every combination is a point (the
    first field varies slowest). ``seed`` repeats each config: its points are averaged."""

    @field_validator("grid")
    @classmethod
    def _values_are_distinct(cls, grid: dict) -> dict:
        for path, values in grid.items():
            if not values:
                raise ValueError(f"{path}: no values (a grid field takes at least one)")
            texts = [json.dumps(v, sort_keys=True) for v in values]
            twice = sorted({t for t in texts if texts.count(t) > 1})
            if twice:
                raise ValueError(f"{path}: {', '.join(twice)} given more than once")
        return grid


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its label (also its folder's name), grid values and experiment."""

    label: str
    values: dict
    experiment: ExperimentSpec

    @property
    def config(self) -> dict:
        """The grid values but the seed: the points of one config differ only in their seed."""
        return {k: v for k, v in self.values.items() if k != SEED_FIELD}

    @property
    def seed(self) -> int:
        return self.experiment.seed


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its name, base experiment and points."""

    name: str
    spec: SweepSpec
    base: ExperimentSpec
    points: list[SweepPoint]

    @property
    def fields(self) -> list[str]:
        return list(self.spec.grid)


# ----------------------------------------------------------------------------------------------
# Reading sweep files


def load_sweep(path: str | Path) -> Sweep:
    """A sweep file, validated; every problem is a :class:`SpecError` naming the file and the field."""
    path = Path(path)
    data = read_json_file(path, "sweep file")
    return parse_sweep(data, where=str(path), base_dir=path.parent, default_name=path.stem)


def parse_sweep(data, where: str = "sweep", base_dir: str | Path = ".", default_name: str = "sweep") -> Sweep:
    """A :class:`Sweep` from the data of a sweep file.

    >>> base = {"graph": {"kind": "stack", "inputs": 1, "layers": [{"kind": "dense", "units": 1},
    ...                                                            {"kind": "loss", "fn": "l2"}]}}
    >>> [p.label for p in parse_sweep({"base": base, "grid": {"seed": [0, 1]}}).points]
    ['seed=0', 'seed=1']
    >>> parse_sweep({"base": base, "grid": {"learner.mesage_size": [1]}})
    Traceback (most recent call last):
    ...
    graphflow.errors.SpecError: sweep: grid: learner.mesage_size is not a field of the experiment (learner has no 'mesage_size'; its fields: kind, message_size, hidden, mlp_hidden, ...)
    """
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, f"sweep file {where}", data)) from None
    base = _base_experiment(spec.base, where, Path(base_dir))
    base_data = base.model_dump(mode="json")
    for section, fields in (("fixed", spec.fixed), ("grid", spec.grid)):
        for path in fields:
            _check_path(base_data, path, f"{where}: {section}")
    overlap = sorted(set(spec.fixed) & set(spec.grid))
    if overlap:
        raise SpecError(f"{where}: {', '.join(overlap)} is both fixed and in the grid")
    fixed = base_data
    for path, value in spec.fixed.items():
        fixed = _with_value(fixed, path, value)
    labels = grid_labels(spec.grid)
    points = []
    for label, values in zip(labels, grid_values(spec.grid)):
        data_point = fixed
        for path, value in values.items():
            data_point = _with_value(data_point, path, value)
        try:
            experiment = parse_experiment_spec(data_point)
        except SpecError as err:
            raise SpecError(f"{where}: grid point {label}: {err}") from None
        points.append(SweepPoint(label, values, experiment))
    return Sweep(spec.name or default_name, spec, base, points)


def _base_experiment(base, where: str, base_dir: Path) -> ExperimentSpec:
    if isinstance(base, dict):
        try:
            return parse_experiment_spec(base)
        except SpecError as err:
            raise SpecError(f"{where}: base: {err}") from None
    path = Path(base)
    path = path if path.is_absolute() else base_dir / path
    try:
        spec = load_spec(path)
    except SpecError as err:
        raise SpecError(f"{where}: base: {err}") from None
    if not isinstance(spec, ExperimentSpec):
        raise SpecError(f"{where}: base: {path} is a graph spec, not an experiment (it needs a 'graph' field and "
                        f"training settings)")
    return spec


def _check_path(data: dict, path: str, where: str) -> None:
    """A clear error when ``path`` (``learner.message_size``) names no field of the experiment."""
    parts = path.split(".")
    node, seen = data, []
    for part in parts:
        if not isinstance(node, dict):
            raise SpecError(f"{where}: {path} is not a field of the experiment ({'.'.join(seen)} is a value, "
                            f"not a section)")
        if part not in node:
            owner = ".".join(seen) or "the experiment"
            names = list(node)
            listed = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            raise SpecError(f"{where}: {path} is not a field of the experiment ({owner} has no {part!r}; its fields: "
                            f"{listed})")
        node = node[part]
        seen.append(part)


def _with_value(data: dict, path: str, value) -> dict:
    """A copy of ``data`` with the field at the dotted ``path`` set to ``value``."""
    head, _, rest = path.partition(".")
    out = dict(data)
    out[head] = _with_value(data[head], rest, value) if rest else value
    return out


def grid_values(grid: dict) -> list[dict]:
    """Every combination of the grid's values, the first field varying slowest."""
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def _value_text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    return re.sub(r"[^A-Za-z0-9._+\-]", "_", text)


def grid_labels(grid: dict) -> list[str]:
    """The folder name of every grid point (``learner.message_size=4,seed=0``); two alike are an error."""
    labels = [",".join(f"{path}={_value_text(v)}" for path, v in values.items()) for values in grid_values(grid)]
    seen: dict[str, int] = {}
    for k, label in enumerate(labels):
        if label in seen:
            raise SpecError(f"grid points {seen[label] + 1} and {k + 1} would share the folder {label!r} (their values "
                            f"differ only in characters a folder name cannot hold)")
        if len(label.encode()) > 200:
            raise SpecError(f"grid point {label[:60]}...: its folder name would be longer than 200 bytes; use shorter "
                            f"values or fewer grid fields")
        seen[label] = k
    return labels


# ----------------------------------------------------------------------------------------------
# Running points


def checkpoint_step(folder: Path, steps: int | None = None) -> int | None:
    """The meta-step of a run folder's checkpoint (None without one).

    A finished point may go without its checkpoint (a sweep kept in git keeps the logs of its
    finished points only): with ``steps`` (the point's ``meta.steps``), a folder whose log ends
    with meta-step ``steps`` and its eval counts as finished at ``steps``.
    """
    from graphflow.io import read_records
    from graphflow.meta.checkpoint import load_checkpoint

    path = Path(folder) / "checkpoint.npz"
    if path.exists():
        return int(load_checkpoint(path)[1]["step"])
    if steps is None:
        return None
    records = read_records(Path(folder) / "log.jsonl", missing_ok=True)
    last = [r for r in records if "meta_loss" in r][-1:]
    evals = [r for r in records if "eval" in r][-1:]
    finished = last and evals and last[0]["step"] == steps and evals[0]["step"] == steps
    return steps if finished else None


def run_point(experiment_json: str, folder: str) -> dict:
    """Train one grid point in ``folder``: skipped when finished, resumed from its checkpoint when
    there is one, started otherwise. What happened: ``{"status": "skipped"|"resumed"|"ran", "step", "from"}``.

    This is what each Ray task runs (plain arguments, so that it runs the same on any machine
    that sees ``folder``); a task that is retried after its process died resumes its checkpoint.
    """
    from graphflow.meta.trainer import Trainer

    experiment = parse_experiment_spec(experiment_json)
    folder_path = Path(folder)
    start = checkpoint_step(folder_path, experiment.meta.steps)
    if start is not None and start >= experiment.meta.steps:
        return {"status": "skipped", "step": start, "from": start}
    if start is None:
        trainer = Trainer(experiment, folder_path)
    else:
        trainer = Trainer.resume(folder_path / "checkpoint.npz", folder_path, config=experiment)
    trainer.train(progress=False)
    return {"status": "ran" if start is None else "resumed", "step": trainer.step, "from": start or 0}


def run_sweep(sweep: Sweep, out: str | Path, workers: int = 0, address: str | None = None,
              report: Callable[[str], None] | None = None) -> dict:
    """Run (or continue) every point of ``sweep`` under ``out``; write and return the results table.

    ``workers`` 0 or 1 runs the points one after another in this process; more runs them as Ray
    tasks, at most ``workers`` at once, on a local Ray instance (``address`` None) or the cluster
    at ``address`` (the run folders must be on a file system every machine sees). A point that
    fails is recorded with its error; the others go on.
    """
    from graphflow.io import FolderLock, atomic_write_text

    if workers > 1:
        from graphflow.distributed.cluster import require_ray

        require_ray(RAY_NEEDED_FOR)
    out = Path(out).resolve()
    report = report or (lambda _line: None)
    with FolderLock(out):
        atomic_write_text(out / "sweep.json", json.dumps(_resolved(sweep), indent=2))
        folders = {p.label: out / POINTS_FOLDER / p.label for p in sweep.points}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        jobs = [(p.label, p.experiment.model_dump_json(), str(folders[p.label])) for p in sweep.points]
        if workers <= 1:
            outcomes = {}
            for label, experiment, folder in jobs:
                outcomes[label] = _attempt(run_point, experiment, folder)
                report(_outcome_line(label, outcomes[label]))
        else:
            outcomes = _run_on_ray(jobs, workers, address, report)
        results = sweep_results(sweep, out, outcomes)
        write_results(results, out)
    return results


def _attempt(fn, *args) -> dict:
    started = time.perf_counter()
    try:
        outcome = fn(*args)
    except GraphflowError as err:
        outcome = {"status": "failed", "error": str(err)}
    outcome["seconds"] = time.perf_counter() - started
    return outcome


def _outcome_line(label: str, outcome: dict) -> str:
    if outcome["status"] == "failed":
        return f"{label}: failed: {outcome['error']}"
    if outcome["status"] == "skipped":
        return f"{label}: finished before (meta-step {outcome['step']}), skipped"
    how = f"resumed at meta-step {outcome['from']}" if outcome["status"] == "resumed" else "ran"
    return f"{label}: {how}, meta-step {outcome['step']} ({outcome['seconds']:.1f} s)"


def _run_on_ray(jobs: list, workers: int, address: str | None, report) -> dict:
    from graphflow.distributed.cluster import connect, require_ray, shutdown_if_started

    ray = require_ray(RAY_NEEDED_FOR)
    started = connect(address)
    try:
        # A task whose process dies is retried; the retry resumes the point's checkpoint.
        task = ray.remote(_attempt).options(num_cpus=1, max_retries=2)
        waiting = list(jobs)
        running: dict = {}
        outcomes: dict = {}
        while waiting or running:
            while waiting and len(running) < workers:
                label, experiment, folder = waiting.pop(0)
                running[task.remote(run_point, experiment, folder)] = label
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                label = running.pop(ref)
                try:
                    outcomes[label] = ray.get(ref)
                except ray.exceptions.RayError as err:  # the task's process kept dying, or Ray lost it
                    outcomes[label] = {"status": "failed", "error": f"{type(err).__name__}: {err}", "seconds": None}
                report(_outcome_line(label, outcomes[label]))
        return {label: outcomes[label] for label, _, _ in jobs}
    finally:
        shutdown_if_started(started)


def _resolved(sweep: Sweep) -> dict:
    """The sweep as run, its base experiment written out (a sweep folder says what it holds)."""
    data = sweep.spec.model_dump(mode="json")
    data["name"] = sweep.name
    data["base"] = sweep.base.model_dump(mode="json")
    return data


# ----------------------------------------------------------------------------------------------
# The results table


def point_result(point: SweepPoint, folder: Path, outcome: dict | None = None) -> dict:
    """What a point's run folder says: its step, last meta-loss, median seconds per meta-step and final eval."""
    from graphflow.io import read_records

    records = read_records(folder / "log.jsonl", missing_ok=True)
    steps = [r for r in records if "meta_loss" in r]
    evals = [r for r in records if "eval" in r]
    step = checkpoint_step(folder, point.experiment.meta.steps) or 0
    finished = step >= point.experiment.meta.steps
    final = evals[-1] if evals and evals[-1]["step"] == step and finished else None
    status = (outcome or {}).get("status", "finished" if finished else "unfinished")
    result = {
        "point": point.label, "folder": str(folder), "config": point.config, "seed": point.seed,
        "status": status if status == "failed" or not finished else "finished",
        "ran": status, "step": step,
        "meta_loss": steps[-1]["meta_loss"] if steps else None,
        "seconds_per_step": statistics.median(r["seconds"] for r in steps) if steps else None,
        "meta_loss_curve": meta_loss_curve(steps),
        "eval": ({"metric": final["eval"]["metric"], "steps": final["eval"]["steps"], "mean": final["eval"]["mean"],
                  "std": final["eval"]["std"], "tasks": final["eval"]["tasks"]} if final else None),
    }
    if outcome and outcome.get("error"):
        result["error"] = outcome["error"]
    return result


CURVE_POINTS = 50
"""Points of a run's meta-loss curve in the sweep's results: the mean meta-loss of each of this
many runs of consecutive meta-steps (fewer when the run has fewer meta-steps)."""


def meta_loss_curve(records: list[dict], points: int = CURVE_POINTS) -> dict:
    """A run's meta-loss as ``points`` means of consecutive meta-steps: ``{"steps": [the last
    meta-step of each], "mean": [...]}`` (non-finite meta-losses, rolled back, left out).

    >>> meta_loss_curve([{"step": s, "meta_loss": float(s)} for s in range(1, 7)], points=3)
    {'steps': [2, 4, 6], 'mean': [1.5, 3.5, 5.5]}
    """
    width = max(1, math.ceil(len(records) / points))
    steps, means = [], []
    for lo in range(0, len(records), width):
        part = records[lo:lo + width]
        values = [r["meta_loss"] for r in part if r["meta_loss"] is not None and math.isfinite(r["meta_loss"])]
        if values:
            steps.append(part[-1]["step"])
            means.append(statistics.fmean(values))
    return {"steps": steps, "mean": means}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with one value)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def sweep_results(sweep: Sweep, out: Path, outcomes: dict | None = None) -> dict:
    """The results table: every point, and per config (the points alike but for their seed) mean ± std across seeds."""
    outcomes = outcomes or {}
    points = [point_result(p, Path(out) / POINTS_FOLDER / p.label, outcomes.get(p.label)) for p in sweep.points]
    configs: dict[str, dict] = {}
    for point, result in zip(sweep.points, points):
        key = json.dumps(point.config, sort_keys=True)
        configs.setdefault(key, {"config": point.config, "points": []})["points"].append(result)
    summary = []
    for entry in configs.values():
        done = [r for r in entry["points"] if r["status"] == "finished" and r["eval"] is not None]
        row = {"config": entry["config"], "seeds": [r["seed"] for r in done], "n": len(done),
               "of": len(entry["points"])}
        row["seconds_per_step_mean"], row["seconds_per_step_std"] = _mean_std(
            [r["seconds_per_step"] for r in done if r["seconds_per_step"] is not None])
        curves = [r["meta_loss_curve"] for r in done if r["meta_loss_curve"]["steps"]]
        if curves:  # the seeds' curves side by side, as far as the shortest goes
            length = min(len(c["steps"]) for c in curves)
            row["meta_loss_steps"] = curves[0]["steps"][:length]
            per_point = list(zip(*[c["mean"][:length] for c in curves]))
            row["meta_loss_mean"] = [_mean_std(list(v))[0] for v in per_point]
            row["meta_loss_std"] = [_mean_std(list(v))[1] for v in per_point]
        if done:
            first = done[0]["eval"]
            row["eval_metric"], row["eval_steps"] = first["metric"], first["steps"]
            per_step = list(zip(*[r["eval"]["mean"] for r in done]))
            row["eval_mean"] = [_mean_std(list(v))[0] for v in per_step]
            row["eval_std"] = [_mean_std(list(v))[1] for v in per_step]
        summary.append(row)
    return {"sweep": sweep.name, "fields": sweep.fields, "points": points, "configs": summary,
            "failed": [r["point"] for r in points if r["status"] == "failed"]}


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value)


def results_csv(results: dict) -> str:
    """One row per point: its config fields, seed, status, step, meta-loss, seconds per meta-step,
    and its final eval (mean over the eval tasks) after each inner step."""
    fields = [f for f in results["fields"] if f != SEED_FIELD]
    steps = max((len(r["eval"]["steps"]) for r in results["points"] if r["eval"]), default=0)
    header = ["point", *fields, "seed", "status", "step", "meta_loss", "seconds_per_step", "eval_metric",
              *[f"eval_step_{k}" for k in range(steps)]]
    rows = [header]
    for r in results["points"]:
        ev = r["eval"] or {"metric": None, "mean": []}
        rows.append([r["point"], *[_cell(r["config"][f]) for f in fields], r["seed"], r["status"], r["step"],
                     _cell(r["meta_loss"]), _cell(r["seconds_per_step"]), _cell(ev["metric"]),
                     *[_cell(v) for v in ev["mean"]]])
    return _csv(rows)


def summary_csv(results: dict) -> str:
    """One row per config: how many seeds finished, and mean and std across them of the seconds
    per meta-step and of the final eval after each inner step."""
    fields = [f for f in results["fields"] if f != SEED_FIELD]
    steps = max((len(c.get("eval_steps", [])) for c in results["configs"]), default=0)
    header = [*fields, "seeds", "seconds_per_step_mean", "seconds_per_step_std", "eval_metric"]
    for k in range(steps):
        header += [f"eval_step_{k}_mean", f"eval_step_{k}_std"]
    rows = [header]
    for c in results["configs"]:
        row = [*[_cell(c["config"][f]) for f in fields], f"{c['n']}/{c['of']}", _cell(c["seconds_per_step_mean"]),
               _cell(c["seconds_per_step_std"]), _cell(c.get("eval_metric"))]
        for m, s in zip(c.get("eval_mean", []), c.get("eval_std", [])):
            row += [_cell(m), _cell(s)]
        rows.append(row)
    return _csv(rows)


def summary_table(results: dict) -> str:
    """What ``graphflow sweep`` prints: per config, the final eval after the last inner step
    (mean ± std across seeds) and the seconds per meta-step."""
    fields = [f for f in results["fields"] if f != SEED_FIELD]
    names = [", ".join(f"{f}={_cell(c['config'][f])}" for f in fields) or "(one config)" for c in results["configs"]]
    width = max([len(n) for n in names] + [6])
    lines = [f"{'config':<{width}}  {'seeds':>5}  {'final eval':>22}  {'s/meta-step':>16}"]
    for name, c in zip(names, results["configs"]):
        if c.get("eval_mean"):
            m, s = c["eval_mean"][-1], c["eval_std"][-1]
            final = f"{c['eval_metric']} {m:.4g} ± {s:.2g}" if s is not None else f"{c['eval_metric']} {m:.4g}"
        else:
            final = "-"
        sm, ss = c["seconds_per_step_mean"], c["seconds_per_step_std"]
        seconds = "-" if sm is None else (f"{sm:.3g} ± {ss:.2g}" if ss is not None else f"{sm:.3g}")
        lines.append(f"{name:<{width}}  {c['n']:>2}/{c['of']:<2}  {final:>22}  {seconds:>16}")
    return "\n".join(lines)


def plot_results(results: dict, path):
    """Left: each config's final eval against the inner step (mean ± std across seeds). Middle: its
    meta-loss during meta-training (:func:`meta_loss_curve`, mean across seeds, a band of ± std).
    Right: its seconds per meta-step. ``path``: a file name (.png, .svg, .pdf) or a binary file (PNG)."""
    import matplotlib
    import matplotlib.ticker
    from matplotlib.figure import Figure  # no pyplot: no global figure state, the Agg canvas

    fields = [f for f in results["fields"] if f != SEED_FIELD]
    configs = [c for c in results["configs"] if c.get("eval_mean")]
    palette = matplotlib.colormaps["tab10" if len(configs) <= 10 else "tab20"]
    columns = 3 if len(configs) > 4 else 2
    rows = -(-len(configs) // columns)  # the legend's rows, under the panels
    height = 4.6 + 0.2 * rows
    fig = Figure(figsize=(15, height))
    ax, cx, bx = fig.subplots(1, 3, gridspec_kw={"width_ratios": [3, 3, 2]})
    names = []
    for k, c in enumerate(configs):
        name = ", ".join(f"{f.rsplit('.', 1)[-1]}={_cell(c['config'][f])}" for f in fields) or results["sweep"]
        names.append(name)
        mean = [math.nan if v is None else v for v in c["eval_mean"]]
        std = [0.0 if v is None else v for v in c["eval_std"]]
        color = palette(k % palette.N)
        ax.errorbar(c["eval_steps"], mean, yerr=std, marker="o", capsize=3, color=color,
                    label=f"{k + 1}: {name} ({c['n']} seed{'s' if c['n'] != 1 else ''})")
        if c.get("meta_loss_steps"):
            m = [math.nan if v is None else v for v in c["meta_loss_mean"]]
            sd = [0.0 if v is None else v for v in c["meta_loss_std"]]
            cx.plot(c["meta_loss_steps"], m, color=color)
            cx.fill_between(c["meta_loss_steps"], [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)],
                            color=color, alpha=0.15, linewidth=0)
        bx.bar(k, c["seconds_per_step_mean"] or 0.0, yerr=c["seconds_per_step_std"] or 0.0, color=color, capsize=3)
    if configs and configs[0]["eval_metric"] == "l2":
        ax.set_yscale("log")
    cx.set_yscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("inner step")
    ax.set_ylabel(f"final eval {configs[0]['eval_metric'] if configs else ''} (mean ± std across seeds)")
    fig.suptitle(f"sweep {results['sweep']}")
    ax.set_title("the final protocols")
    cx.set_xlabel(f"meta-step (each point: the mean over 1/{CURVE_POINTS} of the run)")
    cx.set_ylabel("meta-loss (mean ± std across seeds)")
    cx.set_title("meta-training")
    bx.set_xticks(range(len(names)), [str(k + 1) for k in range(len(names))])
    bx.set_xlabel("config (numbered as in the legend)")
    bx.set_ylabel("seconds per meta-step (median of each run)")
    bx.set_title("meta-step time")
    legend = 0.0
    if configs:  # one legend for the three panels, under them, so that it covers no curve
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=columns, fontsize=8, frameon=False)
        legend = (0.2 * rows + 0.15) / height
    fig.tight_layout(rect=(0, legend, 1, 1))
    fig.savefig(path, dpi=120, format=Path(path).suffix[1:] if isinstance(path, (str, Path)) else "png")
    return path


def write_results(results: dict, out: str | Path) -> None:
    """``results.json``, ``results.csv``, ``summary.csv`` and ``results.png`` in ``out`` (each atomic)."""
    from graphflow.io import atomic_write, atomic_write_text

    out = Path(out)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    atomic_write_text(out / "results.csv", results_csv(results))
    atomic_write_text(out / "summary.csv", summary_csv(results))
    atomic_write(out / "results.png", lambda f: plot_results(results, f))
