"""Runs the benchmark cases in one process and collects one JSON-ready report.

Every timed case reports ``seconds`` (graphflow's median wall time per step; over several rounds, the
median of the round medians, with ``seconds_min``, ``seconds_max`` and ``seconds_rounds``) and, per
baseline, ``<baseline>_seconds`` and ``<baseline>_ratio = <baseline>_seconds / seconds`` (above 1:
graphflow is faster). Baselines, all measured in this run: ``dense`` (the hand-written numpy step of
:mod:`graphflow.bench.dense_baseline`), ``interpreter`` (the per-node reference interpreter) and, with
a ``reference`` (:class:`~graphflow.bench.reference.ReferenceScript`), the reference implementation's
timing script, its rounds alternating with graphflow's (:mod:`graphflow.bench.reference`). Without
one, the records carry no ``reference_*`` fields and the reference targets are "not measured".

>>> report = run_benchmarks(["build"], quick=True, progress=None)
>>> [case["name"] for case in report["cases"]][:2]
['build-144-50-10', 'build-784-100-10']
"""

from __future__ import annotations

import inspect
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from graphflow.bench import workloads as W
from graphflow.bench.machine import machine_info, machine_limits
from graphflow.bench.reference import (QUICK_REPEAT_SCALE, ReferenceScript, add_reference_figures, alternate, over_rounds,
                                       reference_cases)
from graphflow.bench.scaling import linear_fit, plot_scaling
from graphflow.bench.timing import median_seconds, peak_bytes
from graphflow.errors import GraphflowError

CASE_GROUPS = (*W.TIMED_CASES, "build", "memory", "scaling", "scale", "estimators")
"""What ``--cases`` selects from (``build``, ``memory``, ``scaling`` and ``estimators`` hold several cases or points)."""
DEFAULT_GROUPS = tuple(g for g in CASE_GROUPS if g not in ("scale", "estimators"))
"""What runs without ``--cases``: every group but ``scale`` (784-1000-1000-10, minutes per meta-step) and
``estimators`` (every estimator at T = 20 and 100: minutes; :mod:`graphflow.bench.estimators`)."""

RATIO_DEFINITION = ("<baseline>_ratio = <baseline>_seconds / seconds (graphflow's median seconds per step; over rounds, "
                    "both sides' medians of their round medians); above 1: graphflow is faster")

QUICK_META_TASKS = 8
"""``--quick`` runs meta cases of more tasks (``sinusoid-meta-64``) on this many (a variant)."""

DEFAULT_REFERENCE_ROUNDS = 3
"""Rounds of a run with a reference, unless told (without one: a single round, as ever)."""

_THROUGHPUT_GOAL = ("a 64-task sinusoid meta-step costs per task at most 1/10 of the reference's 4-task sinusoid "
                    "meta-step per task")

TARGETS = (
    # (case, metric, comparison, threshold, what the issue asks)
    *((case, "reference_ratio", ">=", 3.0, "3x faster than the reference, measured in the same run")
      for case in W.REFERENCE_CASES),
    ("sinusoid-meta-64", "reference_per_task_ratio", ">=", 10.0, _THROUGHPUT_GOAL),
    *((case, "floor_multiple", "<=", 2.0, "within 2x of the step's matmul floor") for case in W.TIMED_CASES),
    ("sinusoid-inner", "dense_ratio", ">=", 1 / 1.3, "within 1.3x of the dense numpy baseline"),
    ("sinusoid-inner-4", "dense_ratio", ">=", 1 / 1.3, "within 1.3x of the dense numpy baseline"),
    ("mnist-inner", "dense_ratio", ">=", 1 / 1.3, "within 1.3x of the dense numpy baseline"),
    ("mnist784-inner", "dense_ratio", ">=", 1 / 1.3, "within 1.3x of the dense numpy baseline"),
    ("sinusoid-inner", "interpreter_ratio", ">=", 1000.0, "1000x faster than the per-node interpreter"),
    ("mnist-inner", "interpreter_ratio", ">=", 1000.0, "1000x faster than the per-node interpreter"),
    ("inner-step-scaling", "max_deviation", "<=", 1.2, "inner-step time linear in weight nodes within 1.2x"),
)
"""What the performance issue asks; ``floor_multiple`` is ``seconds / floor_seconds``."""


@dataclass(frozen=True)
class Settings:
    """Repetitions and sizes of a run (``quick``: a smoke run for CI, few repetitions, small sweep)."""

    quick: bool
    backend: str
    warmup: int
    """Untimed steps before the timed ones (beyond the step that fills the learner carries)."""
    inner_repeat: int
    large_repeat: int
    meta_repeat: int
    meta_warmup: int
    interpreter_tasks: int | None
    """Tasks the interpreter times per case (None: all of the workload's)."""
    mnist_interpreter: bool
    sweep: tuple[int, ...]
    sweep_repeat: int
    budget: float
    """Seconds of timed repetitions after which a case stops repeating (meta-steps: 3x)."""

    @classmethod
    def make(cls, quick: bool, backend: str, max_nodes: int | None = None) -> "Settings":
        settings = cls._make(quick, backend)
        if max_nodes is not None:
            sweep = tuple(n for n in settings.sweep if n <= max_nodes)
            if len(sweep) < 2:
                raise GraphflowError(f"--max-nodes {max_nodes}: the scaling sweep needs at least two of {list(settings.sweep)}")
            settings = replace(settings, sweep=sweep)
        return settings

    @classmethod
    def _make(cls, quick: bool, backend: str) -> "Settings":
        if quick:
            return cls(True, backend, warmup=0, inner_repeat=3, large_repeat=1, meta_repeat=1, meta_warmup=0,
                       interpreter_tasks=1, mnist_interpreter=False, sweep=W.QUICK_SCALING_WEIGHT_NODES, sweep_repeat=1,
                       budget=2.0)
        return cls(False, backend, warmup=1, inner_repeat=15, large_repeat=5, meta_repeat=3, meta_warmup=1,
                   interpreter_tasks=None, mnist_interpreter=True, sweep=W.SCALING_WEIGHT_NODES, sweep_repeat=3,
                   budget=20.0)


def _say(progress, message: str) -> None:
    if progress is not None:
        progress(message)


# ----------------------------------------------------------------------------------------------
# Timed cases: graphflow's step timed once per round, its baselines measured once


@dataclass
class TimedRun:
    """One inner- or meta-step case across the rounds of a run.

    ``record`` holds the case's sizes and, after the first round, its baselines; ``time_round`` times
    graphflow's step once more; ``finish`` sets ``seconds`` (median of the round medians),
    ``seconds_min``, ``seconds_max``, ``seconds_rounds`` and every figure derived from them.
    """

    record: dict
    step: Callable[[], object]
    """One graphflow step (inner step, or meta-step with Adam) of the case."""
    repeat: int
    warmup: int
    budget: float
    backend: str
    baselines: Callable[[], dict]
    """Measures the baselines (called once, after graphflow's first round); returns their fields."""
    rounds: list[float] = field(default_factory=list)

    def time_round(self, progress) -> None:
        name = self.record["name"]
        _say(progress, f"{name}: graphflow ({self.repeat} {'meta-steps' if self.record['kind'] == 'meta-step' else 'steps'})")
        seconds, samples = median_seconds(self.step, self.repeat, self.warmup, self.backend, self.budget)
        self.rounds.append(seconds)
        self.record.setdefault("samples", []).extend(samples)
        if len(self.rounds) == 1:
            self.record.update(self.baselines())

    def finish(self) -> dict:
        seconds, low, high = over_rounds(self.rounds)
        self.record.update(seconds=seconds, seconds_min=low, seconds_max=high, seconds_rounds=list(self.rounds))
        _add_graphflow_ratios(self.record)
        return self.record


def _add_graphflow_ratios(record: dict) -> None:
    """The figures that divide by graphflow's seconds: baseline ratios, GFLOP/s, peak fraction."""
    seconds = record["seconds"]
    for baseline in ("dense", "interpreter"):
        if f"{baseline}_seconds" in record:
            other = record[f"{baseline}_seconds"]
            record[f"{baseline}_ratio"] = other / seconds if other else None
    if record.get("flops_per_step"):
        record["graphflow_gflops"] = record["flops_per_step"] / seconds / 1e9
    if "floor_seconds" in record:
        floor = record["floor_seconds"]
        record["graphflow_peak_fraction"] = floor / seconds if floor else None


def prepare_case(name: str, settings: Settings, limits: dict, progress) -> TimedRun:
    """The :class:`TimedRun` of one of :data:`~graphflow.bench.workloads.TIMED_CASES`."""
    case = W.TIMED_CASES[name]
    if case.kind == "inner-step":
        run = _inner_case(name, case.workload, settings, limits, progress)
    else:
        run = _meta_case(name, case.workload, settings, progress)
    run.record["protocol"] = case.workload.protocol
    run.record["reference_case"] = None if run.record.get("variant") else case.reference
    return run


def _inner_case(name: str, workload: W.Workload, settings: Settings, limits: dict, progress) -> TimedRun:
    from graphflow.engine import Engine

    graph, protocol = W.graph_and_protocol(workload.protocol)
    rng = np.random.default_rng(0)
    tasks, batch = workload.tasks, workload.batch
    x, y = W.inner_data(graph, tasks, batch, rng)
    engine = Engine(graph, protocol, settings.backend)
    be = engine.be
    xd, yd = be.asarray(x), be.asarray(y)
    initial = engine.init_network(rng, tasks)
    # Time steady-state steps: from a state whose learner carries are no longer zero.
    state, _ = engine.step(initial, xd, yd)
    repeat = settings.large_repeat if W.weight_nodes(graph) > 50_000 else settings.inner_repeat
    record = {"name": name, "kind": "inner-step", "backend": be.name, "tasks": tasks, "batch": batch,
              "weight_nodes": W.weight_nodes(graph),
              "what": f"one inner step (forward, message pass, updates) of {tasks} task(s) x batch {batch}"}

    def baselines() -> dict:
        fields = _dense_inner_time(name, graph, protocol, initial, be, x, y, repeat, settings, limits, progress)
        want_interpreter = workload.protocol == "sinusoid" or (workload.protocol == "mnist" and settings.mnist_interpreter)
        if want_interpreter:
            fields.update(_interpreter_time(name, graph, protocol, initial, be, x, y, settings, progress))
        else:
            fields["interpreter_seconds"] = None
            fields["interpreter_note"] = ("skipped in --quick (one MNIST step takes seconds)" if workload.protocol == "mnist"
                                          else "not run: the per-node interpreter is for small graphs only")
        return fields

    return TimedRun(record, lambda: engine.step(state, xd, yd), repeat, settings.warmup, settings.budget, be.name, baselines)


def _dense_inner_time(name, graph, protocol, initial, be, x, y, repeat: int, settings: Settings, limits: dict,
                      progress) -> dict:
    from graphflow.bench.dense_baseline import DenseMPLP, DenseState

    _say(progress, f"{name}: dense numpy baseline")
    tasks, batch = x.shape[:2]
    dense = DenseMPLP(graph, protocol, threads=2)
    try:
        dstate, _ = dense.step(DenseState({k: be.to_numpy(v) for k, v in initial.params.items()}), x, y)
        dense_seconds, _ = median_seconds(lambda: dense.step(dstate, x, y), repeat, settings.warmup, budget=settings.budget)
        flops = dense.step_flops(tasks, batch)
        carry_bytes = dense.carry_bytes(tasks, batch)
    finally:
        dense.close()
    peak = limits.get("matmul_peak_gflops")
    return {
        "dense_seconds": dense_seconds,
        "flops_per_step": flops,
        "dense_gflops": flops / dense_seconds / 1e9,
        "dense_peak_fraction": flops / dense_seconds / 1e9 / peak if peak else None,
        "carry_bytes_per_step": carry_bytes,
        "dense_carry_gbs": carry_bytes / dense_seconds / 1e9,
        "dense_bandwidth_fraction": carry_bytes / dense_seconds / 1e9 / limits["copy_gbs"] if limits.get("copy_gbs") else None,
        "floor_seconds": flops / peak / 1e9 if peak else None,
    }


def _interpreter_time(name, graph, protocol, initial, be, x, y, settings: Settings, progress) -> dict:
    from graphflow.reference import Interpreter

    tasks = x.shape[0]
    timed = tasks if settings.interpreter_tasks is None else min(tasks, settings.interpreter_tasks)
    _say(progress, f"{name}: per-node interpreter (one step, {timed} of {tasks} task(s))")
    interpreter = Interpreter(graph, protocol)
    total = 0.0
    for t in range(timed):
        params = {k: be.to_numpy(v)[t] for k, v in initial.params.items()}
        t0 = time.perf_counter()
        interpreter.run(params, x[t][None], y[t][None])
        total += time.perf_counter() - t0
    return {"interpreter_seconds": total * tasks / timed, "interpreter_tasks_timed": timed,
            "interpreter_note": "one step per task (the interpreter runs one task at a time)"
                                + (f"; {timed} task timed, scaled to {tasks}" if timed < tasks else "")}


# ----------------------------------------------------------------------------------------------
# Meta-training steps


def _meta_setup(workload: W.Workload, backend: str, tasks: int | None = None, steps: int | None = None, **options):
    from graphflow.engine import Engine
    from graphflow.meta.metaloss import MetaGradient

    graph, protocol = W.graph_and_protocol(workload.protocol)
    rng = np.random.default_rng(0)
    batch = W.meta_batch(graph, workload, rng, tasks, steps)
    engine = Engine(graph, protocol)
    init = {k: np.asarray(v) for k, v in engine.init_network(rng, batch.x.shape[0]).params.items()}
    metagrad = MetaGradient(graph, protocol, backend, **options)
    return graph, protocol, batch, init, metagrad


def _meta_case(name: str, workload: W.Workload, settings: Settings, progress) -> TimedRun:
    from graphflow.meta.optim import Adam

    steps = 2 if settings.quick else workload.steps
    tasks = min(workload.tasks, QUICK_META_TASKS) if settings.quick else workload.tasks
    graph, protocol, batch, init, metagrad = _meta_setup(workload, settings.backend, tasks=tasks, steps=steps)
    optimizer = Adam(1e-4)

    def meta_step():
        _, grads = metagrad(protocol, batch, init)
        optimizer.step({k: v for k, v in protocol.flat().items() if k in grads}, grads)

    record = {"name": name, "kind": "meta-step", "backend": settings.backend, "tasks": tasks, "batch": workload.batch,
              "inner_steps": steps, "heldout": workload.heldout, "weight_nodes": W.weight_nodes(graph), "adam_included": True,
              "what": (f"meta-loss of {tasks} task(s) x {steps} inner steps (batch {workload.batch}, "
                       f"held-out {workload.heldout}), its gradient and the Adam update")}
    if (tasks, steps) != (workload.tasks, workload.steps):
        record["variant"] = (f"--quick: {tasks} task(s) x {steps} inner steps instead of {workload.tasks} x {workload.steps}; "
                             "not comparable with the reference")

    def baselines() -> dict:
        return {"interpreter_seconds": None, "interpreter_note": "the per-node interpreter runs inner loops only (no meta-gradient)",
                "dense_seconds": None,
                "dense_note": ("no dense meta-step baseline: it needs a hand-written reverse pass through every inner step "
                               "(see docs/performance.md); dense_forward_equivalents compares with the dense inner step instead")}

    return TimedRun(record, meta_step, settings.meta_repeat, settings.meta_warmup, 3 * settings.budget, settings.backend,
                    baselines)


def _memory_case(name: str, workload: W.Workload, settings: Settings, progress) -> dict:
    from graphflow.meta.metaloss import MetaGradient

    tasks, steps = (1, 2) if settings.quick else (workload.tasks, workload.steps)
    _say(progress, f"{name}: peak memory of one meta-step ({tasks} task(s) x {steps} steps)")
    graph, protocol, batch, init, metagrad = _meta_setup(workload, settings.backend, tasks, steps)
    plain = peak_bytes(lambda: metagrad(protocol, batch, init))
    record = {"name": name, "kind": "memory", "backend": settings.backend, "seconds": None, "tasks": tasks,
              "inner_steps": steps, "batch": workload.batch, "peak_bytes": plain,
              "what": "peak host memory (tracemalloc) allocated by one meta-loss + gradient"}
    if settings.backend != "numpy":
        record["note"] = "host memory only; device memory is not measured"
    if "recompute_every" in inspect.signature(MetaGradient).parameters:
        every = max(1, round(math.sqrt(steps)))
        _, _, _, _, recompute = _meta_setup(workload, settings.backend, tasks, steps, recompute_every=every)
        record.update({"recompute_every": every, "peak_bytes_recompute": peak_bytes(lambda: recompute(protocol, batch, init))})
        record["recompute_saving"] = plain / record["peak_bytes_recompute"] if record["peak_bytes_recompute"] else None
    else:
        record.update({"recompute_every": None, "peak_bytes_recompute": None, "recompute_saving": None,
                       "recompute_note": "n/a: MetaGradient has no recompute_every option in this tree"})
    if settings.quick:
        record["variant"] = f"--quick: {tasks} task x {steps} steps"
    return record


# ----------------------------------------------------------------------------------------------
# Graph build and schedule


def _build_cases(settings: Settings, progress) -> list[dict]:
    from graphflow.dsl.layers import quick_stack
    from graphflow.engine import Engine
    from graphflow.graph import build
    from graphflow.learners.protocol import Protocol
    from graphflow.schedule import schedule

    learner = W._mnist_learner()
    out = []
    for dims in W.BUILD_STACKS:
        name = "build-" + "-".join(map(str, dims))
        _say(progress, f"{name}: build, schedule, engine setup")
        repeat = 3 if settings.quick else 7
        build_s, _ = median_seconds(lambda: build(quick_stack(list(dims), "sigmoid", "ce")), repeat)
        graph = build(quick_stack(list(dims), "sigmoid", "ce"))
        schedule_s, _ = median_seconds(lambda: schedule(graph), repeat)
        protocol = Protocol.init(graph, learner)
        setup_s, _ = median_seconds(lambda: Engine(graph, protocol, settings.backend), repeat)
        out.append({"name": name, "kind": "build", "backend": settings.backend, "seconds": build_s + schedule_s,
                    "build_seconds": build_s, "schedule_seconds": schedule_s, "engine_setup_seconds": setup_s,
                    "weight_nodes": W.weight_nodes(graph), "layers": list(dims),
                    "what": "spec -> graph (build, validation) plus graph -> schedule; engine setup reported beside"})
    return out


# ----------------------------------------------------------------------------------------------
# Scaling


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _scaling_case(settings: Settings, progress, plot: str | Path | None) -> dict:
    from graphflow.bench.dense_baseline import DenseMPLP, DenseState
    from graphflow.engine import Engine

    batch, tasks = W.WORKLOADS["mnist784"].batch, 1
    points, bytes_per_node = [], None
    for wanted in settings.sweep:
        hidden = W.scaling_hidden(wanted)
        graph, protocol = W.scaling_graph(hidden)
        nodes = W.weight_nodes(graph)
        point = {"weight_nodes": nodes, "layers": [784, hidden, 10], "seconds": None, "dense_seconds": None}
        points.append(point)
        available = _available_bytes()
        if bytes_per_node and available and 1.5 * bytes_per_node * nodes > 0.6 * available:
            point["skipped"] = (f"estimated {1.5 * bytes_per_node * nodes / 2**30:.1f} GiB for one step "
                                f"(from the smaller points) exceeds 60% of the {available / 2**30:.1f} GiB available")
            _say(progress, f"scaling {nodes} weight nodes: skipped ({point['skipped']})")
            continue
        _say(progress, f"scaling {nodes} weight nodes (784-{hidden}-10, batch {batch})")
        rng = np.random.default_rng(0)
        x, y = W.inner_data(graph, tasks, batch, rng)
        engine = Engine(graph, protocol, settings.backend)
        be = engine.be
        xd, yd = be.asarray(x), be.asarray(y)
        initial = engine.init_network(rng, tasks)
        holder = {}
        point["step_peak_bytes"] = peak_bytes(lambda: holder.update(state=engine.step(initial, xd, yd)[0]))
        bytes_per_node = max(bytes_per_node or 0, point["step_peak_bytes"] / nodes)
        state = holder.pop("state")
        point["seconds"], _ = median_seconds(lambda: engine.step(state, xd, yd), settings.sweep_repeat, 0, be.name,
                                             settings.budget)
        del state
        dense = DenseMPLP(graph, protocol, threads=2)
        try:
            dstate, _ = dense.step(DenseState({k: be.to_numpy(v) for k, v in initial.params.items()}), x, y)
            point["dense_seconds"], _ = median_seconds(lambda: dense.step(dstate, x, y), settings.sweep_repeat, 0,
                                                       budget=settings.budget)
        finally:
            dense.close()
        point["dense_ratio"] = point["dense_seconds"] / point["seconds"]
    measured = [p for p in points if p["seconds"] is not None]
    fit = linear_fit([p["weight_nodes"] for p in measured], [p["seconds"] for p in measured])
    dense_fit = linear_fit([p["weight_nodes"] for p in measured], [p["dense_seconds"] for p in measured])
    record = {"name": "inner-step-scaling", "kind": "scaling", "backend": settings.backend, "seconds": None,
              "batch": batch, "tasks": tasks, "points": points, "fit": fit, "dense_fit": dense_fit,
              "max_deviation": fit["max_deviation"],
              "what": "inner-step time of 784-h-10 stacks (MNIST protocol sizes) against weight nodes, linear fit"}
    if plot and measured:
        record["plot"] = str(plot_scaling(points, fit, plot, dense_fit,
                                          f"inner step, 784-h-10, batch {batch}, {settings.backend}"))
    return record


# ----------------------------------------------------------------------------------------------
# The run


def evaluate_targets(cases: list[dict]) -> list[dict]:
    """The issue's targets against the measured cases.

    ``status`` is ``met``, ``not met`` or ``not measured`` (the case or its metric is missing, e.g. the
    reference targets of a run without ``--reference``); ``met`` is True, False or None alike. A ratio
    target against a baseline also gets ``bound``: the ratio a step running at the machine's matmul
    peak would reach (baseline seconds / ``floor_seconds``); ``attainable`` says whether the target
    lies within it.
    """
    by_name = {c["name"]: c for c in cases}
    out = []
    for case, metric, comparison, threshold, goal in TARGETS:
        record = by_name.get(case, {})
        value = record.get(metric)
        met = None if value is None else (value >= threshold if comparison == ">=" else value <= threshold)
        target = {"case": case, "metric": metric, "target": f"{comparison} {threshold:.4g}", "value": value, "met": met,
                  "status": {True: "met", False: "not met", None: "not measured"}[met], "goal": goal}
        baseline = record.get(metric.replace("_ratio", "_seconds")) if metric in ("reference_ratio", "interpreter_ratio") else None
        if baseline and record.get("floor_seconds"):
            target["bound"] = baseline / record["floor_seconds"]
            target["attainable"] = target["bound"] >= threshold
        out.append(target)
    return out


def _matching_inner(meta: dict, by_name: dict) -> dict | None:
    """The inner case of the meta case's protocol with the nearest number of tasks."""
    inner = [c for c in by_name.values() if c.get("kind") == "inner-step" and c.get("protocol") == meta.get("protocol")]
    return min(inner, key=lambda c: abs(c["tasks"] - meta["tasks"]), default=None)


def add_meta_floors(cases: list[dict]) -> None:
    """``floor_seconds`` of each meta case: 3 x its inner steps x the inner case's FLOPs at peak, per
    task x its tasks (a reverse pass costs about two forward passes; the FLOPs are linear in tasks),
    an estimate noted as such."""
    by_name = {c["name"]: c for c in cases}
    for meta in cases:
        if meta.get("kind") != "meta-step" or meta.get("variant") or not meta.get("inner_steps"):
            continue
        inner = _matching_inner(meta, by_name)
        if not (inner and inner.get("floor_seconds")):
            continue
        per_task = inner["floor_seconds"] / inner["tasks"]
        meta["floor_seconds"] = 3 * meta["inner_steps"] * per_task * meta["tasks"]
        meta["floor_note"] = ("estimate: 3 x inner steps x the inner step's matmul FLOPs at the machine's peak "
                              f"(forward once, backward about twice; from {inner['name']}, per task)")


def add_floor_multiples(cases: list[dict]) -> None:
    """``floor_multiple = seconds / floor_seconds`` of every case that has both (1: at the floor)."""
    for case in cases:
        if case.get("seconds") and case.get("floor_seconds"):
            case["floor_multiple"] = case["seconds"] / case["floor_seconds"]


def add_dense_forward_equivalents(cases: list[dict]) -> None:
    """Each meta case's time over (inner steps x the dense inner step of as many tasks)."""
    by_name = {c["name"]: c for c in cases}
    for meta in cases:
        inner = _matching_inner(meta, by_name) if meta.get("kind") == "meta-step" else None
        if inner and inner.get("tasks") == meta.get("tasks") and inner.get("dense_seconds") and meta.get("inner_steps"):
            meta["dense_forward_equivalents"] = meta["seconds"] / (meta["inner_steps"] * inner["dense_seconds"])


def select_cases(names: list[str] | None) -> list[str]:
    """Validated case groups (:data:`DEFAULT_GROUPS` when ``names`` is empty)."""
    if not names:
        return list(DEFAULT_GROUPS)
    unknown = [n for n in names if n not in CASE_GROUPS]
    if unknown:
        raise GraphflowError(f"unknown benchmark case(s) {', '.join(unknown)}; known: {', '.join(CASE_GROUPS)}")
    return [n for n in CASE_GROUPS if n in names]


def _machine_section(backend: str, groups: list[str], quick: bool, progress) -> dict:
    from graphflow.backend import keep_freed_memory

    machine = machine_info(backend)
    # Every case (graphflow and its baselines) runs with the allocator settings engine work uses.
    machine["allocator"] = ("glibc malloc keeping freed memory (graphflow.backend.keep_freed_memory)"
                            if keep_freed_memory() else "the system's malloc settings")
    needs_limits = any(W.TIMED_CASES.get(g) and W.TIMED_CASES[g].kind == "inner-step" for g in groups)
    _say(progress, "machine limits (matmul GFLOP/s, memory bandwidth)" if needs_limits else "machine info")
    limits = machine_limits(quick) if needs_limits else {}
    if limits:
        limits["matmul_peak_gflops"] = max(limits["matmul_gflops_2threads"], 2 * limits["matmul_gflops_1thread"])
        limits["matmul_peak_note"] = "the better of 2 BLAS threads and 2 x one BLAS thread"
    machine["limits"] = limits
    return machine


def _comparable_cases(timed_groups: list[str], quick: bool) -> list[str]:
    """The reference's cases a run of these groups compares with (a --quick meta case is a variant: none)."""
    records = [{"reference_case": W.TIMED_CASES[g].reference} for g in timed_groups
               if not (quick and W.TIMED_CASES[g].kind == "meta-step")]
    wanted = reference_cases(records)
    if not wanted:
        raise GraphflowError(f"--reference: none of the selected cases runs in the reference's timing script "
                             f"(it has {', '.join(W.REFERENCE_CASES)}; --quick meta cases are shortened variants)")
    return wanted


def _run_timed_cases(timed_groups: list[str], settings: Settings, limits: dict, rounds: int,
                     reference: ReferenceScript | None, section: dict | None, progress) -> list[dict]:
    """The timed cases over ``rounds`` rounds, the reference's round (on ``section["cases"]``) after each
    of graphflow's."""
    runs: list[TimedRun] = []

    def graphflow_round(k: int) -> None:
        for i, group in enumerate(timed_groups):
            if k == 0:
                runs.append(prepare_case(group, settings, limits, progress))
            runs[i].time_round(progress)

    def reference_round(k: int) -> dict[str, float]:
        _say(progress, f"reference: {section['command']}")
        return reference.run(section["cases"], section["repeat_scale"])

    reference_rounds = alternate(rounds, graphflow_round, reference_round if reference is not None else None, progress)
    records = [run.finish() for run in runs]
    for record in records:
        if reference is None:
            del record["reference_case"]
        elif record["reference_case"] is not None:
            add_reference_figures(record, reference_rounds)
        else:
            record["reference_note"] = "not compared: " + record.get("variant", "the reference has no such case")
    return records


def run_benchmarks(cases: list[str] | None = None, quick: bool = False, backend: str = "numpy",
                   plot: str | Path | None = None, progress=print, max_nodes: int | None = None,
                   reference: ReferenceScript | None = None, rounds: int | None = None) -> dict:
    """Run the selected case groups; returns ``{"machine": ..., "cases": [...], "targets": [...], ...}``.

    ``max_nodes`` caps the scaling sweep (weight nodes); ``progress`` receives one line per stage.
    ``reference`` times the reference implementation in the same run, ``rounds`` rounds (default 3;
    without a reference, 1) alternating with graphflow's timed cases; build, memory and scaling cases
    run once, after the rounds.
    """
    from graphflow.backend import get_backend

    get_backend(backend)  # a clear error now rather than in the middle of the run
    groups = select_cases(cases)
    rounds = rounds if rounds is not None else (DEFAULT_REFERENCE_ROUNDS if reference is not None else 1)
    if rounds < 1:
        raise GraphflowError(f"--rounds {rounds}: needs at least one round")
    settings = Settings.make(quick, backend, max_nodes if "scaling" in groups else None)
    timed_groups = [g for g in groups if g in W.TIMED_CASES]
    started = time.perf_counter()
    reference_section = None
    if reference is not None:
        compared = _comparable_cases(timed_groups, quick)
        _say(progress, f"reference: the versions of {reference.python}")
        reference_section = reference.describe(compared, rounds, QUICK_REPEAT_SCALE if quick else None)
    machine = _machine_section(backend, groups, quick, progress)
    results = _run_timed_cases(timed_groups, settings, machine["limits"], rounds, reference, reference_section, progress)
    for group in groups:
        if group == "build":
            results += _build_cases(settings, progress)
        elif group == "memory":
            for protocol in (("sinusoid",) if quick else ("sinusoid", "mnist")):
                results.append(_memory_case(f"{protocol}-meta-memory", W.WORKLOADS[protocol], settings, progress))
            from graphflow.bench.memory import record_case, segment_sum_case

            _say(progress, "memory: a traced sparse segment sum; recording one node")
            results.append(segment_sum_case(edges=8_000, segments=40) if quick else segment_sum_case())
            results.append(record_case(backend))
        elif group == "scaling":
            results.append(_scaling_case(settings, progress, plot))
        elif group == "scale":
            from graphflow.bench.scale import scale_case

            results.append(scale_case(backend, quick, lambda message: _say(progress, message)))
        elif group == "estimators":
            from graphflow.bench.estimators import EstimatorSizes, estimator_cases

            results += estimator_cases(EstimatorSizes.make(quick), backend, lambda message: _say(progress, message))
    try:
        machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    add_dense_forward_equivalents(results)
    add_meta_floors(results)
    add_floor_multiples(results)
    report = {
        "machine": machine,
        "quick": quick,
        "rounds": rounds,
        "settings": {"inner_repeat": settings.inner_repeat, "large_repeat": settings.large_repeat,
                     "meta_repeat": settings.meta_repeat, "sweep": list(settings.sweep), "sweep_repeat": settings.sweep_repeat,
                     "budget_seconds": settings.budget},
        "cases": results,
        "targets": evaluate_targets(results),
        "ratio_definition": RATIO_DEFINITION,
    }
    if reference_section is not None:
        report["reference"] = reference_section
    report["total_seconds"] = time.perf_counter() - started
    return report


__all__ = ["CASE_GROUPS", "DEFAULT_REFERENCE_ROUNDS", "QUICK_META_TASKS", "RATIO_DEFINITION", "TARGETS", "Settings", "TimedRun",
           "add_dense_forward_equivalents", "add_floor_multiples", "add_meta_floors", "evaluate_targets", "prepare_case",
           "run_benchmarks", "select_cases"]
