"""The committed JSON Schemas in schemas/ are current and accept the specs graphflow writes."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import graphflow as gf
from graphflow.presets import PRESETS
from graphflow.spec.schemas import json_schemas, schema_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
SPEC_DATA = ROOT / "tests" / "spec" / "data"
REGENERATE = "python schemas/generate.py"


@pytest.mark.parametrize("name", sorted(json_schemas()))
def test_committed_schema_is_current(name):
    committed = SCHEMAS / name
    assert committed.is_file(), f"schemas/{name} is missing; run `{REGENERATE}`"
    assert committed.read_text() == schema_text(json_schemas()[name]), (
        f"schemas/{name} is stale: the pydantic models changed; run `{REGENERATE}` and commit the result")


def test_generator_check_mode(tmp_path):
    script = ROOT / "schemas" / "generate.py"
    assert subprocess.run([sys.executable, str(script), "--check"], capture_output=True).returncode == 0
    schemas, docs = tmp_path / "schemas", tmp_path / "experiments.md"  # never the committed files
    written = subprocess.run([sys.executable, str(script), "--dir", str(schemas), "--docs", str(docs)],
                             capture_output=True, text=True)
    assert written.returncode == 0 and sorted(p.name for p in schemas.iterdir()) == sorted(json_schemas())
    (schemas / "learner.schema.json").write_text("{}\n")
    stale = subprocess.run([sys.executable, str(script), "--check", "--dir", str(schemas), "--docs", str(docs)],
                           capture_output=True, text=True)
    assert stale.returncode == 1
    assert "learner.schema.json" in stale.stderr and REGENERATE in stale.stderr


def generator():
    """``schemas/generate.py`` as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("schemas_generate", ROOT / "schemas" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_experiment_field_reference_is_current():
    committed = ROOT / "docs" / "experiments.md"
    assert committed.is_file(), f"docs/experiments.md is missing; run `{REGENERATE}`"
    assert committed.read_text() == generator().experiments_markdown(), (
        f"docs/experiments.md is stale: the pydantic models or their field docstrings changed; run `{REGENERATE}` "
        "and commit the result")


def test_the_field_reference_documents_every_field_of_every_model():
    generate = generator()
    text = generate.experiments_markdown()
    schema = json_schemas()["experiment.schema.json"]
    for name, model in [("ExperimentSpec", schema), *schema["$defs"].items()]:
        assert f"\n## {name}\n" in text, name
        for field in model.get("properties", {}):
            assert f"| `{field}` |" in text, f"{name}.{field}"
    assert "| `learning_rate` | number > 0 | `0.0001` |" in text and "reference regime" in text
    assert "| `mlp_hidden` | [integer > 0, integer > 0] | `[80, 40]` |" in text
    undocumented = json.loads(json.dumps(schema))
    del undocumented["$defs"]["LearnerSpec"]["properties"]["hidden"]["description"]
    with pytest.raises(ValueError, match="LearnerSpec.hidden has no docstring"):
        generate.experiments_markdown(undocumented)


def test_the_generator_checks_and_writes_the_field_reference(tmp_path):
    script = ROOT / "schemas" / "generate.py"
    docs = tmp_path / "experiments.md"
    written = subprocess.run([sys.executable, str(script), "--dir", str(tmp_path), "--docs", str(docs)],
                             capture_output=True, text=True)
    assert written.returncode == 0 and docs.read_text() == (ROOT / "docs" / "experiments.md").read_text()
    docs.write_text("old\n")
    stale = subprocess.run([sys.executable, str(script), "--check", "--dir", str(tmp_path), "--docs", str(docs)],
                           capture_output=True, text=True)
    assert stale.returncode == 1 and "experiments.md" in stale.stderr and REGENERATE in stale.stderr


def test_schema_text_is_deterministic():
    first, second = json_schemas(), json_schemas()
    for name in first:
        text = schema_text(first[name])
        assert text == schema_text(second[name]) and text.endswith("}\n")
        assert list(json.loads(text)) == sorted(json.loads(text))


def validator(name):
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def graph_examples():
    net = gf.FreeForm()
    x, h = net.input(3), net.neurons(2)
    net.connect(x, h, mask=[[1, 0], [0, 1], [1, 1]])
    net.connect(x[0], h[0])
    net.loss(net.activation(h, ["relu", "tanh"]), "l1")
    yield from (json.loads(make().model_dump_json()) for make in PRESETS.values())
    yield json.loads(net.spec().model_dump_json())
    yield json.loads((SPEC_DATA / "freeform_two_losses.json").read_text())
    yield {"kind": "stack", "inputs": 1, "layers": [{"kind": "dense", "units": 1}, {"kind": "loss", "fn": "l2"}]}


def test_example_graph_specs_are_valid_against_the_schema():
    check = validator("graph_spec.schema.json")
    for example in graph_examples():
        check.validate(example)


@pytest.mark.parametrize("bad", [
    {"kind": "stack", "inputs": 1, "layers": [{"kind": "pool"}]},
    {"kind": "stack", "inputs": 0, "layers": [{"kind": "loss", "fn": "l2"}]},
    {"kind": "freeform", "blocks": [{"kind": "input", "name": "x", "size": 2, "colour": "red"}]},
    {"kind": "freeform", "blocks": [{"kind": "loss", "name": "l", "src": "h", "fn": "hinge"}]},
    {"kind": "graph"},
])
def test_the_schema_rejects_what_the_models_reject(bad):
    assert list(validator("graph_spec.schema.json").iter_errors(bad))
    with pytest.raises(gf.SpecError):
        gf.spec.parse_graph_spec(bad)


def test_experiment_and_learner_examples_are_valid():
    experiment = json.loads((SPEC_DATA / "experiment_mnist.json").read_text())
    validator("experiment.schema.json").validate(experiment)
    validator("experiment.schema.json").validate(json.loads(gf.ExperimentSpec(graph=PRESETS["sinusoid"]()).model_dump_json()))
    validator("learner.schema.json").validate(experiment["learner"])
    assert list(validator("learner.schema.json").iter_errors({"kind": "lstm"}))


def test_schemas_carry_the_field_docs():
    graph = json.loads((SCHEMAS / "graph_spec.schema.json").read_text())
    assert graph["$schema"] == "https://json-schema.org/draft/2020-12/schema" and graph["title"] == "GraphSpec"
    assert "normalization" in graph["$defs"]["StackSpec"]["properties"]["sharing"]["description"]
    assert graph["$defs"]["WeightBlock"]["properties"]["mask"]["description"].startswith("0/1 connectivity")
