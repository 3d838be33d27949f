"""``graphflow mplp metagrad`` against the reference case, and ``graphflow train`` / ``eval`` end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from graphflow.autodiff.gradcheck import KinkMonitor
from graphflow.backend import get_backend
from graphflow.cli import main
from graphflow.engine import Engine, NetState
from graphflow.interop.mplp import gradient_names, load_checkpoint
from graphflow.interop.traces import dense_layer_keys
from graphflow.meta.checkpoint import load_checkpoint as load_training_checkpoint
from graphflow.meta.metaloss import MetaBatch, meta_loss
from graphflow.presets import sinusoid
from graphflow.spec import ExperimentSpec

SINUSOID = "sinusoid_weights_00035869.npy"
MAML = "maml_sin_net_weights_00258202.npy"
CASE = "sinusoid_metaloss_case.npz"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def metagrad(capsys, reference_dir, out, *extra, preset="sinusoid", checkpoint=SINUSOID):
    code, text, err = run(capsys, "mplp", "metagrad", "--preset", preset, "--checkpoint", reference_dir / checkpoint,
                          "--case", reference_dir / CASE, "--out", out, *extra)
    assert code == 0, err
    assert text.startswith("meta_loss ")
    with np.load(out) as data:
        return float(data["meta_loss"]), {k[5:]: data[k] for k in data.files if k.startswith("grad/")}


def layout_names(reference_dir, checkpoint):
    return [s["name"] for s in json.loads((reference_dir / "checkpoint_layouts.json").read_text())[checkpoint]]


def test_meta_loss_matches_the_reference_case(capsys, reference_dir, tmp_path):
    loss, grads = metagrad(capsys, reference_dir, tmp_path / "g.npz")
    expected = float(np.load(reference_dir / CASE)["meta_loss"])
    assert abs(loss - expected) < 1e-6 * max(1.0, expected) and abs(loss - expected) / expected < 1e-3
    names = layout_names(reference_dir, SINUSOID)
    # every gradient is named after its checkpoint segment; every trainable whole segment has one
    assert set(grads) <= set(names)
    trainable = {n for n in names if ".in_std." not in n and not n.endswith(".out_mean")}
    assert set(grads) == trainable and len(grads) == 159
    assert "layer0.W.bw.gru.W_update_x" in grads and "layer4.b.bw.out_std.out_scale" in grads
    assert all(g.dtype == np.float32 and np.all(np.isfinite(g)) for g in grads.values())


def test_held_out_weight_one_does_not_reproduce_the_case(capsys, reference_dir, tmp_path):
    """The case's meta-loss is 0.7 hint + 0.3 held-out (as MPLP_SPEC.md says), not 0.7 + 1.0."""
    expected = float(np.load(reference_dir / CASE)["meta_loss"])
    loss, _ = metagrad(capsys, reference_dir, tmp_path / "g.npz", "--heldout-weight", "1.0")
    assert abs(loss - expected) > 1e-5 and abs(loss - expected) / expected > 0.05  # 10x the tolerance above
    loss, _ = metagrad(capsys, reference_dir, tmp_path / "g.npz", "--hint-weight", "0.0", "--heldout-weight", "1.0")
    assert abs(loss - expected) / expected > 0.05


def test_float64_gradients_match_finite_differences(capsys, reference_dir, tmp_path):
    loss, grads = metagrad(capsys, reference_dir, tmp_path / "g64.npz", "--dtype", "float64")
    assert all(g.dtype == np.float64 for g in grads.values())
    expected = float(np.load(reference_dir / CASE)["meta_loss"])
    assert abs(loss - expected) < 1e-6 * max(1.0, expected)

    # the same case through the Python API, in float64, under a kink monitor (the network has relus)
    graph, protocol = load_checkpoint("sinusoid", reference_dir / SINUSOID)
    monitor = KinkMonitor(np)
    engine = Engine(graph, protocol, replace(get_backend("numpy", np.float64), xp=monitor))
    case = np.load(reference_dir / CASE)
    batch = MetaBatch(case["x"][None], case["y"][None], case["xe"][None], case["ye"][None])
    init = {}
    for n, (wkey, bkey) in enumerate(dense_layer_keys(graph), start=1):
        init[wkey] = case[f"init_W{n}"][None].astype(np.float64)
        init[bkey] = np.zeros((1, graph.units[bkey.split("/")[0]].size))

    def value():
        return float(meta_loss(engine, NetState(dict(init)), batch))

    assert abs(value() - loss) < 1e-12
    # Relu inputs move by eps times their sensitivity to a protocol entry, which the update scale
    # (~0.01) keeps far below 1: a margin above 1e-7 keeps eps = 1e-6 differences off the kinks.
    assert monitor.margin > 1e-7, monitor.margin
    by_name = {name: key for key, name in gradient_names(graph, protocol).items()}
    checked = [("layer0.W.bw.gru.W_update_x", (0, 0)), ("layer1.bw.gru.next_x_net.dense0.kernel", (2, 5)),
               ("layer2.W.bw.gru.W_reset_c", (4, 7)), ("layer4.W.bw.out_std.out_scale", ()),
               ("layer5.bw.gru.next_c_net.dense1.bias", (7,))]
    eps = 1e-6
    for name, idx in checked:
        _, group, part = by_name[name].split("::")
        table = engine.learner_params if by_name[name].startswith("learner::") else engine.norm_params
        array = table[group][part]  # the engine's own float64 copy
        base = array[idx].copy()
        diffs = []
        for step in (eps, -eps):
            array[idx] = base + step
            diffs.append(value())
        array[idx] = base
        numeric = (diffs[0] - diffs[1]) / (2 * eps)
        assert abs(grads[name][idx] - numeric) <= 1e-8 + 1e-4 * abs(numeric), (name, idx, grads[name][idx], numeric)


def test_maml_sinusoid_metagrad_leaves_g_untrained(capsys, reference_dir, tmp_path):
    loss, grads = metagrad(capsys, reference_dir, tmp_path / "g.npz", preset="maml-sinusoid", checkpoint=MAML)
    assert np.isfinite(loss) and loss > 0
    names = layout_names(reference_dir, MAML)
    assert set(grads) <= set(names)
    assert not [n for n in grads if ".g.dense" in n]  # g is not trainable in the reference
    assert {n for n in names if ".f.dense" in n or n.endswith(".f.out_scale")} == set(grads)
    with_prior, _ = metagrad(capsys, reference_dir, tmp_path / "p.npz", "--prior",
                             reference_dir / "maml_sin_prior_weights_00258202.npy", preset="maml-sinusoid",
                             checkpoint=MAML)
    assert np.isfinite(with_prior) and with_prior != loss


def test_metagrad_errors_are_clear(capsys, reference_dir, tmp_path):
    code, _, err = run(capsys, "mplp", "metagrad", "--preset", "mnist", "--checkpoint", reference_dir / SINUSOID,
                       "--case", reference_dir / CASE, "--out", tmp_path / "g.npz")
    assert code == 2 and "sinusoid presets" in err
    code, _, err = run(capsys, "mplp", "metagrad", "--preset", "sinusoid", "--checkpoint", reference_dir / SINUSOID,
                       "--case", tmp_path / "missing.npz", "--out", tmp_path / "g.npz")
    assert code == 2 and "no such case file" in err
    code, _, err = run(capsys, "mplp", "metagrad", "--preset", "sinusoid", "--checkpoint", reference_dir / SINUSOID,
                       "--case", reference_dir / CASE, "--out", tmp_path / "g.npz", "--dtype", "float16")
    assert code == 2 and "float32 or float64" in err


# ----------------------------------------------------------------------------------------------
# graphflow train / graphflow eval


def tiny_config(path: Path) -> Path:
    exp = ExperimentSpec.model_validate({
        "name": "tiny-cli", "graph": sinusoid().model_dump(mode="json"),
        "learner": {"hidden": 2, "message_size": 2, "mlp_hidden": [8, 8]},
        "meta": {"outer_batch": 2, "inner_steps": 2, "steps": 10},
        "checkpoint_every": 100, "eval_every": 100, "eval_tasks": 3,
    })
    path.write_text(exp.model_dump_json(indent=2))
    return path


def test_train_then_eval_end_to_end(capsys, tmp_path):
    config, folder = tiny_config(tmp_path / "tiny.json"), tmp_path / "run"
    code, out, err = run(capsys, "train", config, "--out", folder, "--steps", "3", "--no-progress")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["step"] == 3 and summary["last"]["step"] == 3 and np.isfinite(summary["last"]["meta_loss"])
    assert summary["eval"]["metric"] == "l2" and len(summary["eval"]["mean"]) == 3
    assert err == ""  # no progress bar
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "meta_loss" in r] == [1, 2, 3]
    assert [r["step"] for r in records if "eval" in r] == [3]
    assert load_training_checkpoint(folder / "checkpoint.npz")[1]["step"] == 3

    code, out, err = run(capsys, "eval", folder / "checkpoint.npz", "--json", "--tasks", "3")
    assert code == 0, err
    curves = json.loads(out)
    assert set(curves) == {"graphflow", "adam", "sgd"}
    for curve in curves.values():
        assert curve["metric"] == "l2" and curve["steps"] == [0, 1, 2] and curve["tasks"] == 3
        assert len(curve["mean"]) == 3 and all(np.isfinite(curve["mean"]))
    # the same tasks and initial networks for every learner: equal losses before any step
    assert len({round(c["mean"][0], 9) for c in curves.values()}) == 1

    code, out, _ = run(capsys, "eval", folder / "checkpoint.npz", "--tasks", "3")
    assert code == 0 and "graphflow" in out.splitlines()[0] and len(out.splitlines()) == 4


def test_train_rejects_a_graph_spec(capsys, tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(sinusoid().model_dump_json())
    code, _, err = run(capsys, "train", path, "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and "not an experiment spec" in err
    code, _, err = run(capsys, "train", tiny_config(tmp_path / "t.json"), "--out", tmp_path / "new", "--resume")
    assert code == 2 and "no checkpoint" in err
