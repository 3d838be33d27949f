"""Write the JSON Schemas of graphflow's specs into ``schemas/`` (or check that they are current).

Usage::

    python schemas/generate.py            # rewrite schemas/*.schema.json
    python schemas/generate.py --check    # exit 1, naming the stale files, if any differ

The schemas come from :func:`graphflow.spec.schemas.json_schemas`; the output is deterministic
(sorted keys, two-space indent, trailing newline), so a diff shows exactly what a model change did.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphflow.spec.schemas import json_schemas, schema_text

SCHEMA_DIR = Path(__file__).resolve().parent


def stale_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the schema files in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, schema in json_schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text() != schema_text(schema):
            stale.append(name)
    return stale


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(schema_text(schema))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schemas are stale")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help=f"schema folder (default: {SCHEMA_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_schemas(args.dir)
        if stale:
            print(f"stale JSON schemas in {args.dir}: {', '.join(stale)}; "
                  "run `python schemas/generate.py` to regenerate them", file=sys.stderr)
            return 1
        print(f"JSON schemas in {args.dir} are up to date")
        return 0
    for path in write_schemas(args.dir):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
