"""``graphflow bench --quick --json F`` runs every case and writes a report of the documented shape.

No timing is asserted (CI machines are shared and noisy): only the structure of the JSON, that
times are positive, and that every ratio is the quotient it claims to be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphflow.bench import REFERENCE_SECONDS
from graphflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
TIMED = ("sinusoid-inner", "sinusoid-meta", "mnist-inner", "mnist-meta", "mnist784-inner")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    report_path, plot_path = out / "bench.json", out / "scaling.png"
    code = main(["bench", "--quick", "--json", str(report_path), "--plot", str(plot_path)])
    assert code == 0
    return json.loads(report_path.read_text()), plot_path


def test_machine_section_describes_the_machine_and_its_limits(quick_run):
    machine = quick_run[0]["machine"]
    assert {"cpu", "cores", "numpy", "blas", "backend", "limits"} <= set(machine)
    assert machine["backend"] == "numpy" and machine["cores"] >= 1
    limits = machine["limits"]
    for key in ("matmul_gflops_1thread", "matmul_gflops_2threads", "matmul_peak_gflops", "copy_gbs", "add_gbs"):
        assert limits[key] > 0, key


def test_every_timed_case_is_there_with_its_baselines(quick_run):
    report = quick_run[0]
    cases = {c["name"]: c for c in report["cases"]}
    assert set(TIMED) <= set(cases)
    for name in TIMED:
        case = cases[name]
        assert case["backend"] == "numpy" and case["seconds"] > 0, name
        for baseline in ("dense", "interpreter", "reference"):
            assert f"{baseline}_ratio" in case and f"{baseline}_seconds" in case, (name, baseline)
            if case[f"{baseline}_ratio"] is not None:
                assert case[f"{baseline}_ratio"] == pytest.approx(case[f"{baseline}_seconds"] / case["seconds"])
        assert case["reference_seconds"] == REFERENCE_SECONDS[name]
        assert "stored figures of the reference implementation" in case["reference_label"]
    for name in ("sinusoid-inner", "mnist-inner", "mnist784-inner"):
        case = cases[name]
        assert case["dense_ratio"] > 0 and case["flops_per_step"] > 0 and case["dense_gflops"] > 0
        assert 0 < case["dense_peak_fraction"]
    assert cases["sinusoid-inner"]["interpreter_ratio"] > 0
    assert cases["sinusoid-meta"]["adam_included"] is True
    for name in ("sinusoid-meta", "mnist-meta"):  # --quick shortens them: not comparable with the reference
        assert cases[name]["reference_ratio"] is None and "variant" in cases[name]


def test_build_memory_and_scaling_cases(quick_run):
    report, plot_path = quick_run
    cases = {c["name"]: c for c in report["cases"]}
    build = cases["build-784-1000-1000-10"]
    assert build["weight_nodes"] == 784 * 1000 + 1000 * 1000 + 1000 * 10
    assert build["build_seconds"] > 0 and build["schedule_seconds"] > 0
    memory = cases["sinusoid-meta-memory"]
    assert memory["peak_bytes"] > 0 and "peak_bytes_recompute" in memory
    scaling = cases["inner-step-scaling"]
    measured = [p for p in scaling["points"] if p["seconds"] is not None]
    assert len(measured) >= 2 and all(p["dense_seconds"] > 0 for p in measured)
    assert scaling["fit"]["max_deviation"] >= 1.0
    assert Path(scaling["plot"]) == plot_path and plot_path.stat().st_size > 0


def test_targets_are_evaluated(quick_run):
    targets = quick_run[0]["targets"]
    assert {t["case"] for t in targets} >= set(TIMED) | {"inner-step-scaling"}
    assert all(t["met"] in (True, False, None) for t in targets)


def test_floors_and_target_bounds(quick_run):
    """Each inner case carries the time its matmul FLOPs take at the machine's peak; ratio targets
    against a baseline say what ratio that floor would allow."""
    report = quick_run[0]
    cases = {c["name"]: c for c in report["cases"]}
    peak = report["machine"]["limits"]["matmul_peak_gflops"]
    for name in ("sinusoid-inner", "mnist-inner", "mnist784-inner"):
        case = cases[name]
        assert case["floor_seconds"] == pytest.approx(case["flops_per_step"] / peak / 1e9)
        assert case["floor_seconds"] < case["dense_seconds"]  # nothing runs above peak
    target = next(t for t in report["targets"] if t["case"] == "sinusoid-inner" and t["metric"] == "reference_ratio")
    assert target["bound"] == pytest.approx(cases["sinusoid-inner"]["reference_seconds"] / cases["sinusoid-inner"]["floor_seconds"])
    assert target["attainable"] == (target["bound"] >= 3.0)
    assert "allocator" in report["machine"]


def test_meta_floor_is_three_inner_floors_per_unrolled_step():
    from graphflow.bench.runner import add_meta_floors, evaluate_targets

    cases = [{"name": "sinusoid-inner", "floor_seconds": 0.005},
             {"name": "sinusoid-meta", "inner_steps": 5, "seconds": 0.2, "reference_seconds": 0.386, "reference_ratio": 1.93},
             {"name": "mnist-inner", "floor_seconds": 0.01},
             {"name": "mnist-meta", "inner_steps": 2, "variant": "2 steps", "seconds": 0.1}]
    add_meta_floors(cases)
    assert cases[1]["floor_seconds"] == pytest.approx(0.075) and "estimate" in cases[1]["floor_note"]
    assert "floor_seconds" not in cases[3]  # a shortened --quick variant gets no floor
    target = next(t for t in evaluate_targets(cases) if t["case"] == "sinusoid-meta")
    assert target["bound"] == pytest.approx(0.386 / 0.075) and target["attainable"] is True


def test_unknown_case_is_a_clear_error(capsys):
    assert main(["bench", "--quick", "--cases", "sinusoid-inner,nope"]) == 2
    assert "unknown benchmark case(s) nope; known: sinusoid-inner" in capsys.readouterr().err


def test_benchmarks_script_runs_the_same_command(tmp_path):
    out = tmp_path / "build.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--cases", "build", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "build-784-1000-1000-10" in done.stdout
    assert [c["kind"] for c in json.loads(out.read_text())["cases"]] == ["build"] * 4
