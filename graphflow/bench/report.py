"""The benchmark report: a plain-text table of a run, and its JSON.

>>> print(format_seconds(0.0123), format_seconds(2.5), format_seconds(None))
12.3 ms 2.50 s -
>>> print(format_range(0.0052, 0.0067), format_range(0.283, 1.02))
5.2-6.7 ms 0.28-1.02 s
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _unit(s: float) -> tuple[float, str, int]:
    """(scale, unit, decimals) to print ``s`` seconds with."""
    if s >= 1:
        return 1.0, "s", 2
    if s >= 1e-3:
        return 1e3, "ms", 1
    return 1e6, "us", 0


def format_seconds(s) -> str:
    """``s`` seconds in s, ms or us (``-`` for None)."""
    if s is None:
        return "-"
    scale, unit, decimals = _unit(s)
    return f"{s * scale:.{decimals}f} {unit}"


def format_range(low, high) -> str:
    """``low-high`` seconds in the unit of ``high`` (``-`` when either is None)."""
    if low is None or high is None:
        return "-"
    scale, unit, decimals = _unit(high)
    return f"{low * scale:.{decimals}f}-{high * scale:.{decimals}f} {unit}"


def _ratio(r) -> str:
    if r is None:
        return "-"
    return f"{r:.3g}x"


def _bytes(b) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def format_table(report: dict) -> str:
    """The run as text: machine, timed cases with their baselines, build, memory, scaling, targets."""
    m = report["machine"]
    out = [f"graphflow bench ({m['backend']}{', quick' if report.get('quick') else ''}) on {m['cpu']}, {m['cores']} cores, "
           f"numpy {m['numpy']}, {m['blas']} ({m.get('blas_threads')} BLAS threads"
           + (f", {m['blas_kernel']} kernels)" if m.get("blas_kernel") else ")")
           + (f", load average {m['load_average'][0]}" if m.get("load_average") else "")
           + (f" at the start, {m['load_average_end'][0]} at the end" if m.get("load_average_end") else "")]
    if m.get("allocator"):
        out.append(f"allocator: {m['allocator']}")
    lim = m.get("limits") or {}
    if lim:
        shape = "x".join(map(str, lim["matmul_shape"]))
        out.append(f"machine limits: float32 matmul [{shape}] {lim['matmul_gflops_1thread']:.1f} GFLOP/s on 1 BLAS thread, "
                   f"{lim['matmul_gflops_2threads']:.1f} on 2; copy {lim['copy_gbs']:.1f} GB/s, add {lim['add_gbs']:.1f} GB/s")
    cases = report["cases"]
    timed = [c for c in cases if c["kind"] in ("inner-step", "meta-step")]
    if timed:
        out += [""] + _timed_lines(report, timed)
    build = [c for c in cases if c["kind"] == "build"]
    if build:
        rows = [[c["name"], f"{c['weight_nodes']:,}", format_seconds(c["build_seconds"]), format_seconds(c["schedule_seconds"]),
                 format_seconds(c["engine_setup_seconds"])] for c in build]
        out += [""] + _rows(["graph", "weight nodes", "build", "schedule", "engine setup"], rows)
    memory = [c for c in cases if c["kind"] == "memory"]
    if memory:
        rows = [[c["name"] + (" (variant)" if c.get("variant") else ""), f"{c['tasks']} x {c['inner_steps']}",
                 _bytes(c["peak_bytes"]),
                 _bytes(c["peak_bytes_recompute"]) if c["peak_bytes_recompute"] is not None else c.get("recompute_note", "n/a")]
                for c in memory]
        out += [""] + _rows(["meta-step peak memory", "tasks x steps", "stored", "recomputed"], rows)
    scale = [c for c in cases if c["kind"] == "scale"]
    if scale:
        rows = [[c["name"], f"{c['weight_nodes']:,}", format_seconds(c["inner_seconds"]), _bytes(c["inner_peak_bytes"]),
                 f"{c['meta_inner_steps']} steps", format_seconds(c["meta_seconds"]), _bytes(c["meta_peak_bytes"])]
                for c in scale]
        out += [""] + _rows(["scale", "weight nodes", "inner step", "peak", "meta-step", "time", "peak"], rows)
    estimators = [c for c in cases if c["kind"] == "estimator"]
    if estimators:
        out += [""] + _estimator_lines(estimators)
    checks = [c for c in cases if c["kind"] == "memory-check"]
    if checks:
        rows = [[c["name"], _bytes(c["peak_bytes"]),
                 f"one-hot alone: {_bytes(c['one_hot_bytes'])}" if "one_hot_bytes" in c
                 else f"unrecorded: {_bytes(c['peak_bytes_unrecorded'])}", c["what"]] for c in checks]
        out += [""] + _rows(["memory check", "peak", "compare with", "what"], rows)
    for c in cases:
        if c["kind"] != "scaling":
            continue
        rows = [[f"{p['weight_nodes']:,}", "-".join(map(str, p["layers"])), format_seconds(p.get("seconds")),
                 format_seconds(p.get("dense_seconds")), _ratio(p.get("dense_ratio")),
                 f"{1e9 * p['seconds'] / p['weight_nodes']:.1f}" if p.get("seconds") else p.get("skipped", "-")]
                for p in c["points"]]
        out += [""] + _rows(["weight nodes", "stack", "graphflow", "dense", "dense/gf", "ns/node"], rows)
        fit = c["fit"]
        if fit.get("max_deviation") is not None:
            out.append(f"linear fit: {format_seconds(fit['intercept_seconds'])} + {1e9 * fit['seconds_per_weight_node']:.2f} ns "
                       f"x nodes; max deviation {fit['max_deviation']:.2f}x" + (f"; plot {c['plot']}" if c.get("plot") else ""))
    if report.get("targets"):
        out += ["", "targets:"]
        for t in report["targets"]:
            mark = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
            value = "-" if t["value"] is None else f"{t['value']:.3g}"
            bound = ""
            if t.get("bound") is not None:
                bound = f"; at matmul peak it would be {t['bound']:.3g}" + ("" if t["attainable"] else ", short of the target")
            out.append(f"  [{mark}] {t['case']} {t['metric']} = {value} (target {t['target']}{bound}): {t['goal']}")
    return "\n".join(out)


def _estimator_lines(cases: list[dict]) -> list[str]:
    """The estimators cases: seconds and peak memory per meta-step, cosine to the exact gradient."""
    rows = []
    for c in cases:
        options = ", ".join(f"{name} {c[name]}" for name in ("truncation", "population") if c.get(name) is not None)
        rows.append([c["estimator"], str(c["unroll"]), options or "-", f"{c['tasks']}", format_seconds(c["seconds"]),
                     _bytes(c["peak_bytes"]), f"{c['cosine']:.3f}"])
    first = cases[0]
    return _rows(["estimator", "T", "options", "tasks", "meta-step", "peak", "cosine to exact"], rows) + [
        f"estimators: {first['trained_entries']:,} trained entries, batch {first['batch']}; a meta-step is one estimate "
        "(no protocol update; truncated and pes: K of the T steps); cosine: of the whole unroll's estimate (truncated and "
        "pes: the sum of its T / K meta-steps) to the exact gradient (bptt through all T steps) on the same tasks"]


def _timed_row(c: dict, rounds: int, with_reference: bool) -> list[str]:
    gflops = "-"
    if c.get("dense_gflops") is not None:
        frac = c.get("dense_peak_fraction")
        gflops = f"{c['dense_gflops']:.1f}" + (f" ({100 * frac:.0f}%)" if frac is not None else "")
    row = [c["name"] + (" (variant)" if c.get("variant") else ""), format_seconds(c["seconds"])]
    if rounds > 1:
        row.append(format_range(c.get("seconds_min"), c.get("seconds_max")))
    row += [format_seconds(c.get("dense_seconds")), _ratio(c.get("dense_ratio")),
            format_seconds(c.get("interpreter_seconds")), _ratio(c.get("interpreter_ratio"))]
    if with_reference:
        row.append(format_seconds(c.get("reference_seconds")))
        if rounds > 1:
            row.append(format_range(c.get("reference_min"), c.get("reference_max")))
        row.append(_ratio(c.get("reference_ratio")))
    return row + [gflops, format_seconds(c.get("floor_seconds"))]


def _reference_footnote(report: dict) -> str:
    ref = report["reference"]
    versions = ", ".join(v for v in (f"Python {ref['python_version']}" if ref.get("python_version") else None,
                                     f"TensorFlow {ref['tensorflow_version']}" if ref.get("tensorflow_version") else None) if v)
    rounds = report.get("rounds", 1)
    how = (f"{rounds} rounds, each right after graphflow's round; medians of the round medians, min-max over rounds"
           if rounds > 1 else "one round, right after graphflow's")
    return f"* reference: {ref['script']} run by {ref['python']}" + (f" ({versions})" if versions else "") + f" in this run, {how}"


def _timed_lines(report: dict, timed: list[dict]) -> list[str]:
    """The table of inner- and meta-step cases with their baselines, and the notes under it."""
    rounds = report.get("rounds", 1)
    with_reference = "reference" in report
    spread = ["min-max"] if rounds > 1 else []
    header = ["case", "graphflow", *spread, "dense", "dense/gf", "interpreter", "interp/gf"]
    if with_reference:
        header += ["reference*", *spread, "ref/gf"]
    header += ["dense GFLOP/s (of peak)", "floor**"]
    out = _rows(header, [_timed_row(c, rounds, with_reference) for c in timed])
    out.append(f"ratios: {report['ratio_definition']}")
    if with_reference:
        out.append(_reference_footnote(report))
    out.append("** floor: the step's matmul FLOPs at the machine's peak (meta-steps: an estimate, 3 x inner steps); "
               "no numpy step can be faster")
    for c in timed:
        if c.get("reference_per_task_ratio") is not None:
            out.append(f"{c['name']}: {format_seconds(c['seconds'] / c['tasks'])} per task against the reference's "
                       f"{format_seconds(c['reference_per_task_seconds'])} per task ({c['reference_case']}, "
                       f"{c['reference_tasks']} tasks): {c['reference_per_task_ratio']:.3g}x")
        if c.get("dense_forward_equivalents") is not None:
            out.append(f"{c['name']}: one meta-step costs {c['dense_forward_equivalents']:.1f} dense inner steps "
                       f"of the same size ({c['inner_steps']} forward steps; a hand-written reverse pass would cost about 3)")
    return out


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_json(report: dict) -> str:
    return json.dumps(_plain(report), indent=2)


def write_json(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(report) + "\n")
    return path


__all__ = ["format_range", "format_seconds", "format_table", "to_json", "write_json"]
