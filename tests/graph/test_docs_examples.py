"""The Python blocks of docs/graph.md run, in order, as one program (the page cannot drift from the code)."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "graph.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def test_docs_graph_md_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                         # pictures the page draws land here
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 6
    namespace: dict = {}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}, python block {k + 1}", "exec"), namespace)
    assert (tmp_path / "tiny.svg").read_text().count("<svg") == 1


def test_docs_pictures_exist():
    text = DOC.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"graph_mnist.png", "freeform_graph.png", "graph_tiny.png", "freeform_graph_matplotlib.png"} <= set(pictures)
    for picture in pictures:
        assert (DOC.parent / picture).read_bytes()[:4] == b"\x89PNG", picture
