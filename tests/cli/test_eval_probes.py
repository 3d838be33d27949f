"""graphflow eval --protocol NAME and the probe options (--graph, --activation, --data)."""

from __future__ import annotations

import json

import pytest

from graphflow.cli import main
from tests.cli_output import one_error_line


def test_eval_names_a_bundled_protocol_and_probes_another_activation(capsys):
    assert main(["eval", "--protocol", "sinusoid_demo", "--tasks", "2", "--steps", "1", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["eval", "--protocol", "sinusoid_demo", "--tasks", "2", "--steps", "1", "--json",
                 "--activation", "relu=tanh"]) == 0
    probed = json.loads(capsys.readouterr().out)
    assert set(plain) == set(probed) == {"graphflow", "adam", "sgd"}
    assert plain["graphflow"]["steps"] == probed["graphflow"]["steps"] == [0, 1]
    assert plain["graphflow"]["mean"] != probed["graphflow"]["mean"]


@pytest.mark.parametrize("args, message", [
    (["--protocol", "no-such"], "--protocol no-such: no such bundled protocol (bundled: sinusoid_demo"),
    (["sinusoid_demo", "--protocol", "sinusoid_demo"], "give a bundled protocol's name or CHECKPOINT, not both"),
    (["--activation", "relu"], "--activation relu: write OLD=NEW"),
    (["--activation", "sigmoid=step"], "activations: the graph has no sigmoid activation (it has: relu)"),
    (["--graph", "mnist"], "learner group"),
    (["--data", "."], "data: the sinusoid task reads no data folder"),
])
def test_eval_probe_mistakes_are_one_error_line(capsys, args, message):
    assert main(["eval", "--tasks", "1", "--steps", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in one_error_line(err)
