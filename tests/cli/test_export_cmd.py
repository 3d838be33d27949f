"""``graphflow export``: a trained checkpoint becomes a protocol file that loads and evaluates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.meta.checkpoint import load_checkpoint
from graphflow.meta.protocol_file import load_protocol
from graphflow.meta.summary import summarize_log
from graphflow.meta.trainer import Trainer
from tests.cli.test_bad_input import error_line
from tests.meta.test_trainer import tiny_experiment


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    Trainer(tiny_experiment(steps=2), folder).train(progress=False)
    return folder


def test_export_writes_a_protocol_file_that_loads_and_evaluates(capsys, trained, tmp_path):
    out = tmp_path / "tiny.npz"
    assert main(["export", str(trained), "--out", str(out), "--summary"]) == 0
    assert f"{out}: the protocol of tiny after 2 meta-steps" in capsys.readouterr().out

    _, protocol, init, meta = load_protocol(out)
    _, trained_protocol, trained_init, trained_meta = load_protocol(trained / "checkpoint.npz")
    exported, want = protocol.flat(), trained_protocol.flat()
    assert sorted(exported) == sorted(want)
    assert all(np.array_equal(exported[k], want[k]) for k in want)
    assert init is None and trained_init is None  # no MAML initial network in this experiment

    arrays, header = load_checkpoint(out)
    assert not any(k.startswith("optimizer/") for k in arrays)
    assert header["kind"] == "graphflow-protocol" and header["name"] == "tiny" and header["trained_steps"] == 2
    assert header["experiment"] == trained_meta["experiment"]
    assert header["graph"] == trained_meta["graph"] and header["learner"] == trained_meta["learner"]
    assert header["summary"] == summarize_log(trained / "log.jsonl") and header["summary"]["meta_steps"] == 2

    assert main(["eval", str(out), "--tasks", "2", "--json"]) == 0
    curves = json.loads(capsys.readouterr().out)
    assert set(curves) == {"graphflow", "adam", "sgd"} and len(curves["graphflow"]["mean"]) == 3


def test_export_of_a_checkpoint_file_without_summary(capsys, trained, tmp_path):
    out = tmp_path / "plain.npz"
    assert main(["export", str(trained / "checkpoint.npz"), "--out", str(out)]) == 0
    assert "summary" not in load_checkpoint(out)[1]


def test_export_refuses_to_overwrite_unless_forced(capsys, trained, tmp_path):
    out = tmp_path / "p.npz"
    out.write_bytes(b"keep me")
    assert error_line(capsys, "export", trained, "--out", out) == f"error: --out {out} exists: pass --force to replace it"
    assert out.read_bytes() == b"keep me"
    assert main(["export", str(trained), "--out", str(out), "--force"]) == 0
    assert load_checkpoint(out)[1]["kind"] == "graphflow-protocol"


@pytest.mark.parametrize("case, message", [
    ("missing", "no such training checkpoint"),
    ("empty-folder", "no such training checkpoint in the run folder"),
    ("protocol", "a protocol file already, not a training checkpoint"),
    ("damaged", "unreadable checkpoint"),
    ("suffix", "a protocol file is an .npz archive; name it out.npz"),
    ("itself", "that is the training checkpoint itself"),
    ("no-log", "--summary: no log.jsonl next to"),
])
def test_bad_input_is_one_error_line(capsys, trained, tmp_path, case, message):
    source, out, extra = trained, tmp_path / "out.npz", []
    if case == "missing":
        source = tmp_path / "nope.npz"
    elif case == "empty-folder":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "protocol":
        source = tmp_path / "exported.npz"
        assert main(["export", str(trained), "--out", str(source)]) == 0
        capsys.readouterr()
    elif case == "damaged":
        source = tmp_path / "damaged.npz"
        source.write_bytes((trained / "checkpoint.npz").read_bytes()[:200])
    elif case == "suffix":
        out = tmp_path / "out.npy"
    elif case == "itself":
        out, extra = trained / "checkpoint.npz", ["--force"]
    elif case == "no-log":
        source = tmp_path / "elsewhere" / "checkpoint.npz"
        source.parent.mkdir()
        source.write_bytes((trained / "checkpoint.npz").read_bytes())
        extra = ["--summary"]
    assert message in error_line(capsys, "export", source, "--out", out, *extra)
    assert not out.exists() or case == "itself"


# ----------------------------------------------------------------------------------------------
# --format safetensors: read back with the safetensors library alone


@pytest.fixture(scope="module")
def trained_maml(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maml")
    Trainer(tiny_experiment(steps=2, maml=True), folder).train(progress=False)
    return folder


@pytest.mark.parametrize("run", ["trained", "trained_maml"])
def test_safetensors_export_holds_every_protocol_array_and_the_specs(capsys, run, tmp_path, request):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    import graphflow

    folder = request.getfixturevalue(run)
    out = tmp_path / "p.safetensors"
    assert main(["export", str(folder), "--format", "safetensors", "--out", str(out), "--summary"]) == 0
    assert capsys.readouterr().out.startswith(f"{out}: the protocol of tiny after 2 meta-steps, ")

    arrays = load_file(out)
    _, protocol, init, meta = load_protocol(folder / "checkpoint.npz")
    want = dict(protocol.flat())
    want.update({f"init::{k}": v for k, v in (init or {}).items()})
    assert (init is not None) == (run == "trained_maml")
    assert sorted(arrays) == sorted(want)
    for key, value in want.items():
        assert arrays[key].dtype == np.float32 and arrays[key].shape == value.shape, key
        assert np.array_equal(arrays[key], value), key

    with safe_open(out, "numpy") as f:
        header = json.loads(f.metadata()["graphflow"])
    assert header["kind"] == "graphflow-protocol" and header["graphflow_version"] == graphflow.__version__
    assert header["name"] == "tiny" and header["trained_steps"] == 2
    assert header["graph"] == meta["graph"] and header["learner"] == meta["learner"]
    assert header["experiment"] == meta["experiment"]
    assert header["summary"] == summarize_log(folder / "log.jsonl")


def test_safetensors_export_of_a_protocol_file(capsys, trained, tmp_path):
    from safetensors.numpy import load_file

    npz, out = tmp_path / "p.npz", tmp_path / "p.safetensors"
    assert main(["export", str(trained), "--out", str(npz)]) == 0
    assert main(["export", str(npz), "--format", "safetensors", "--out", str(out)]) == 0
    want = load_protocol(npz)[1].flat()
    arrays = load_file(out)
    assert sorted(arrays) == sorted(want) and all(np.array_equal(arrays[k], want[k]) for k in want)


@pytest.mark.parametrize("args, message", [
    (["--format", "safetensors", "--out", "{tmp}/p.npz"], "--format safetensors writes a .safetensors file; name it p.safetensors"),
    (["--out", "{tmp}/p.safetensors"], "a protocol file is an .npz archive; name it p.npz"),
    (["--format", "pt", "--out", "{tmp}/p.pt"], "--format 'pt': choose one of npz, safetensors"),
])
def test_safetensors_bad_input_is_one_error_line(capsys, trained, tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    assert message in error_line(capsys, "export", trained, *args)
    assert not list(tmp_path.iterdir())


def test_safetensors_without_the_library_is_one_clear_error(capsys, trained, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    line = error_line(capsys, "export", trained, "--format", "safetensors", "--out", tmp_path / "p.safetensors")
    assert line == "error: --format safetensors needs safetensors: pip install 'graphflow[safetensors]'"


def test_the_loading_snippet_of_the_docs_runs(capsys, trained, tmp_path, monkeypatch):
    """docs/meta-training.md's numpy snippet loads what the export there writes, without graphflow's help."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "meta-training.md").read_text()
    section = doc[doc.index("## Exporting a protocol"):]
    export = re.search(r"^graphflow (export .*--format safetensors.*)$", section, re.M).group(1).split()
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "two-branches").symlink_to(trained)
    assert main(export[:1] + [a.strip("'") for a in export[1:]]) == 0
    namespace: dict = {}
    exec(compile(snippet, "docs/meta-training.md", "exec"), namespace)
    want = load_protocol(trained)[1].flat()
    assert sorted(namespace["arrays"]) == sorted(want)
    assert namespace["header"]["trained_steps"] == 2
