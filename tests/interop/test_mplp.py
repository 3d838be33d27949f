"""The published checkpoints and the reference trace against graphflow's engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.engine import Engine
from graphflow.engine.record import Recorder
from graphflow.errors import GraphflowError
from graphflow.interop.mplp import export_checkpoint, load_checkpoint, load_prior, reference_layout
from graphflow.interop.traces import initial_params, read_cases, replay_case

CHECKPOINTS = {
    "sinusoid": "sinusoid_weights_00035869.npy",
    "maml-sinusoid": "maml_sin_net_weights_00258202.npy",
    "mnist": "mnist_weights_00005000.npy",
}


@pytest.mark.parametrize("preset", CHECKPOINTS)
def test_derived_layout_matches_the_published_layout(reference_dir, preset):
    layouts = json.loads((reference_dir / "checkpoint_layouts.json").read_text())
    graph, protocol = load_checkpoint(preset, reference_dir / CHECKPOINTS[preset])
    ours = [(name, list(shape)) for name, shape in reference_layout(graph, protocol)]
    assert ours == [(s["name"], s["shape"]) for s in layouts[CHECKPOINTS[preset]]]


@pytest.mark.parametrize("preset", CHECKPOINTS)
def test_checkpoint_round_trip_is_identical(reference_dir, preset):
    flat = np.load(reference_dir / CHECKPOINTS[preset])
    graph, protocol = load_checkpoint(preset, reference_dir / CHECKPOINTS[preset])
    out = export_checkpoint(graph, protocol)
    assert out.dtype == np.float32 and out.tobytes() == flat.tobytes()


def test_mnist_checkpoint_shares_weight_and_bias_learners(reference_dir):
    graph, protocol = load_checkpoint("mnist", reference_dir / CHECKPOINTS["mnist"])
    assert set(protocol.learners) == {"W", "b", "sigmoid1/act", "softmax3/unit", "loss4/loss"}
    assert graph.slots["dense2/w"].norm_group == "dense2/w"  # normalization stays per layer


def test_wrong_checkpoint_for_preset_is_a_clear_error(reference_dir, tmp_path):
    wrong = tmp_path / "x.npy"
    np.save(wrong, np.zeros(10, np.float32))
    with pytest.raises(GraphflowError, match="10 values, preset 'sinusoid' needs 115081"):
        load_checkpoint("sinusoid", wrong)
    with pytest.raises(GraphflowError, match="unknown MPLP preset 'nope'"):
        load_checkpoint("nope", wrong)


def test_replay_cli_reproduces_the_reference_trace(reference_dir, tmp_path):
    out = tmp_path / "replay.npz"
    code = main(["mplp", "replay", "--preset", "sinusoid", "--checkpoint", str(reference_dir / CHECKPOINTS["sinusoid"]),
                 "--trace", str(reference_dir / "sinusoid_5x10_trace.npz"), "--out", str(out)])
    assert code == 0
    ref, ours = np.load(reference_dir / "sinusoid_5x10_trace.npz"), np.load(out)
    produced = [k for k in ref.files if "/step" in k]
    assert len(produced) == 3 * 5 * 8 and set(produced) <= set(ours.files)
    worst = max(float(np.abs(ours[k] - ref[k]).max()) for k in produced)
    assert worst < 1e-4, worst


def _sinusoid_engine(reference_dir):
    graph, protocol = load_checkpoint("sinusoid", reference_dir / CHECKPOINTS["sinusoid"])
    return Engine(graph, protocol)


def test_inspected_update_equals_the_weight_change(reference_dir):
    engine = _sinusoid_engine(reference_dir)
    case = read_cases(reference_dir / "sinusoid_5x10_trace.npz")["case0"]
    rec = Recorder(engine.graph, ["dense4/w[*,0]", "dense4/b[0]"])
    params = initial_params(engine.graph, case, None, "case0")
    out = replay_case(engine, case, params, rec)
    assert len(rec.node_ids()) == 21
    before = params["dense4/w"]
    for step in range(5):
        after = out[f"step{step}_W3"]
        for i in range(20):
            upd = rec.node(f"dense4/w[{i},0]")["update"][step, 0]
            np.testing.assert_allclose(upd, after[i, 0] - before[i, 0], atol=1e-6)
        before = after
    # The bias sends its message, unchanged, to every weight of its neuron.
    bias_out = rec.node("dense4/b[0]")["message_out"]
    for i in range(20):
        np.testing.assert_array_equal(rec.node(f"dense4/w[{i},0]")["message_in"], bias_out)


def test_replay_cli_writes_inspection(reference_dir, tmp_path):
    out, insp = tmp_path / "r.npz", tmp_path / "i.json"
    code = main(["mplp", "replay", "--preset", "sinusoid", "--checkpoint", str(reference_dir / CHECKPOINTS["sinusoid"]),
                 "--trace", str(reference_dir / "sinusoid_5x10_trace.npz"), "--out", str(out),
                 "--inspect", "dense4/w[3,0],relu3/act[*]", "--inspect-out", str(insp)])
    assert code == 0
    data = json.loads(insp.read_text())
    nodes = data["cases"]["case0"]
    assert set(nodes) == {"dense4/w[3,0]"} | {f"relu3/act[{k}]" for k in range(20)}
    assert np.shape(nodes["dense4/w[3,0]"]["carry"]) == (5, 1, 10, 24)


def test_eval_sinusoid_checkpoint_matches_the_reference(reference_dir, capsys):
    code = main(["mplp", "eval", "--preset", "sinusoid", "--checkpoint", str(reference_dir / CHECKPOINTS["sinusoid"]),
                 "--tasks", "100", "--seed", "0", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == [0, 1, 2, 3, 4, 5]
    assert abs(result["mean"][5] - 0.0013) <= 0.0004, result["mean"]
    assert result["mean"][0] > 10 * result["mean"][5]


def test_eval_maml_checkpoint_with_its_prior(reference_dir, capsys):
    code = main(["mplp", "eval", "--preset", "maml-sinusoid",
                 "--checkpoint", str(reference_dir / CHECKPOINTS["maml-sinusoid"]),
                 "--prior", str(reference_dir / "maml_sin_prior_weights_00258202.npy"), "--tasks", "100", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert abs(result["mean"][2] - 0.0011) <= 0.0004, result["mean"]


def test_prior_loads_in_layer_order(reference_dir):
    graph, _ = load_checkpoint("maml-sinusoid", reference_dir / CHECKPOINTS["maml-sinusoid"])
    prior = load_prior(graph, reference_dir / "maml_sin_prior_weights_00258202.npy")
    assert [(k, v.shape) for k, v in prior.items()] == [
        ("dense0/w", (1, 20)), ("dense0/b", (20,)), ("dense2/w", (20, 20)), ("dense2/b", (20,)),
        ("dense4/w", (20, 1)), ("dense4/b", (1,))]


def test_eval_mnist_checkpoint(reference_dir, mnist_dir, capsys):
    # 30 runs here (the full 100-run figure is in the issue note); the band is widened for the
    # smaller sample: the reference reaches 0.532 after 20 steps.
    code = main(["mplp", "eval", "--preset", "mnist", "--checkpoint", str(reference_dir / CHECKPOINTS["mnist"]),
                 "--data", str(mnist_dir), "--tasks", "30", "--seed", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert abs(result["mean"][20] - 0.53) <= 0.06, result["mean"]
    assert result["mean"][20] > result["mean"][1] + 0.2
