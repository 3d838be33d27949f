"""Presets of the published runs and the SPEC|PRESET lookup (graphflow.presets)."""

import json
from pathlib import Path

import pytest

import graphflow as gf
from graphflow.presets import PRESETS, graph_spec_for

DATA = Path(__file__).parent / "data"


def test_sinusoid_preset_layers():
    g = gf.build(PRESETS["sinusoid"]())
    assert list(g.units) == ["input", "target", "dense0", "relu1", "dense2", "relu3", "dense4", "loss5"]
    assert g.losses[0].fn == "l2"
    assert [w.n_src * w.n_dst for w in g.weights.values()] == [20, 400, 20]
    assert g.stats()["learner_groups"] == 9          # learners per layer


def test_maml_sinusoid_is_the_sinusoid_graph():
    assert PRESETS["maml-sinusoid"]() == PRESETS["sinusoid"]()


def test_mnist_preset_layers_and_sharing():
    g = gf.build(PRESETS["mnist"]())
    assert list(g.units) == ["input", "target", "dense0", "sigmoid1", "dense2", "softmax3", "loss4"]
    assert g.stats()["nodes"]["weight"] == 7700 and g.losses[0].fn == "ce"
    assert g.groups["W"] == ["dense0/w", "dense2/w"] and g.groups["b"] == ["dense0/b", "dense2/b"]
    assert len(g.norm_groups) == 7                   # normalization stays per layer


def test_mnist_784_preset():
    stats = gf.build(PRESETS["mnist-784"]()).stats()
    assert stats["nodes"]["input"] == 784 and stats["nodes"]["weight"] == 784 * 100 + 100 * 10


def test_presets_return_fresh_specs():
    assert PRESETS["mnist"]() is not PRESETS["mnist"]() and PRESETS["mnist"]() == PRESETS["mnist"]()


def test_graph_spec_for_names_and_files(tmp_path):
    assert graph_spec_for("mnist") == PRESETS["mnist"]()
    assert graph_spec_for(DATA / "experiment_mnist.json") == PRESETS["mnist"]()       # an experiment: its graph
    assert isinstance(graph_spec_for(str(DATA / "freeform_two_losses.json")), gf.FreeFormSpec)
    path = tmp_path / "sin.json"
    path.write_text(PRESETS["sinusoid"]().model_dump_json())
    assert graph_spec_for(path) == PRESETS["sinusoid"]()


def test_unknown_preset_lists_the_presets():
    with pytest.raises(gf.SpecError, match="'mnsit' is neither a preset nor a spec file; presets: "
                                           "maml-sinusoid, mnist, mnist-784, sinusoid"):
        graph_spec_for("mnsit")


def test_missing_or_bad_spec_files_raise_spec_errors(tmp_path):
    with pytest.raises(gf.SpecError, match="nope.json: no such spec file"):
        graph_spec_for(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "stack", "inputs": 2, "layers": []}))
    with pytest.raises(gf.SpecError, match=r"bad\.json: invalid graph spec:\n  layers: List should have at least 1 item"):
        graph_spec_for(bad)
