"""Valid graphs that are probably not what was meant warn (GraphWarning), naming the block."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import graphflow as gf
from graphflow.errors import GraphWarning


def test_cross_entropy_without_a_softmax_warns_naming_the_loss():
    with pytest.warns(GraphWarning, match=r"loss 'loss2': cross-entropy on 'sigmoid1' \(activation block\)"):
        gf.build(gf.stack(4, gf.Dense(3), gf.Sigmoid(), gf.CrossEntropy()))


def test_cross_entropy_on_a_softmax_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphWarning)
        gf.build(gf.stack(4, gf.Dense(3), gf.Softmax(), gf.CrossEntropy()))


def test_the_command_line_prints_the_warning_as_one_line(tmp_path):
    spec = tmp_path / "g.json"
    spec.write_text(gf.stack(4, gf.Dense(3), gf.Sigmoid(), gf.CrossEntropy()).model_dump_json())
    code = f"from graphflow.cli import main; raise SystemExit(main(['graph', {str(spec)!r}]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "cross-entropy" in line]
    assert lines == [lines[0]] and lines[0].startswith("warning: loss 'loss2': cross-entropy on 'sigmoid1'"), out.stderr
