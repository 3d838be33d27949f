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
