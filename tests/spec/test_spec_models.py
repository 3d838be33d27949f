"""Spec models: validation through graphflow.spec, field paths in errors, files in and out."""

import json
from pathlib import Path

import pytest

import graphflow as gf
from graphflow.presets import mnist
from graphflow.spec import ExperimentSpec, load_spec, parse_experiment_spec, parse_graph_spec

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


STACK = {"kind": "stack", "inputs": 2, "layers": [{"kind": "dense", "units": 3}, {"kind": "loss", "fn": "l2"}]}


def _stack(**layer0):
    return {**STACK, "layers": [{"kind": "dense", "units": 3, **layer0}, {"kind": "loss", "fn": "l2"}]}


@pytest.mark.parametrize("data, line", [
    (_stack(units=True), "layers.0.units: Input should be a valid integer (got True)"),
    (_stack(units=3.0), "layers.0.units: Input should be a valid integer (got 3.0)"),
    (_stack(units="3"), "layers.0.units: Input should be a valid integer (got '3')"),
    ({**STACK, "inputs": False}, "inputs: Input should be a valid integer (got False)"),
    ({"kind": "freeform", "blocks": [{"kind": "input", "name": "x", "size": 2.5}]},
     "blocks.0.size: Input should be a valid integer (got 2.5)"),
    ({"kind": "freeform", "blocks": [{"kind": "weights", "name": "w", "src": "x", "dst": "h", "edges": [[True, 0]]}]},
     "blocks.0.edges.0.0: Input should be a valid integer (got True)"),
    ({"kind": "freeform", "blocks": [{"kind": "weights", "name": "w", "src": "x", "dst": "h", "mask": [[1.0]]}]},
     "blocks.0.mask.0.0: Input should be a valid integer (got 1.0)"),
    ({"kind": "freeform", "blocks": [{"kind": "weights", "name": "w", "src": "x", "dst": "h", "fan_in": 0}]},
     "blocks.0.fan_in: Input should be greater than 0 (got 0)"),
    ({"kind": "freeform", "blocks": [{"kind": "neurons", "name": "h", "size": 1, "bias_edges": [[0, "0"]]}]},
     "blocks.0.bias_edges.0.1: Input should be a valid integer (got '0')"),
])
def test_graph_spec_integers_are_strict(data, line):
    with pytest.raises(gf.SpecError) as err:
        parse_graph_spec(data)
    assert line in str(err.value), str(err.value)
    with pytest.raises(gf.SpecError) as err:
        parse_graph_spec(json.dumps(data))
    assert line.split(" (got")[0] in str(err.value), str(err.value)


def test_numpy_integers_are_the_integers_they_are():
    import numpy as np

    spec = parse_graph_spec({**STACK, "inputs": np.int64(2), "layers": [{"kind": "dense", "units": np.int32(3)},
                                                                       {"kind": "loss", "fn": "l2"}]})
    assert spec == parse_graph_spec(STACK) and type(spec.inputs) is int
    with pytest.raises(gf.SpecError, match="valid integer"):
        parse_graph_spec({**STACK, "inputs": np.bool_(True)})


def _experiment(**fields):
    meta = fields.pop("meta", {})
    learner = fields.pop("learner", {})
    return {"graph": STACK, "meta": meta, "learner": learner, **fields}


@pytest.mark.parametrize("data, line", [
    (_experiment(seed=-1), "seed: Input should be greater than or equal to 0 (got -1)"),
    (_experiment(seed=True), "seed: Input should be a valid integer (got True)"),
    (_experiment(threads=0), "threads: Input should be greater than 0 (got 0)"),
    (_experiment(eval_tasks=2.0), "eval_tasks: Input should be a valid integer (got 2.0)"),
    (_experiment(name="../elsewhere"), "name: Value error, name '../elsewhere' must be a non-empty folder name"),
    (_experiment(name=""), "name: Value error, name '' must be a non-empty folder name"),
    (_experiment(name="/etc"), "name: Value error"),
    (_experiment(meta={"learning_rate": float("inf")}), "meta.learning_rate: Input should be a finite number (got inf)"),
    (_experiment(meta={"learning_rate": float("nan")}), "meta.learning_rate: Input should be a finite number (got nan)"),
    (_experiment(meta={"learning_rate": "1e-4"}), "meta.learning_rate: Input should be a valid number (got '1e-4')"),
    (_experiment(meta={"hint_weight": True}), "meta.hint_weight: Input should be a valid number (got True)"),
    (_experiment(meta={"learning_rate_final": float("-inf")}), "meta.learning_rate_final: Input should be a finite number"),
    (_experiment(meta={"maml": "true"}), "meta.maml: Input should be a valid boolean (got 'true')"),
    (_experiment(meta={"train_g": 1}), "meta.train_g: Input should be a valid boolean (got 1)"),
    (_experiment(meta={"steps": True}), "meta.steps: Input should be a valid integer (got True)"),
    (_experiment(meta={"outer_batch": 0}), "meta.outer_batch: Input should be greater than 0 (got 0)"),
    (_experiment(meta={"normalization_rounds": 0}), "meta.normalization_rounds: Input should be greater than 0 (got 0)"),
    (_experiment(learner={"mlp_hidden": [0, 4]}), "learner.mlp_hidden.0: Input should be greater than 0 (got 0)"),
    (_experiment(learner={"mlp_hidden": [4, -1]}), "learner.mlp_hidden.1: Input should be greater than 0 (got -1)"),
    (_experiment(learner={"message_size": 0}), "learner.message_size: Input should be greater than 0 (got 0)"),
    (_experiment(learner={"hidden": -1}), "learner.hidden: Input should be greater than or equal to 0 (got -1)"),
    (_experiment(learner={"init_std": float("inf")}), "learner.init_std: Input should be a finite number (got inf)"),
    (_experiment(task={"kind": "mnist", "data_dir": "\ud800"}), "task.data_dir: Value error, text holds a lone surrogate"),
])
def test_experiment_fields_are_strict_finite_and_bounded(data, line):
    with pytest.raises(gf.SpecError) as err:
        parse_experiment_spec(data)
    assert str(err.value).startswith("invalid experiment spec:") and line in str(err.value), str(err.value)


def test_float_fields_take_integers_and_json_numbers():
    spec = parse_experiment_spec(_experiment(meta={"learning_rate": 1, "heldout_weight": 0}, learner={"init_std": 1}))
    assert spec.meta.learning_rate == 1.0 and isinstance(spec.meta.learning_rate, float)
    assert parse_experiment_spec(spec.model_dump_json()) == spec
    assert parse_experiment_spec(json.dumps(_experiment(seed=2**70))).seed == 2**70   # numpy takes any seed >= 0
    with pytest.raises(gf.SpecError, match="meta.learning_rate: Input should be a finite number"):
        parse_experiment_spec('{"graph": ' + json.dumps(STACK) + ', "meta": {"learning_rate": 1e400}}')
    with pytest.raises(gf.SpecError, match="meta.learning_rate: Input should be a finite number"):
        parse_experiment_spec('{"graph": ' + json.dumps(STACK) + ', "meta": {"learning_rate": NaN}}')


def test_load_spec_refuses_infinity_and_bools_in_files(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text('{"graph": ' + json.dumps(_stack(units=True)) + ', "meta": {"learning_rate": Infinity}}')
    with pytest.raises(gf.SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert f"invalid experiment spec {path}:" in text
    assert "graph.layers.0.units: Input should be a valid integer (got True)" in text
    assert "meta.learning_rate: Input should be a finite number (got inf)" in text
