"""The architecture holds: the import contracts of pyproject.toml, and docs/architecture.md names only
code and files that exist (so that a newcomer following it never lands in an empty room)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import graphflow

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
CONTRACTS = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]

BROKEN_TODAY: dict[str, str] = {}
"""Contracts the code breaks today, each with where and why: strict xfails, so that the test says so
on every run and fails as soon as the code is fixed (then delete the entry)."""


def contract_params() -> list:
    return [pytest.param(c["id"], id=c["id"],
                         marks=[pytest.mark.xfail(reason=BROKEN_TODAY[c["id"]], strict=True)] if c["id"] in BROKEN_TODAY else [])
            for c in CONTRACTS]


@pytest.mark.parametrize("contract", contract_params())
def test_import_contracts_hold(contract):
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), str(PYPROJECT), "--contract", contract, "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"lint-imports: contract {contract!r} is broken\n{result.stdout}\n{result.stderr}"


def top_level_parts() -> set[str]:
    """Every module and package right below graphflow (``graphflow.engine``, ``graphflow.backend``, ...)."""
    return {f"graphflow.{m.name}" for m in pkgutil.iter_modules(graphflow.__path__) if not m.name.startswith("_")}


def test_the_lowest_layers_contracts_name_every_other_part():
    """``io`` and ``kernels`` may import only ``errors``, ``errors`` nothing: their contracts list
    every other part, including the ones added later."""
    by_id = {c["id"]: c for c in CONTRACTS}
    parts = top_level_parts()
    assert set(by_id["io-lowest"]["forbidden_modules"]) == parts - {"graphflow.io", "graphflow.errors"}
    assert set(by_id["kernels-lowest"]["forbidden_modules"]) - {"graphflow.kernels"} == \
        parts - {"graphflow.kernels", "graphflow.errors"}
    assert set(by_id["errors-shared"]["forbidden_modules"]) == parts - {"graphflow.errors"}


# ----------------------------------------------------------------------------------------------
# docs/architecture.md


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def dotted_references(text: str) -> list[str]:
    """Every ``graphflow.<...>`` name a code span of the page starts with."""
    return sorted({m.group(1) for span in code_spans(text) if (m := re.match(r"(graphflow(?:\.\w+)+)", span))})


def file_paths(text: str) -> list[str]:
    """Every code span that is a path of this repository (``graphflow/engine/inner.py``, ``docs/graph.md``)."""
    rooted = r"(?:graphflow|tests|docs|schemas|examples|\.ci)/[\w./-]*"
    top = r"[\w.-]+\.(?:py|md|toml|json)"
    return sorted({span for span in code_spans(text) if re.fullmatch(f"{rooted}|{top}", span)})


def resolve(name: str):
    """Import the longest module prefix of ``name``, then look the rest up as attributes."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


def test_architecture_names_only_code_that_exists():
    text = ARCHITECTURE.read_text()
    names = dotted_references(text)
    assert len(names) > 60 and "graphflow.graph.graph.Graph" in names and "graphflow.inspect.run.Run" in names
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name}: {err}")
    assert not missing, "docs/architecture.md names code that does not exist:\n" + "\n".join(missing)


def test_architecture_names_only_files_that_exist():
    paths = file_paths(ARCHITECTURE.read_text())
    assert "graphflow/engine/inner.py" in paths and "pyproject.toml" in paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_architecture_has_a_room_for_every_part():
    """Every module and package below graphflow is on the page, as a path or a dotted name."""
    text = ARCHITECTURE.read_text()
    spans = code_spans(text)
    unmentioned = []
    for part in sorted(top_level_parts()):
        path = part.replace(".", "/")
        if not any(s == part or s.startswith(part + ".") or s.startswith(path + "/") or s == path + ".py" for s in spans):
            unmentioned.append(part)
    assert not unmentioned, f"docs/architecture.md never mentions {unmentioned}"


def test_the_readme_links_the_architecture():
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()


def test_the_checks_find_what_they_look_for():
    text = "`graphflow.spec.graph.StackSpec`, `graphflow graph mnist`, `graphflow.build(spec)`, `dense0/w`, " \
           "`graphflow/engine/inner.py`, `pyproject.toml`, `Graph.dag`"
    assert dotted_references(text) == ["graphflow.build", "graphflow.spec.graph.StackSpec"]
    assert file_paths(text) == ["graphflow/engine/inner.py", "pyproject.toml"]
    assert resolve("graphflow.graph.graph.Graph.select") is graphflow.graph.graph.Graph.select
    with pytest.raises(AttributeError):
        resolve("graphflow.graph.graph.Nope")
