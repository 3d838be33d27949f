"""JSON Schemas of the specs users write, generated from the pydantic models.

The committed copies live in ``schemas/`` at the top of the repository; ``python
schemas/generate.py`` rewrites them and ``--check`` tells when they are stale. Editors and
other languages validate spec files against them without importing graphflow.

>>> sorted(json_schemas())
['experiment.schema.json', 'graph_spec.schema.json', 'learner.schema.json']
>>> json_schemas()["graph_spec.schema.json"]["discriminator"]["propertyName"]
'kind'
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter

from graphflow.spec.experiment import ExperimentSpec
from graphflow.spec.graph import GraphSpec
from graphflow.spec.learner import LearnerSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILES = {
    "graph_spec.schema.json": ("GraphSpec", "A graphflow graph: a layer stack or a free-form block graph."),
    "learner.schema.json": ("LearnerSpec", None),
    "experiment.schema.json": ("ExperimentSpec", None),
}


def json_schemas() -> dict[str, dict]:
    """File name -> JSON Schema (draft 2020-12) of the graph, learner and experiment specs."""
    models = {
        "graph_spec.schema.json": TypeAdapter(GraphSpec).json_schema(),
        "learner.schema.json": LearnerSpec.model_json_schema(),
        "experiment.schema.json": ExperimentSpec.model_json_schema(),
    }
    out = {}
    for name, schema in models.items():
        title, description = SCHEMA_FILES[name]
        schema = {"$schema": SCHEMA_DIALECT, "title": title, **schema}
        if description and "description" not in schema:
            schema["description"] = description
        out[name] = schema
    return out


def schema_text(schema: dict) -> str:
    """The committed text of a schema: sorted keys, two-space indent, trailing newline.

    >>> schema_text({"b": 1, "a": [1]})
    '{\\n  "a": [\\n    1\\n  ],\\n  "b": 1\\n}\\n'
    """
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
