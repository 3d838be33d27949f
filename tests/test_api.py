"""The Python API (``gf.train``, ``gf.evaluate``, ``gf.load_protocol``): the same runs and numbers as
the command line, clear errors, and the page that teaches it (docs/meta-training.md, "From Python")
running as written and printing what it shows.

``GRAPHFLOW_UPDATE_DOCS=1`` rewrites the page's printed blocks with what the code prints now.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import graphflow as gf
from graphflow.cli import main
from graphflow.errors import GraphflowError, SpecError
from tests.meta.test_trainer import tiny_experiment

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "meta-training.md"
SECTION = "## From Python"
UPDATE_DOCS = os.environ.get("GRAPHFLOW_UPDATE_DOCS") == "1"

# ----------------------------------------------------------------------------------------------
# The page's printed blocks

BLOCK_PAIR = re.compile(r"^```python\n(.*?)^```\n\n```text\n(.*?)^```$", re.S | re.M)
"""A code block and, right below it, the block of what it prints."""
DECIMAL = re.compile(r"(-?\d+\.\d+(?:e[-+]?\d+)?)")
LAST_DIGITS = 2
"""Printed decimals may differ by this many units of their last digit (another BLAS, the same run)."""


def section(text: str) -> tuple[int, int]:
    """Where the "From Python" section of the page starts and ends."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return start, len(text) if end < 0 else end + 1


def tolerance(decimal: str) -> float:
    mantissa, _, exponent = decimal.partition("e")
    places = len(mantissa.partition(".")[2])
    return LAST_DIGITS * 10.0 ** (-places) * 10.0 ** int(exponent or 0)


def printout_differences(shown: str, printed: str) -> list[str]:
    """How ``printed`` differs from the ``shown`` text: its words and whole numbers exactly, its
    decimals within :data:`LAST_DIGITS` units of the shown last digit.

    >>> printout_differences("loss 0.0412 at step 4", "loss 0.0413 at step 4")
    []
    >>> printout_differences("loss 0.0412 at step 4", "loss 0.0452 at step 5")
    ['0.0452 is not 0.0412 (to 0.0002)', "' at step 5' is not ' at step 4'"]
    """
    a, b = DECIMAL.split(shown.rstrip()), DECIMAL.split(printed.rstrip())
    if len(a) != len(b):
        return [f"{len(b) // 2} decimals printed, {len(a) // 2} shown"]
    out = []
    for k, (want, got) in enumerate(zip(a, b)):
        if k % 2 and abs(float(got) - float(want)) > tolerance(want) * (1 + 1e-9):
            out.append(f"{got} is not {want} (to {tolerance(want):g})")
        elif not k % 2 and [line.rstrip() for line in got.split("\n")] != [line.rstrip() for line in want.split("\n")]:
            out.append(f"{got!r} is not {want!r}")
    return out


def test_the_python_section_of_the_meta_training_page_prints_what_it_shows(tmp_path, monkeypatch):
    text = DOC.read_text()
    start, end = section(text)
    pairs = list(BLOCK_PAIR.finditer(text, start, end))
    assert len(pairs) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = []
    for k, pair in enumerate(pairs):
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            exec(compile(pair.group(1), f"{DOC.name}, python block {k + 1} of '{SECTION}'", "exec"), namespace)
        printed.append(captured.getvalue())
    if UPDATE_DOCS:
        for pair, out in reversed(list(zip(pairs, printed))):
            text = text[:pair.start(2)] + out + text[pair.end(2):]
        DOC.write_text(text)
        pairs = list(BLOCK_PAIR.finditer(text, *section(text)))
    for k, (pair, out) in enumerate(zip(pairs, printed)):
        wrong = printout_differences(pair.group(2), out)
        assert not wrong, (f"python block {k + 1} of {DOC.name} '{SECTION}' prints\n{out}\nnot what the page shows:\n"
                           f"{pair.group(2)}\n" + "\n".join(wrong) + "\n(GRAPHFLOW_UPDATE_DOCS=1 rewrites the page)")
    run, trained = namespace["run"], namespace["trained"]
    assert (tmp_path / "runs" / "two-branches" / "checkpoint.npz").exists() and run.step == trained.trained_steps == 6
    assert trained.graph.incoming_weights("out") and len(trained.graph.select("skip/w[*,*]").ids()) == 1


# ----------------------------------------------------------------------------------------------
# The same as the command line


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api") / "tiny"
    return gf.train(tiny_experiment(steps=2), out=folder, progress=False)


def test_train_writes_the_run_folder_and_returns_its_records(trained_run):
    run = trained_run
    assert run.step == 2 and run.checkpoint == run.folder / "checkpoint.npz" and run.checkpoint.exists()
    records = [json.loads(line) for line in (run.folder / "log.jsonl").read_text().splitlines()]
    assert run.log == records and len(run.meta_losses) == 2
    assert list(run.evals) == [2] and run.evals[2].tasks == 4
    assert run.summary()["step"] == 2 and run.summary()["eval"] == records[-1]["eval"]
    assert repr(run).startswith("TrainResult(") and "tiny at meta-step 2" in repr(run)


def test_experiments_as_specs_dicts_and_files_train_the_same(tmp_path, trained_run):
    spec = tiny_experiment(steps=2)
    path = tmp_path / "tiny.json"
    path.write_text(spec.model_dump_json())
    for k, experiment in enumerate((spec.model_dump(mode="json"), path)):
        run = gf.train(experiment, out=tmp_path / str(k), progress=False)
        assert run.meta_losses == trained_run.meta_losses and run.experiment == spec


def test_resume_continues_and_says_when_there_is_nothing_to_do(tmp_path):
    spec = tiny_experiment(steps=4)
    gf.train(spec, out=tmp_path / "run", progress=False, steps=2)
    resumed = gf.train(spec, out=tmp_path / "run", resume=True, progress=False)
    straight = gf.train(spec, out=tmp_path / "straight", progress=False)
    assert resumed.step == 4 and resumed.meta_losses == straight.meta_losses
    with pytest.raises(GraphflowError, match="at meta-step 4 .*nothing to do"):
        gf.train(spec, out=tmp_path / "run", resume=True, progress=False)
    with pytest.raises(GraphflowError, match="checkpoint.npz exists: pass --resume \\(resume=True\\)"):
        gf.train(spec, out=tmp_path / "run", progress=False)
    with pytest.raises(GraphflowError, match="no checkpoint at"):
        gf.train(spec, out=tmp_path / "empty", resume=True, progress=False)


def test_evaluate_gives_the_numbers_of_graphflow_eval_json(trained_run, capsys):
    assert main(["eval", str(trained_run.folder), "--tasks", "3", "--seed", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for source in (trained_run, trained_run.folder, trained_run.checkpoint, gf.load_protocol(trained_run.folder)):
        assert gf.evaluate(source, tasks=3, seed=2).to_json() == printed
    assert main(["eval", "sinusoid_demo", "--tasks", "2", "--steps", "1", "--json"]) == 0
    bundled = json.loads(capsys.readouterr().out)
    assert gf.evaluate(tasks=2, steps=1).to_json() == gf.evaluate("sinusoid_demo", tasks=2, steps=1).to_json() == bundled


def test_load_protocol_reads_files_folders_and_bundled_names(trained_run):
    trained = gf.load_protocol(trained_run.folder)
    assert trained.path == trained_run.checkpoint and trained.kind == "graphflow-training-checkpoint"
    assert trained.trained_steps == 2 and trained.experiment == trained_run.experiment
    assert trained.protocol.flat().keys() == trained_run.protocol.flat().keys()
    demo = gf.load_protocol("sinusoid_demo")
    assert demo.kind == "graphflow-protocol" and demo.trained_steps == 13000 and demo.path.name == "sinusoid_demo.npz"


@pytest.mark.parametrize("call, message", [
    (lambda tmp: gf.train(42, out=tmp), "experiment: expected an ExperimentSpec, a dict or the path"),
    (lambda tmp: gf.train({"graph": {"kind": "stack", "inputs": 1, "layers": [{"kind": "loss", "fn": "l2"}]},
                           "meta": {"steps": 0}}, out=tmp), "meta.steps: Input should be greater than 0"),
    (lambda tmp: gf.train({"graph": {"kind": "stack", "inputs": 1}, "colour": 1}, out=tmp), "colour"),
    (lambda tmp: gf.train(tmp / "missing.json", out=tmp), "missing.json"),
    (lambda tmp: gf.train(ROOT / "tests" / "spec" / "data" / "freeform_two_losses.json", out=tmp),
     "freeform_two_losses.json: a graph spec, not an experiment spec"),
    (lambda tmp: gf.train(tiny_experiment(), out=tmp, steps=0), "steps: expected a whole number of at least 1"),
    (lambda tmp: gf.evaluate(tasks=0), "tasks: expected a whole number of at least 1, not 0"),
    (lambda tmp: gf.evaluate(seed=-1), "seed: expected a whole number of at least 0"),
    (lambda tmp: gf.evaluate(tasks=2.5), "tasks: expected a whole number"),
    (lambda tmp: gf.evaluate(adam_lr=float("nan")), "adam_lr: expected a finite learning rate"),
    (lambda tmp: gf.evaluate(3.5), "protocol: expected a file, a run folder, a bundled protocol's name"),
    (lambda tmp: gf.evaluate("no-such-protocol"), "no-such-protocol: no such checkpoint, run folder or bundled "
                                                  "protocol (bundled: sinusoid_demo, maml-sinusoid, mnist, sinusoid)"),
    (lambda tmp: gf.load_protocol(tmp), "checkpoint.npz: no such checkpoint"),
    (lambda tmp: gf.load_protocol(tmp / "p.npz"), "p.npz: no such checkpoint"),
])
def test_bad_input_is_one_error_naming_the_argument_field_or_file(tmp_path, call, message):
    with pytest.raises(GraphflowError) as caught:
        call(tmp_path)
    assert message in str(caught.value)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_spec_errors_are_graphflow_errors():
    with pytest.raises(SpecError):
        gf.train({"graph": {}})


def test_importing_graphflow_leaves_the_trainer_unloaded():
    code = "import sys, graphflow as gf; print(sorted(m for m in ('graphflow.api', 'graphflow.meta.trainer', " \
           "'graphflow.engine') if m in sys.modules)); print(gf.train.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "graphflow.api"]
