"""The Python blocks of docs/inspection.md run, in order, in one namespace (in a fresh folder)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "inspection.md"


def test_the_python_blocks_of_the_inspection_page_run(tmp_path, monkeypatch):
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    run = namespace["run"]
    assert (tmp_path / "run.npz").exists() and run.node("relu1/act[3]").recorded.tolist() == [False] * 2 + [True] * 3
