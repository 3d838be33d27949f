"""The README's commands and code stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def _graphflow(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "graphflow.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, MPLBACKEND="Agg"))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _prose() -> str:
    return " ".join(README.read_text().split())


def test_readme_tells_the_demos_story_with_its_seeds(tmp_path):
    """The README's numbers are what ``graphflow demo`` prints, at the seeds the README names."""
    printed = _graphflow("demo", "--plot", str(tmp_path / "demo.png"), cwd=tmp_path)
    trace = {int(row[0]): row[1:] for row in (line.split() for line in printed.splitlines()) if row and row[0].isdigit()}
    summary = re.search(r"over (\d+) fresh tasks \(seed (\d+)\), step-5 eval loss: graphflow (\S+), Adam (\S+) "
                        r"\(step 0: (\S+)\)", printed)
    assert sorted(trace) == [0, 1, 2, 3, 4, 5] and summary, printed
    tasks, seed, final, adam, start = summary.groups()
    told = re.search(r"The demo draws one sine task \(`--seed (\d+)`, the default: the network's eval loss goes from "
                     r"(\S+) to (\S+) in 5 steps, Adam's to (\S+)\), then over (\d+) fresh tasks \(seed (\d+)\) the "
                     r"bundled protocol brings the eval loss from (\S+) to \*\*(\S+)\*\* in 5 steps \(Adam: (\S+)\)",
                     _prose())
    assert told, "the README's paragraph on the demo changed: update this test with it"
    assert told.groups()[1:] == (trace[0][0], trace[5][0], trace[5][1], tasks, seed, start, final, adam), printed
    assert int(seed) == int(told.group(1)) + 1  # the demo ran at its default seed, the one the README names


def test_readme_quotes_graphflow_eval_as_it_prints(tmp_path):
    told = re.search(r"`graphflow eval --tasks (\d+) --seed (\d+)` gives (\S+) to (\S+) \(Adam: (\S+)\)", _prose())
    assert told, "the README's sentence on graphflow eval changed: update this test with it"
    tasks, seed = told.group(1), told.group(2)
    printed = _graphflow("eval", "--tasks", tasks, "--seed", seed, cwd=tmp_path)
    rows = {int(r[0]): r for r in (line.split() for line in printed.splitlines()) if r and r[0].isdigit()}
    header = printed.splitlines()[0].split()
    assert header[1:3] == ["graphflow", "adam"], printed
    # a row reads: step, graphflow mean, ±, std, adam mean, ±, std, ...
    assert (told.group(3), told.group(4), told.group(5)) == (rows[0][1], rows[5][1], rows[5][4]), printed
