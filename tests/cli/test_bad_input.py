"""The command line's promise on bad input: one ``error:`` line, exit 2, no traceback (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.meta.checkpoint import load_checkpoint, save_checkpoint
from graphflow.meta.trainer import Trainer
from tests.cli_output import one_error_line
from tests.meta.test_trainer import tiny_experiment


def error_line(capsys, *args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, (args, out, err)
    return one_error_line(err, out)


@pytest.mark.parametrize("args, message", [
    (["eval", "--tasks", "0"], "Invalid value for '--tasks'"),
    (["eval", "--steps", "-1"], "Invalid value for '--steps'"),
    (["eval", "--steps", "0"], "Invalid value for '--steps'"),
    (["eval", "--seed", "-2"], "Invalid value for '--seed'"),
    (["eval", "--plot", "x.jpg"], "--plot x.jpg: use a .png, .svg or .pdf file"),
    (["demo", "--tasks", "0"], "Invalid value for '--tasks'"),
    (["demo", "--plot", "demo.gif"], "--plot demo.gif: use a .png, .svg or .pdf file"),
    (["mplp", "eval", "--preset", "sinusoid", "--checkpoint", "c.npy", "--tasks", "0"], "Invalid value for '--tasks'"),
    (["train", "nope.json", "--steps", "0"], "Invalid value for '--steps'"),
    (["eval", "--no-such-option"], "No such option: --no-such-option (see `graphflow eval --help`)"),
])
def test_bad_options_get_one_error_line(capsys, args, message):
    assert message in error_line(capsys, *args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    Trainer(tiny_experiment(steps=2), folder).train(progress=False)
    return folder


def test_eval_takes_a_run_folder(capsys, trained):
    assert main(["eval", str(trained), "--tasks", "2", "--json"]) == 0
    assert '"graphflow"' in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:.*(overflow|invalid value).*:RuntimeWarning")
def test_eval_of_a_diverging_protocol_is_an_error_not_nan_rows(capsys, trained, tmp_path):
    arrays, meta = load_checkpoint(trained / "checkpoint.npz")
    for key in arrays:
        if key.endswith("::out_scale"):
            arrays[key] = np.asarray(1e30, np.float32)  # finite, but every update is enormous
    path = tmp_path / "diverging.npz"
    save_checkpoint(path, arrays, {k: v for k, v in meta.items() if k != "checksum"})
    line = error_line(capsys, "eval", path, "--tasks", "2")
    assert "graphflow: the l2 is not finite from inner step" in line and "diverged" in line


def test_inspect_and_explore_of_a_checkpoint_with_nan_parameters_are_refused(capsys, trained, tmp_path):
    """NaN can only be in a checkpoint written by hand (the trainer never writes one): refused by name."""
    import json

    from graphflow.meta import checkpoint as ckpt
    from graphflow.meta.checkpoint import checksum

    arrays, meta = load_checkpoint(trained / "checkpoint.npz")
    key = next(k for k in arrays if k.startswith("protocol/learner::"))
    arrays[key] = np.full_like(arrays[key], np.nan)
    header = {k: v for k, v in meta.items() if k != "checksum"}
    header["checksum"] = checksum(arrays, header)
    path = tmp_path / "nan.npz"
    np.savez(path, **arrays, **{ckpt.META_KEY: np.array(json.dumps(header))})
    for args in (["eval", path, "--tasks", "2"], ["inspect", path, "--nodes", "dense4/w[0,0]", "--steps", "1"],
                 ["explore", path, "--nodes", "dense4/w[0,0]", "--out", tmp_path / "x.html"]):
        assert f"protocol array {key[9:]} holds NaN" in error_line(capsys, *args)
