"""``graphflow bench --quick --json F`` runs every case and writes a report of the documented shape.

No timing is asserted (CI machines are shared and noisy): only the structure of the JSON, that
times are positive, and that every ratio is the quotient it claims to be. Without ``--reference`` the
report has no reference figures at all (tests/bench/test_reference.py runs it with one).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphflow.bench.workloads import TIMED_CASES
from graphflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
TIMED = ("sinusoid-inner", "sinusoid-inner-4", "sinusoid-meta", "sinusoid-meta-64", "mnist-inner", "mnist-meta", "mnist784-inner")


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
        assert case["seconds_rounds"] == [case["seconds"]] == [case["seconds_min"]] == [case["seconds_max"]]
        for baseline in ("dense", "interpreter"):
            assert f"{baseline}_ratio" in case and f"{baseline}_seconds" in case, (name, baseline)
            if case[f"{baseline}_ratio"] is not None:
                assert case[f"{baseline}_ratio"] == pytest.approx(case[f"{baseline}_seconds"] / case["seconds"])
        assert not [key for key in case if key.startswith("reference")], name  # no --reference: no reference figures
    assert "reference" not in report and report["rounds"] == 1
    for name in ("sinusoid-inner", "sinusoid-inner-4", "mnist-inner", "mnist784-inner"):
        case = cases[name]
        assert case["dense_ratio"] > 0 and case["flops_per_step"] > 0 and case["dense_gflops"] > 0
        assert 0 < case["dense_peak_fraction"]
    assert cases["sinusoid-inner"]["interpreter_ratio"] > 0
    assert cases["sinusoid-meta"]["adam_included"] is True
    for name in ("sinusoid-meta", "sinusoid-meta-64", "mnist-meta"):  # --quick shortens them
        assert "variant" in cases[name] and "floor_seconds" not in cases[name]
    assert cases["sinusoid-meta-64"]["tasks"] == 8  # --quick: 8 of its 64 tasks


def test_case_sizes_match_the_reference_timing_script(quick_run):
    """timing.py's sinusoid-inner is 1 task, sinusoid-inner-4 and sinusoid-meta 4; the 64-task case is graphflow's own."""
    cases = {c["name"]: c for c in quick_run[0]["cases"]}
    assert (cases["sinusoid-inner"]["tasks"], cases["sinusoid-inner"]["batch"]) == (1, 10)
    assert (cases["sinusoid-inner-4"]["tasks"], cases["sinusoid-inner-4"]["batch"]) == (4, 10)
    assert TIMED_CASES["sinusoid-meta-64"].workload.tasks == 64 and TIMED_CASES["sinusoid-meta-64"].workload.steps == 5
    assert TIMED_CASES["sinusoid-meta-64"].reference == "sinusoid-meta"


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
    report, _ = quick_run
    targets = report["targets"]
    assert {t["case"] for t in targets} >= set(TIMED) | {"inner-step-scaling"}
    assert all(t["met"] in (True, False, None) for t in targets)
    for target in targets:
        assert target["status"] == {True: "met", False: "not met", None: "not measured"}[target["met"]]
        if target["metric"].startswith("reference"):  # no --reference: not measured, not failed
            assert target["met"] is None and target["value"] is None, target
    metrics = {(t["case"], t["metric"]) for t in targets}
    assert {(c, "reference_ratio") for c in TIMED if c != "sinusoid-meta-64"} <= metrics
    assert ("sinusoid-meta-64", "reference_per_task_ratio") in metrics


def test_table_without_reference_has_no_reference_columns(quick_run):
    from graphflow.bench import format_table

    table = format_table(quick_run[0])
    assert "ref/gf" not in table and "reference*" not in table
    assert "[not measured] sinusoid-inner reference_ratio" in table


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
        assert case["floor_multiple"] == pytest.approx(case["seconds"] / case["floor_seconds"])
    target = next(t for t in report["targets"] if t["case"] == "sinusoid-inner" and t["metric"] == "floor_multiple")
    assert target["value"] == cases["sinusoid-inner"]["floor_multiple"] and target["target"] == "<= 2"
    assert "allocator" in report["machine"]


def test_meta_floor_is_three_inner_floors_per_unrolled_step_and_task():
    from graphflow.bench.runner import add_floor_multiples, add_meta_floors, evaluate_targets

    inner = {"kind": "inner-step", "protocol": "sinusoid"}
    cases = [{"name": "sinusoid-inner", **inner, "tasks": 1, "floor_seconds": 0.001},
             {"name": "sinusoid-inner-4", **inner, "tasks": 4, "floor_seconds": 0.005},
             {"name": "sinusoid-meta", "kind": "meta-step", "protocol": "sinusoid", "tasks": 4, "inner_steps": 5,
              "seconds": 0.2, "reference_seconds": 0.386, "reference_ratio": 1.93},
             {"name": "sinusoid-meta-64", "kind": "meta-step", "protocol": "sinusoid", "tasks": 64, "inner_steps": 5,
              "seconds": 1.6, "reference_per_task_seconds": 0.1, "reference_per_task_ratio": 4.0},
             {"name": "mnist-inner", "kind": "inner-step", "protocol": "mnist", "tasks": 1, "floor_seconds": 0.01},
             {"name": "mnist-meta", "kind": "meta-step", "protocol": "mnist", "tasks": 1, "inner_steps": 2,
              "variant": "2 steps", "seconds": 0.1}]
    add_meta_floors(cases)
    add_floor_multiples(cases)
    # From the inner case of the nearest number of tasks (FLOPs are linear in tasks: the choice is for rounding).
    assert cases[2]["floor_seconds"] == pytest.approx(0.075) and "estimate" in cases[2]["floor_note"]
    assert cases[3]["floor_seconds"] == pytest.approx(3 * 5 * 0.005 / 4 * 64)  # per task x 64 tasks
    assert cases[3]["floor_multiple"] == pytest.approx(1.6 / cases[3]["floor_seconds"])
    assert "floor_seconds" not in cases[5]  # a shortened --quick variant gets no floor
    targets = evaluate_targets(cases)
    target = next(t for t in targets if t["case"] == "sinusoid-meta" and t["metric"] == "reference_ratio")
    assert target["bound"] == pytest.approx(0.386 / 0.075) and target["attainable"] is True
    assert target["status"] == "not met"
    throughput = next(t for t in targets if t["metric"] == "reference_per_task_ratio")
    assert (throughput["case"], throughput["value"], throughput["target"], throughput["met"]) == ("sinusoid-meta-64", 4.0, ">= 10", False)


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


def test_memory_checks_show_no_one_hot_and_no_layer_broadcast():
    """The traced sparse sum keeps no [E, segments] one-hot; recording one node costs no more
    than recording nothing (its node is picked before broadcasting)."""
    from graphflow.bench.memory import record_case, segment_sum_case

    seg = segment_sum_case(edges=20_000, segments=200)
    assert seg["peak_bytes"] < seg["one_hot_bytes"] / 4
    rec = record_case()
    assert rec["peak_bytes"] <= 1.05 * rec["peak_bytes_unrecorded"] + (1 << 20)


def test_the_scale_case_runs_a_recomputed_meta_step_and_is_not_a_default():
    from graphflow.bench.runner import select_cases
    from graphflow.bench.scale import scale_case

    assert "scale" not in select_cases(None) and select_cases(["scale"]) == ["scale"]
    case = scale_case(quick=True)
    assert case["weight_nodes"] == 784 * 100 + 100 * 100 + 100 * 10
    assert case["meta_seconds"] > 0 and case["meta_loss"] == case["meta_loss"]  # finite, not NaN
    assert 0 < case["inner_peak_bytes"] and 0 < case["meta_peak_bytes"]
