"""docs/tutorial.md stays true: its commands run as written, print what it shows, and its claims hold.

The tutorial is run by ``docs/tutorial_run.py`` (which also rewrites it: ``python
docs/tutorial_run.py``), once, in a temporary folder; nothing is written into docs/.
"""

from __future__ import annotations

import doctest
import importlib.util
import platform
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("tutorial_run", ROOT / "docs" / "tutorial_run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tutorial_run = _load_script()


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the tutorial's numbers are OpenBLAS's Haswell kernels', an x86-64 CPU's")
    return tutorial_run.run_tutorial(tmp_path_factory.mktemp("tutorial"))


def test_every_printed_block_is_what_its_command_prints_now(outcome):
    shown = [c for c in outcome.commands if c.shown is not None]
    text_blocks = re.findall(r"^```text$", outcome.markdown, flags=re.M)
    assert len(shown) == len(text_blocks) >= 7, "every text block of the tutorial must sit right under a bash block"
    stale = tutorial_run.stale_blocks(outcome)
    assert not stale, "\n".join(stale) + f"\n(rerun {tutorial_run.REGENERATE})"


def test_every_claim_of_the_prose_holds(outcome):
    assert len(tutorial_run.CLAIMS) >= 6
    false = tutorial_run.false_claims(outcome)
    assert not false, "\n".join(false)


def test_every_picture_is_made_by_the_tutorial_and_committed(outcome):
    assert len(tutorial_run.pictures(outcome.markdown)) >= 8
    missing = tutorial_run.missing_pictures(outcome)
    assert not missing, "\n".join(missing)
    assert (outcome.folder / "tiny.html").read_text().startswith("<!DOCTYPE html>")
    assert (outcome.folder / "runs" / "tiny" / "checkpoint.npz").exists()
    assert (ROOT / "docs" / "explorer.png").exists()  # shown, made by tests/viz/test_explorer.py


def test_a_stale_number_or_a_stale_sentence_is_caught(outcome):
    command = next(c for c in outcome.commands if c.shown and "message_vs_gradient" in c.code)
    printed = outcome.printed[outcome.commands.index(command)]
    first_corr = re.search(r"^\s+0\s+(\S+)", printed, flags=re.M).group(1)
    flipped = printed.replace(f" {first_corr} ", f" {-float(first_corr):.3f} ", 1)
    assert tutorial_run.block_differences(printed, printed) == []
    assert tutorial_run.block_differences(flipped, printed) and tutorial_run.block_differences(printed + "x\n", printed)
    edited = tutorial_run.Outcome(outcome.markdown.replace("negatively at steps 0 and 1", "at steps 0 and 1"),
                                  outcome.folder, outcome.commands, outcome.printed)
    assert any("no longer says" in p for p in tutorial_run.false_claims(edited))


def test_the_script_rewrites_exactly_the_printed_blocks(outcome):
    blank = re.sub(r"(^```text\n).*?(^```$)", r"\1\2", outcome.markdown, flags=re.S | re.M)
    emptied = tutorial_run.Outcome(blank, outcome.folder, tutorial_run.commands(blank), outcome.printed)
    assert tutorial_run.rewritten(emptied) == tutorial_run.rewritten(outcome)
    assert tutorial_run.stale_blocks(tutorial_run.Outcome(
        tutorial_run.rewritten(outcome), outcome.folder, tutorial_run.commands(tutorial_run.rewritten(outcome)),
        outcome.printed)) == []


def test_the_script_examples():
    failures, tried = doctest.testmod(tutorial_run)
    assert tried >= 5 and failures == 0


def test_the_tutorial_shows_the_experiment_it_runs():
    markdown = tutorial_run.TUTORIAL.read_text()
    assert "examples/tiny_sinusoid.json" in markdown and (ROOT / "examples" / "tiny_sinusoid.json").exists()


def test_the_tutorial_names_the_blas_kernels_it_is_printed_with():
    (name, kernel), = tutorial_run.BLAS_KERNEL.items()
    blocks = [c.code.strip() for c in tutorial_run.commands(tutorial_run.TUTORIAL.read_text())]
    assert f"export {name}={kernel}" in blocks
    env = dict(tutorial_run.os.environ, OPENBLAS_CORETYPE="Prescott")  # another x86-64 core type
    if platform.machine() in ("x86_64", "AMD64"):
        with pytest.raises(RuntimeError, match=f"OpenBLAS's {kernel} kernels"):
            tutorial_run.check_blas_kernel(env)
