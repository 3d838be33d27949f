"""benchmarks/gpu_check.sh, the one prepared check for a lent GPU machine: it parses, names its
steps, asks the bench for cases that exist, pins the wheels the venv has, and stops with one line
where it cannot run (no $OUT, no CuPy)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
"""What the machine's image lacks of graphflow's core imports (benchmarks/gpu_check.sh's header)."""


def script_text() -> str:
    return SCRIPT.read_text()


def run_script(**env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "OUT"}
    environment.update(env)
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120)


def test_the_script_parses():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("step", [
    "set -uo pipefail",
    'LOG="$OUT/gpu_check.log"',
    "pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target",
    ".whl/*.whl",
    'export PYTHONPATH="$SITE',
    "GRAPHFLOW_TEST_BACKEND=cupy",
    "tests/test_device_backend.py",
    "-k cupy",
    "graphflow.cli bench --backend cupy",
    '--json "$OUT/bench-cupy-cases.json"',
    '--json "$OUT/bench-cupy-scaling.json"',
    "pip download --no-deps --only-binary=:all: --python-version 3.12",
])
def test_the_script_names_its_steps(step):
    assert step in script_text()


def test_the_bench_cases_it_asks_for_exist_and_the_missing_ones_are_named():
    from graphflow.bench import CASE_GROUPS

    text = script_text()
    cases = ",".join(re.findall(r"^BENCH_CASES\+?=,?(\S+)$", text, re.M)).split(",")
    assert set(cases) <= set(CASE_GROUPS) and {"sinusoid-meta-64", "build"} <= set(cases) and "scaling" in CASE_GROUPS
    todo = text[text.index("# TODO(bench)"):]
    assert "256-task" in todo and "784-1000-1000-10" in todo


@pytest.mark.parametrize("name", WHEELS)
def test_the_wheels_it_documents_are_the_venvs_versions(name):
    """The pip download line pins each wheel at the version this venv runs the tests with."""
    assert f"{name}=={importlib.metadata.version(name)}" in script_text()


def test_without_out_it_stops_with_one_line():
    result = run_script()
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "OUT is not set" in lines[0], lines


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is here: the script would run for real")
def test_without_cupy_it_stops_with_one_line(tmp_path):
    result = run_script(OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("gpu_check: no CuPy with a GPU"), lines
