"""``graphflow metagrad``: one estimate of the first meta-step's gradient by any estimator, written
as ``grad/<protocol key>`` arrays with the meta-loss; bad input is one ``error:`` line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphflow.cli.metagrad_cmd  # noqa: F401  (registers the command on the app)
from graphflow.cli import main
from graphflow.meta.trainer import Trainer
from graphflow.presets import sinusoid
from tests.cli.test_bad_input import error_line
from tests.meta.test_trainer import tiny_experiment


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(tiny_experiment(normalization_rounds=1).model_dump_json())
    return path


def metagrad(capsys, *args) -> tuple[str, dict]:
    code = main(["metagrad", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def read(path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("estimator", ["bptt", "es", "truncated", "pes", "nres"])
def test_metagrad_writes_a_gradient_for_every_trained_entry(estimator, config, tmp_path, capsys):
    out = tmp_path / "g.npz"
    args = [config, "--estimator", estimator, "--out", out] + (["--population", 4] if estimator in ("es", "pes", "nres") else [])
    printed, _ = metagrad(capsys, *args)
    assert printed.startswith(f"{estimator}: meta_loss ") and f"-> {out}" in printed
    arrays = read(out)
    trainer = Trainer(tiny_experiment(normalization_rounds=1))
    trained = trainer.protocol.trainable()
    assert sorted(k for k in arrays if k.startswith("grad/")) == sorted(f"grad/{k}" for k in trained)
    flat = trainer.protocol.flat()
    assert all(arrays[f"grad/{k}"].shape == flat[k].shape and np.all(np.isfinite(arrays[f"grad/{k}"])) for k in trained)
    assert np.isfinite(arrays["meta_loss"]) and arrays["meta_loss"].shape == ()
    written = json.loads(str(arrays["estimator"]))
    assert written["kind"] == estimator and written.get("population", 4) == 4
    if estimator in ("truncated", "pes", "nres"):  # not in the config: one truncation of a whole inner loop
        assert (written["unroll"], written["truncation"]) == (2, 2)


def test_the_bptt_estimate_is_the_first_meta_steps_gradient(config, tmp_path, capsys):
    out = tmp_path / "g.npz"
    metagrad(capsys, config, "--out", out)  # the config's estimator: bptt
    arrays = read(out)
    trainer = Trainer(tiny_experiment(normalization_rounds=1))
    trainer.setup()
    batch = trainer.tasks.sample(trainer.rng, 2)
    loss, grads = trainer._sharded_metagrad(batch, trainer._initial(trainer.rng.integers(0, 100, size=2)))
    assert float(arrays["meta_loss"]) == loss
    for key, g in grads.items():
        np.testing.assert_array_equal(arrays[f"grad/{key}"], g, err_msg=key)


def test_the_seed_chooses_the_noise_and_only_the_noise(config, tmp_path, capsys):
    paths = [tmp_path / f"{name}.npz" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (1, 1, 2)):
        metagrad(capsys, config, "--estimator", "es", "--population", 2, "--seed", seed, "--out", path)
    a, b, c = map(read, paths)
    key = "grad/norm::dense0/w::out_scale"
    assert np.array_equal(a[key], b[key]) and not np.array_equal(a[key], c[key])


def test_options_of_the_config_carry_over_to_another_kind(tmp_path, capsys):
    config = tmp_path / "pes.json"
    spec = tiny_experiment(normalization_rounds=1, estimator={"kind": "pes", "unroll": 4, "truncation": 2,
                                                               "population": 4, "sigma": 0.05})
    config.write_text(spec.model_dump_json())
    metagrad(capsys, config, "--estimator", "es", "--out", tmp_path / "es.npz")
    assert json.loads(str(read(tmp_path / "es.npz")["estimator"])) == {
        "kind": "es", "population": 4, "sigma": 0.05, "fitness_shaping": "none"}
    metagrad(capsys, config, "--estimator", "truncated", "--out", tmp_path / "t.npz")
    assert json.loads(str(read(tmp_path / "t.npz")["estimator"])) == {
        "kind": "truncated", "unroll": 4, "truncation": 2, "stagger": True}


def test_bad_input_is_one_error_line(config, tmp_path, capsys):
    out = tmp_path / "g.npz"
    graph_only = tmp_path / "graph.json"
    graph_only.write_text(sinusoid().model_dump_json())
    cases = [
        ([config, "--estimator", "es", "--population", 3, "--out", out], "population 3 is odd"),
        ([config, "--estimator", "bptt", "--population", 4, "--out", out], "--population 4: the bptt estimator has no population"),
        ([config, "--estimator", "truncated", "--population", 4, "--out", out], "the truncated estimator has no population"),
        ([config, "--seed", 3, "--out", out], "--seed 3: the bptt estimator draws no noise"),
        ([config, "--estimator", "nope", "--out", out], "--estimator 'nope': use one of bptt, truncated, es, pes, nres"),
        ([config, "--out", tmp_path / "g.txt"], "name it g.npz"),
        ([tmp_path / "missing.json", "--out", out], "missing.json"),
        ([graph_only, "--out", out], "a graph spec, not an experiment spec"),
        ([config, "--estimator", "es", "--seed", -1, "--out", out], "Invalid value for '--seed'"),
    ]
    for args, message in cases:
        assert message in error_line(capsys, "metagrad", *args), args
    assert not out.exists()
    out.write_bytes(b"keep me")
    assert error_line(capsys, "metagrad", config, "--out", out) == f"error: --out {out} exists: pass --force to replace it"
    assert out.read_bytes() == b"keep me"
    metagrad(capsys, config, "--out", out, "--force")
    assert "meta_loss" in read(out)
