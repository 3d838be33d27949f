"""Spec models: validation through graphflow.spec, field paths in errors, files in and out."""

import json
from pathlib import Path

import pytest

import graphflow as gf
from graphflow.presets import mnist
from graphflow.spec import ExperimentSpec, load_spec, parse_graph_spec

DATA = Path(__file__).parent / "data"


def test_parse_graph_spec_picks_the_model_by_kind():
    assert isinstance(parse_graph_spec({"kind": "stack", "inputs": 1, "layers": [{"kind": "loss", "fn": "l2"}]}),
                      gf.StackSpec)
    assert isinstance(parse_graph_spec((DATA / "freeform_two_losses.json").read_text()), gf.FreeFormSpec)


@pytest.mark.parametrize("data, lines", [
    ({"kind": "freeform", "blocks": [{"kind": "input", "name": "x", "size": 2}, {"kind": "neurons", "name": "h", "size": 2},
                                     {"kind": "conv", "name": "c"}]},
     ["blocks.2.kind: Input tag 'conv' found using 'kind' does not match any of the expected tags: 'input', "
      "'target', 'neurons', 'weights', 'activation', 'softmax', 'loss'"]),
    ({"kind": "stack", "inputs": 2, "layers": [{"kind": "dense"}, {"kind": "dense", "units": 0}, {"kind": "pool"}]},
     ["layers.0.units: Field required", "layers.1.units: Input should be greater than 0 (got 0)",
      "layers.2.kind: Input tag 'pool' found"]),
    ({"kind": "bogus"}, ["kind: Input tag 'bogus' found using 'kind' does not match any of the expected tags: "
                         "'stack', 'freeform'"]),
    ({"kind": "stack", "inputs": 2, "layers": [{"kind": "activation", "fn": "gelu"}], "sharing": "all"},
     ["layers.0.fn: Input should be 'relu', 'sigmoid', 'tanh', 'step' or 'identity' (got 'gelu')",
      "sharing: Input should be 'layer', 'kind' or 'kind+norm' (got 'all')"]),
    ({"kind": "stack", "inputs": 2, "layers": [{"kind": "loss", "fn": "l2", "weight": 1}]},
     ["layers.0.weight: Extra inputs are not permitted (got 1)"]),
    ({"kind": "freeform", "blocks": [{"kind": "weights", "name": "w", "src": "x", "dst": "h", "edges": [[1, 2, 3]]}]},
     ["blocks.0.edges.0: Tuple should have at most 2 items"]),
    ({"kind": "freeform", "blocks": [{"kind": "input", "name": "x/1", "size": 2}]},
     ["blocks: Value error, block 0: name 'x/1' must be non-empty"]),
    ({"kind": "stack", "inputs": 2, "layers": [{"kind": "dense", "units": 2, "name": "a[0]"}, {"kind": "loss", "fn": "l2"}]},
     ["layers: Value error, layer 0: name 'a[0]' must be non-empty"]),
    ("{not json", ["<root>: Invalid JSON"]),
])
def test_spec_errors_name_the_field_path_the_user_wrote(data, lines):
    with pytest.raises(gf.SpecError) as err:
        parse_graph_spec(data)
    text = str(err.value)
    assert text.startswith("invalid graph spec:")
    for line in lines:
        assert line in text, text
    assert "stack.layers" not in text and "freeform.blocks" not in text    # no union members in the paths


def test_unknown_kind_in_json_text_names_the_path_too():
    text = json.dumps({"kind": "freeform", "blocks": [{"kind": "input", "name": "x", "size": 2}, {"kind": "lstm"}]})
    with pytest.raises(gf.SpecError, match=r"blocks\.1\.kind: Input tag 'lstm'"):
        parse_graph_spec(text)


def test_specs_are_frozen_and_forbid_extra_fields():
    spec = mnist()
    with pytest.raises(Exception):
        spec.inputs = 3
    with pytest.raises(Exception, match="Extra inputs are not permitted"):
        gf.StackSpec(inputs=1, layers=[gf.L2Loss()], extra=1)


def test_load_spec_reads_graph_and_experiment_files(tmp_path):
    graph = load_spec(DATA / "freeform_two_losses.json")
    assert isinstance(graph, gf.FreeFormSpec) and len(graph.blocks) == 14
    experiment = load_spec(DATA / "experiment_mnist.json")
    assert isinstance(experiment, ExperimentSpec)
    assert experiment.graph == mnist()
    assert (experiment.learner.message_size, experiment.learner.hidden, experiment.meta.inner_steps) == (4, 7, 20)
    assert experiment.task.kind == "mnist" and experiment.task.data_dir == "data/mnist"


def test_load_spec_errors_name_the_file(tmp_path):
    with pytest.raises(gf.SpecError, match=r"missing\.json: no such spec file"):
        load_spec(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(gf.SpecError, match=r"bad\.json: not valid JSON"):
        load_spec(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "stack", "inputs": 0, "layers": [{"kind": "loss", "fn": "l2"}]}))
    with pytest.raises(gf.SpecError, match=r"wrong\.json: invalid graph spec:\n  inputs: Input should be greater than 0"):
        load_spec(wrong)
    experiment = tmp_path / "exp.json"
    experiment.write_text(json.dumps({"graph": {"kind": "stack", "inputs": 1, "layers": [{"kind": "softmx"}]}}))
    with pytest.raises(gf.SpecError, match=r"invalid experiment spec .*exp\.json:\n  graph\.layers\.0\.kind: Input tag 'softmx'"):
        load_spec(experiment)
