"""The README's commands and code stay true."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})


def test_readme_opens_with_the_demo_and_the_test_command():
    text = README.read_text()
    shells = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert shells[0].strip().endswith("graphflow demo")
    ci = (README.parent / ".ci" / "run").read_text()
    assert shells[1].strip() in ci, "the .ci/run script must call exactly the README's test command"
