"""``graphflow graph``: statistics as JSON or a table, pictures, and clean errors (exit 2, no traceback)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphflow.cli import main
from graphflow.presets import PRESETS

SPEC_DATA = Path(__file__).resolve().parent.parent / "spec" / "data"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_mnist_json_reports_the_node_counts(capsys):
    code, out, err = run(capsys, "graph", "mnist", "--json")
    assert code == 0 and err == ""
    stats = json.loads(out)
    assert {k: stats["nodes"][k] for k in ("weight", "bias", "activation", "softmax", "loss")} == \
        {"weight": 7700, "bias": 60, "activation": 50, "softmax": 10, "loss": 10}
    assert (stats["forward_arrows"], stats["backward_arrows"], stats["learner_groups"]) == (15630, 15470, 5)


def test_layers_option_builds_a_quick_stack(capsys):
    code, out, _ = run(capsys, "graph", "--layers", "784,1000,1000,10", "--activation", "relu", "--loss", "ce", "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["nodes"]["weight"] == 784 * 1000 + 1000 * 1000 + 1000 * 10
    assert stats["nodes"]["softmax"] == 10 and stats["nodes"]["activation"] == 2000


def test_summary_table_without_json(capsys):
    code, out, _ = run(capsys, "graph", "mnist")
    assert code == 0
    assert out.startswith("graph mnist: 8,044 nodes in 9 blocks, 8 waves")
    lines = [line.split() for line in out.splitlines()]
    assert ["weight", "7,700"] in lines and ["softmax", "10"] in lines and ["total", "8,044"] in lines
    assert ["forward", "arrows", "15,630"] in lines
    assert ["W", "weight", "7,700", "dense0/w,", "dense2/w"] in lines
    assert ["loss4/loss", "ce", "loss", "10", "loss4/loss"] in lines


@pytest.mark.parametrize("source", [str(SPEC_DATA / "experiment_mnist.json"), str(SPEC_DATA / "freeform_two_losses.json")])
def test_spec_files_are_accepted(capsys, source):
    code, out, _ = run(capsys, "graph", source, "--json")
    assert code == 0 and json.loads(out)["nodes"]["loss"] in (10, 5)


def test_pictures_are_written(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_DRAW_BACKEND", "matplotlib")
    code, out, err = run(capsys, "graph", "sinusoid", "--json", "--svg", str(tmp_path / "g.svg"),
                         "--png", str(tmp_path / "g.png"), "--dot", str(tmp_path / "g.dot"))
    assert code == 0
    assert json.loads(out)["nodes"]["weight"] == 440          # stdout stays pure JSON
    assert f"wrote {tmp_path / 'g.png'}" in err
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / "g.svg").read_text()
    dot = (tmp_path / "g.dot").read_text()
    assert '"dense2/w" [label="dense2/w\\n400 weights"' in dot       # 565 nodes: collapsed


def test_per_node_and_collapsed_flags(capsys, tmp_path):
    code, _, _ = run(capsys, "graph", "--layers", "2,1", "--dot", str(tmp_path / "small.dot"))
    assert code == 0 and '"dense0/w[1,0]"' in (tmp_path / "small.dot").read_text()
    run(capsys, "graph", "--layers", "2,1", "--collapsed", "--dot", str(tmp_path / "c.dot"))
    assert '"dense0/w" [label=' in (tmp_path / "c.dot").read_text()
    run(capsys, "graph", "--layers", "40,10,1", "--per-node", "--dot", str(tmp_path / "p.dot"))
    assert '"dense0/w[39,9]"' in (tmp_path / "p.dot").read_text()


@pytest.mark.parametrize("args, message", [
    (["graph", "mnsit"], "error: 'mnsit' is neither a preset nor a spec file; presets: maml-sinusoid, mnist, mnist-784, sinusoid"),
    (["graph"], "error: give either SPEC|PRESET or --layers"),
    (["graph", "mnist", "--layers", "3,2"], "error: give either SPEC|PRESET or --layers"),
    (["graph", "--layers", "3,x"], "error: --layers '3,x': 'x' is not a whole number"),
    (["graph", "--layers", "3,2", "--loss", "hinge"], "layers.1.fn: Input should be 'l2', 'l1' or 'ce' (got 'hinge')"),
    (["graph", "mnist", "--png", "out.png", "--backend", "tikz"], "backend='tikz': unknown drawing backend"),
    (["graph", "--no-such-option"], "No such option: --no-such-option"),
])
def test_bad_input_exits_2_with_a_clear_message(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out


def test_bad_spec_file_exits_2_naming_the_file_and_field(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "freeform", "blocks": [{"kind": "input", "name": "x", "size": 2},
                                                              {"kind": "neurons", "name": "h", "size": 2},
                                                              {"kind": "convolution", "name": "c"}]}))
    code, _, err = run(capsys, "graph", str(bad))
    assert code == 2
    assert f"{bad}: invalid graph spec:" in err and "blocks.2.kind: Input tag 'convolution'" in err
    cyclic = tmp_path / "cyclic.json"
    cyclic.write_text(json.dumps({"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 1}, {"kind": "neurons", "name": "h", "size": 1},
        {"kind": "weights", "name": "h", "src": "x", "dst": "h"}, {"kind": "weights", "name": "loop", "src": "h", "dst": "h"},
        {"kind": "loss", "name": "l", "src": "h", "fn": "l2", "target": "t"}, {"kind": "target", "name": "t", "size": 1}]}))
    code, _, err = run(capsys, "graph", str(cyclic))
    assert code == 2 and "error: cycle: h -> weights:loop -> h" in err


def test_module_entry_point_in_a_subprocess(tmp_path):
    result = subprocess.run([sys.executable, "-m", "graphflow.cli", "graph", "mnist", "--json"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["nodes"]["weight"] == 7700
    bad = subprocess.run([sys.executable, "-m", "graphflow.cli", "graph", "nope"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "presets:" in bad.stderr


def test_every_preset_runs(capsys):
    for name in PRESETS:
        code, out, _ = run(capsys, "graph", name, "--json")
        assert code == 0 and json.loads(out)["nodes"]["loss"] >= 1
