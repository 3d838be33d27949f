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


def test_eval_reads_a_published_checkpoint_with_its_preset_and_regime(capsys, reference_dir, mnist_dir):
    """A published .npy is read with the preset whose layout it fits and evaluated in its regime
    (MNIST: 20 inner steps of 8 images unless told, the data folder from --data)."""
    from graphflow.api import load_protocol
    from graphflow.interop.mplp import load_checkpoint

    path = reference_dir / "mnist_weights_00005000.npy"
    trained = load_protocol(path)
    _, expected = load_checkpoint("mnist", path)
    assert trained.kind == "mplp-published-checkpoint" and trained.header["preset"] == "mnist"
    assert trained.experiment.graph.sharing == "kind" and trained.experiment.meta.inner_steps == 20
    assert all((trained.protocol.flat()[k] == v).all() for k, v in expected.flat().items())
    assert main(["eval", str(path), "--data", str(mnist_dir), "--tasks", "1", "--steps", "2", "--json"]) == 0
    curves = json.loads(capsys.readouterr().out)
    assert curves["graphflow"]["steps"] == [0, 1, 2] and curves["graphflow"]["metric"] == "accuracy"
    assert main(["eval", str(path), "--tasks", "1", "--steps", "1"]) == 2
    assert "a published MNIST checkpoint names no data folder: pass --data DIR" in one_error_line(capsys.readouterr().err)


def test_eval_reads_a_published_maml_checkpoint_with_the_prior_beside_it(capsys, reference_dir, tmp_path):
    """The learned initial network is published beside the MAML checkpoint: graphflow eval reads
    both, and Adam and SGD start from the same prior; without it, one error names the file."""
    import shutil

    maml = reference_dir / "maml_sin_net_weights_00258202.npy"
    assert main(["eval", str(maml), "--tasks", "20", "--seed", "0", "--json"]) == 0
    curves = json.loads(capsys.readouterr().out)
    assert curves["graphflow"]["steps"] == [0, 1, 2]
    assert curves["graphflow"]["mean"][0] == curves["adam"]["mean"][0] == curves["sgd"]["mean"][0]
    assert curves["graphflow"]["mean"][2] < 0.1 * curves["adam"]["mean"][2]  # 0.0012 against 0.027 on 100 tasks
    alone = tmp_path / maml.name
    shutil.copy(maml, alone)
    assert main(["eval", str(alone), "--tasks", "1"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "needs its prior (the initial network), expected beside it as maml_sin_prior_weights_00258202.npy" in err
    assert "graphflow mplp eval --preset maml-sinusoid" in err


def test_a_file_that_is_no_published_checkpoint_says_which_presets_it_fits_not(capsys, tmp_path):
    import numpy as np

    path = tmp_path / "weights.npy"
    np.save(path, np.zeros(7, np.float32))
    assert main(["eval", str(path), "--tasks", "1", "--steps", "1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "not a published MPLP checkpoint of any preset (sinusoid: 7 values, preset 'sinusoid' needs 115081" in line
