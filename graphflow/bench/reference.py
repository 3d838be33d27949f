"""The reference implementation measured in the same run: its timing script in a subprocess, in rounds
alternating with graphflow's, and its figures folded into the benchmark records.

This module knows the script only through its command line: ``PYTHON SCRIPT --cases a,b
[--repeat-scale F]`` prints one JSON object ``{case: median seconds per step}`` as the last line of
its stdout (``shared/reference/tf/timing.py``). It never imports TensorFlow: the reference runs in its
own python, usually a scratch venv made by ``shared/reference/tf/setup.sh``.

>>> calls = []
>>> alternate(2, lambda k: calls.append(f"graphflow {k}"), lambda k: calls.append(f"reference {k}") or {"c": 1.0 + k})
[{'c': 1.0}, {'c': 2.0}]
>>> calls
['graphflow 0', 'reference 0', 'graphflow 1', 'reference 1']
>>> over_rounds([0.3, 0.1, 0.2])
(0.2, 0.1, 0.3)
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from graphflow.bench import workloads as W
from graphflow.errors import GraphflowError

DEFAULT_SCRIPT = Path("..") / "shared" / "reference" / "tf" / "timing.py"
"""Where ``--reference-script`` looks by default, relative to the current directory (the repository root)."""

QUICK_REPEAT_SCALE = 0.1
"""``--repeat-scale`` handed to the script in a ``--quick`` run (fewer timed steps, as on graphflow's side)."""

STDERR_LINES = 8
"""How many of a failed script's last stderr lines the error shows."""

TIMEOUT_SECONDS = 3600
"""A reference round that runs longer than this is taken as hung."""

_VERSION_PROBE = """import json, platform
try:
    import tensorflow as tf
    version = tf.__version__
except Exception:
    version = None
print(json.dumps({"python_version": platform.python_version(), "tensorflow_version": version}))
"""


@dataclass(frozen=True)
class ReferenceScript:
    """The reference's python and timing script, both checked to exist (:meth:`locate`)."""

    python: str
    script: Path

    @classmethod
    def locate(cls, python: str, script: str | Path = DEFAULT_SCRIPT) -> "ReferenceScript":
        """Check ``python`` (a path or a name on PATH) and ``script`` (relative to the current directory).

        >>> ReferenceScript.locate("no-such-python-here")
        Traceback (most recent call last):
        ...
        graphflow.errors.GraphflowError: --reference no-such-python-here: no such python (not a file, not on PATH)
        """
        found = shutil.which(python)
        if found is None:
            raise GraphflowError(f"--reference {python}: no such python (not a file, not on PATH)")
        resolved = Path(script).expanduser().resolve()
        if not resolved.is_file():
            raise GraphflowError(f"--reference-script {script}: no such file ({resolved}); it is the reference's "
                                 f"timing script, by default {DEFAULT_SCRIPT} from the repository root")
        return cls(python, resolved)

    def command(self, cases: list[str], repeat_scale: float | None = None) -> list[str]:
        """The command line of one round: the script on ``cases``."""
        scale = [] if repeat_scale is None else ["--repeat-scale", f"{repeat_scale:g}"]
        return [self.python, str(self.script), "--cases", ",".join(cases), *scale]

    def run(self, cases: list[str], repeat_scale: float | None = None) -> dict[str, float]:
        """One round: ``{case: median seconds per step}`` of the script, every case present and positive."""
        command = self.command(cases, repeat_scale)
        done = _run(command, TIMEOUT_SECONDS)
        if done.returncode != 0:
            raise GraphflowError(f"the reference timing `{shlex.join(command)}` exited with status {done.returncode}"
                                 + _tail("its stderr", done.stderr))
        return _parse_timings(command, done.stdout, cases)

    def versions(self) -> dict:
        """``python_version`` and ``tensorflow_version`` of the reference's python (None where unknown)."""
        try:
            done = subprocess.run([self.python, "-c", _VERSION_PROBE], capture_output=True, text=True, timeout=300,
                                  env=_quiet_tensorflow_env())
            return json.loads(_last_line(done.stdout))
        except (OSError, subprocess.SubprocessError, ValueError):
            return {"python_version": None, "tensorflow_version": None}

    def describe(self, cases: list[str], rounds: int, repeat_scale: float | None) -> dict:
        """The report's ``reference`` section: who ran the reference, on which cases, how often."""
        return {"python": self.python, "script": str(self.script), **self.versions(), "cases": list(cases),
                "rounds": rounds, "repeat_scale": repeat_scale, "command": shlex.join(self.command(cases, repeat_scale)),
                "measured": "in this run, each round right after graphflow's round of its cases"}


def _quiet_tensorflow_env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise GraphflowError(f"the reference timing `{shlex.join(command)}` ran past {timeout:g} s"
                             + _tail("its stderr", err.stderr or "")) from None
    except OSError as err:
        raise GraphflowError(f"the reference timing `{shlex.join(command)}` could not start: {err.strerror or err}") from None


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tail(what: str, text: str | bytes) -> str:
    """``; the last lines of <what>:`` and those lines, indented (the error's detail lines)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.rstrip() for line in text.splitlines() if line.strip()][-STDERR_LINES:]
    if not lines:
        return f" ({what} is empty)"
    return f"; the last lines of {what}:\n" + "\n".join(f"  {line}" for line in lines)


def _parse_timings(command: list[str], stdout: str, cases: list[str]) -> dict[str, float]:
    shown = f"the reference timing `{shlex.join(command)}`"
    try:
        timings = json.loads(_last_line(stdout))
    except ValueError:
        raise GraphflowError(f"{shown} printed no JSON object on its last line" + _tail("its stdout", stdout)) from None
    if not isinstance(timings, dict):
        raise GraphflowError(f"{shown} printed {type(timings).__name__}, not a JSON object of seconds per case")
    missing = [c for c in cases if c not in timings]
    if missing:
        raise GraphflowError(f"{shown} gave no time for {', '.join(missing)} (it gave: {', '.join(timings) or 'nothing'})")
    bad = [c for c in cases if not (isinstance(timings[c], (int, float)) and math.isfinite(timings[c]) and timings[c] > 0)]
    if bad:
        raise GraphflowError(f"{shown} gave no positive number of seconds for {', '.join(bad)}: "
                             + ", ".join(f"{c}={timings[c]!r}" for c in bad))
    return {c: float(timings[c]) for c in cases}


def alternate(rounds: int, graphflow_round, reference_round=None, progress=None) -> list[dict[str, float]]:
    """Run ``rounds`` rounds, each graphflow's cases (``graphflow_round(k)``) and then, when given, the
    reference's (``reference_round(k)``); returns the reference's results, one per round."""
    results = []
    for k in range(rounds):
        if progress is not None and rounds > 1:
            progress(f"round {k + 1}/{rounds}: graphflow")
        graphflow_round(k)
        if reference_round is not None:
            if progress is not None:
                progress(f"round {k + 1}/{rounds}: reference")
            results.append(reference_round(k))
    return results


def over_rounds(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of per-round figures."""
    return statistics.median(values), min(values), max(values)


def reference_cases(records: list[dict]) -> list[str]:
    """The script's cases the records are compared with (``reference_case``), in the script's order."""
    wanted = {r.get("reference_case") for r in records}
    return [c for c in W.REFERENCE_CASES if c in wanted]


def add_reference_figures(record: dict, rounds: list[dict[str, float]]) -> None:
    """Fold the reference's per-round seconds of ``record["reference_case"]`` into the record.

    The same work (the same number of tasks) gives ``reference_seconds`` (median of the rounds),
    ``reference_min``, ``reference_max``, ``reference_rounds`` and ``reference_ratio`` (reference
    seconds / graphflow's); other task counts compare per task (``reference_per_task_seconds``,
    ``reference_per_task_ratio``).

    >>> record = {"reference_case": "sinusoid-meta", "tasks": 64, "seconds": 0.8}
    >>> add_reference_figures(record, [{"sinusoid-meta": 0.4}, {"sinusoid-meta": 0.2}, {"sinusoid-meta": 0.3}])
    >>> record["reference_per_task_seconds"], round(record["reference_per_task_ratio"], 6)
    (0.075, 6.0)
    """
    case = record["reference_case"]
    values = [r[case] for r in rounds]
    median, low, high = over_rounds(values)
    reference_tasks = W.TIMED_CASES[case].workload.tasks
    record["reference_rounds"] = values
    if record["tasks"] == reference_tasks:
        record.update(reference_seconds=median, reference_min=low, reference_max=high,
                      reference_ratio=median / record["seconds"])
    else:
        per_task = median / reference_tasks
        record.update(reference_tasks=reference_tasks, reference_per_task_seconds=per_task,
                      reference_per_task_ratio=per_task / (record["seconds"] / record["tasks"]))


__all__ = ["DEFAULT_SCRIPT", "QUICK_REPEAT_SCALE", "ReferenceScript", "add_reference_figures", "alternate", "over_rounds",
           "reference_cases"]
