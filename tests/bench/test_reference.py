"""``graphflow bench --reference PYTHON`` against a stand-in for the reference's timing script
(``tests/bench/fake_timing.py``: fixed seconds per case, scaled by 1.0, 1.2 and 0.9 on its first three
calls), so that CI needs no TensorFlow.

Checked: the reference runs once per round, right after graphflow's round; its median, min, max and
rounds land in each compared case; every ratio is the reference's median over graphflow's; and a
missing python, a missing script or a failing script is one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import statistics
import sys
from pathlib import Path

import pytest

from graphflow.bench.reference import ReferenceScript
from graphflow.cli import main
from graphflow.errors import GraphflowError
from tests.cli_output import one_error_line

FAKE = Path(__file__).resolve().parent / "fake_timing.py"
COMPARED = ("sinusoid-inner", "mnist-inner")
FAKE_SECONDS = {"sinusoid-inner": 0.010, "mnist-inner": 0.050}  # fake_timing.SECONDS
FACTORS = (1.0, 1.2, 0.9)  # fake_timing.FACTORS
ROUNDS = 3


def _bench(args: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``graphflow bench ARGS`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["bench", *args])
    return code, out.getvalue(), err.getvalue()


def _error_output(err: str) -> str:
    """stderr without the ``[bench]`` progress lines that precede an error met in the middle of a run."""
    return "\n".join(line for line in err.splitlines() if not line.startswith("[bench] "))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    log, report_path = out / "calls.log", out / "bench.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_TIMING_LOG", str(log))
        code, stdout, stderr = _bench(["--quick", "--cases", ",".join(COMPARED), "--rounds", str(ROUNDS),
                                       "--reference", sys.executable, "--reference-script", str(FAKE),
                                       "--json", str(report_path)])
    assert code == 0, stderr
    return json.loads(report_path.read_text()), log.read_text().splitlines(), stdout, stderr


def test_the_reference_runs_once_per_round_after_graphflow(reference_run):
    report, calls, _, stderr = reference_run
    assert calls == [",".join(COMPARED)] * ROUNDS
    rounds = [line.split("] ", 1)[1] for line in stderr.splitlines() if line.startswith("[bench] round ")]
    assert rounds == [f"round {k}/{ROUNDS}: {side}" for k in range(1, ROUNDS + 1) for side in ("graphflow", "reference")]
    section = report["reference"]
    assert section["python"] == sys.executable and section["script"] == str(FAKE)
    assert section["python_version"] == platform.python_version() and "tensorflow_version" in section
    assert section["cases"] == list(COMPARED) and section["rounds"] == report["rounds"] == ROUNDS
    assert "--repeat-scale 0.1" in section["command"]  # --quick shortens the reference's side too


def test_each_case_carries_the_reference_rounds_and_the_ratio(reference_run):
    cases = {c["name"]: c for c in reference_run[0]["cases"]}
    for name in COMPARED:
        case, base = cases[name], FAKE_SECONDS[name]
        assert case["reference_case"] == name
        assert case["reference_rounds"] == pytest.approx([base * f for f in FACTORS])
        assert case["reference_seconds"] == pytest.approx(base)  # the median of the three rounds
        assert case["reference_min"] == pytest.approx(0.9 * base) and case["reference_max"] == pytest.approx(1.2 * base)
        assert case["reference_ratio"] == pytest.approx(case["reference_seconds"] / case["seconds"])
        assert len(case["seconds_rounds"]) == ROUNDS
        assert case["seconds"] == pytest.approx(statistics.median(case["seconds_rounds"]))
        assert case["seconds_min"] == min(case["seconds_rounds"]) and case["seconds_max"] == max(case["seconds_rounds"])
        assert case["dense_ratio"] == pytest.approx(case["dense_seconds"] / case["seconds"])


def test_reference_targets_are_measured_only_where_compared(reference_run):
    targets = {(t["case"], t["metric"]): t for t in reference_run[0]["targets"]}
    for name in COMPARED:
        target = targets[(name, "reference_ratio")]
        assert target["value"] == pytest.approx(FAKE_SECONDS[name] / next(
            c["seconds"] for c in reference_run[0]["cases"] if c["name"] == name))
        assert target["status"] == ("met" if target["value"] >= 3 else "not met")
    assert targets[("sinusoid-meta", "reference_ratio")]["status"] == "not measured"
    assert targets[("sinusoid-meta-64", "reference_per_task_ratio")]["met"] is None


def test_the_table_shows_the_reference_columns_and_who_ran_it(reference_run):
    table = reference_run[2]
    assert "reference*" in table and "ref/gf" in table and "min-max" in table
    assert f"* reference: {FAKE} run by {sys.executable} (Python {platform.python_version()}" in table
    assert f"{ROUNDS} rounds, each right after graphflow's round" in table
    assert "[not measured] sinusoid-meta reference_ratio" in table


def test_a_missing_python_is_one_error_line():
    code, out, err = _bench(["--quick", "--cases", "sinusoid-inner", "--reference", "/no/such/python",
                             "--reference-script", str(FAKE)])
    assert code == 2
    assert one_error_line(err, out) == "error: --reference /no/such/python: no such python (not a file, not on PATH)"


def test_a_missing_script_is_one_error_line():
    code, out, err = _bench(["--quick", "--cases", "sinusoid-inner", "--reference", sys.executable,
                             "--reference-script", "no/such/timing.py"])
    assert code == 2
    assert one_error_line(err, out).startswith("error: --reference-script no/such/timing.py: no such file")


def test_a_script_without_its_python_is_one_error_line():
    code, out, err = _bench(["--quick", "--reference-script", str(FAKE)])
    assert code == 2
    assert one_error_line(err, out) == "error: --reference-script needs --reference PYTHON (the python that runs it)"


def test_no_comparable_case_is_one_error_line():
    code, out, err = _bench(["--quick", "--cases", "build", "--reference", sys.executable, "--reference-script", str(FAKE)])
    assert code == 2
    assert "none of the selected cases runs in the reference's timing script" in one_error_line(err, out)


def test_a_failing_script_names_the_command_and_shows_its_stderr(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TIMING_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_TIMING_FAIL", "1")
    code, out, err = _bench(["--quick", "--cases", "sinusoid-inner", "--rounds", "1",
                             "--reference", sys.executable, "--reference-script", str(FAKE)])
    assert code == 2
    line = one_error_line(_error_output(err), out)
    assert line.startswith(f"error: the reference timing `{sys.executable} {FAKE} --cases sinusoid-inner")
    assert line.endswith("exited with status 3; the last lines of its stderr:")
    shown = err.splitlines()[err.splitlines().index(line) + 1:]
    assert len(shown) == 8 and shown[-1] == "  ImportError: no tensorflow here"  # the tail, not the whole traceback
    assert shown[0] == '    File "mplp/layer3.py", line 3, in call'


def test_output_that_is_not_json_is_an_error(tmp_path):
    script = tmp_path / "timing.py"
    script.write_text("print('warming up')\nprint('done')\n")
    with pytest.raises(GraphflowError, match=r"printed no JSON object on its last line; the last lines of its stdout:\n  warming up"):
        ReferenceScript.locate(sys.executable, script).run(["sinusoid-inner"])


def test_a_case_missing_from_the_output_is_an_error(tmp_path):
    script = tmp_path / "timing.py"
    script.write_text("import json\nprint(json.dumps({'sinusoid-inner': 0.01}))\n")
    with pytest.raises(GraphflowError, match="gave no time for mnist-inner"):
        ReferenceScript.locate(sys.executable, script).run(["sinusoid-inner", "mnist-inner"])
