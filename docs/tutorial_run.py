"""Run docs/tutorial.md as written and rewrite what it shows: its printed blocks and its pictures.

Usage::

    python docs/tutorial_run.py            # rewrite the printed blocks of docs/tutorial.md and docs/tutorial_*.png
    python docs/tutorial_run.py --check    # change nothing; exit 1 naming every stale block and false claim

Every ```bash block of the tutorial runs, in order, in one fresh folder holding a copy of
``examples/`` (the tutorial runs from a checkout's root), with this interpreter's ``graphflow`` and
``python`` first on PATH and OpenBLAS on the kernels the tutorial names (:data:`BLAS_KERNEL`). A ```text block that follows a bash block (nothing but blank lines
between) shows what that block prints on stdout, all of it; a bash block without one prints
nothing worth showing (the tutorial sends it to ``/dev/null``, or it is not compared).

A printed block is current when it matches the output token by token: text and integers exactly,
decimal numbers to :data:`RELATIVE` of their size or one unit of their last printed digit,
whichever is looser (``0.0340`` matches ``0.03404`` and ``0.0341``, not ``0.0343``).

The prose makes claims about those numbers ("the updates are negative at every step"). Each is
listed in :data:`CLAIMS` with the sentence it checks, which must appear in the tutorial word for
word (so a sentence cannot change without its check), and a test of the numbers printed now.
``tests/inspect/test_tutorial.py`` runs the tutorial once and asserts that every printed block is
current, every claim holds and every picture was produced.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
REGENERATE = "python docs/tutorial_run.py"
RELATIVE = 1e-3
"""Relative precision to which a printed decimal number must match (or one unit of its last digit)."""
NOT_PRODUCED = {"explorer.png"}
"""Pictures the tutorial shows without making them (the explorer's screenshot: tests/viz/test_explorer.py)."""
BLOCK_TIMEOUT_S = 600
BLAS_KERNEL = {"OPENBLAS_CORETYPE": "Haswell"}
"""The BLAS kernels the tutorial's numbers were printed with, set for every block. 100 meta-steps
turn the last-digit differences of two kernels' float32 matrix products into another protocol, so
without it an AVX-512 CPU (where OpenBLAS picks its SkylakeX kernels) prints other numbers."""

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", flags=re.S | re.M)
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
PICTURE = re.compile(r"!\[[^\]]*\]\(([^)]+\.png)\)")


# ----------------------------------------------------------------------------------------------
# Reading the tutorial


@dataclass(frozen=True)
class Command:
    """One ```bash block and the ```text block printed under it (None: its output is not shown)."""

    code: str
    shown: str | None
    shown_span: tuple[int, int] | None
    """Where the text block's contents sit in the markdown (to rewrite them)."""


def commands(markdown: str) -> list[Command]:
    """The bash blocks of ``markdown`` in order, each with the text block right under it, if any.

    >>> md = "```bash\\necho 1\\n```\\n\\n```text\\n1\\n```\\nprose\\n```bash\\ntrue\\n```\\n"
    >>> [(c.code, c.shown) for c in commands(md)]
    [('echo 1\\n', '1\\n'), ('true\\n', None)]
    """
    fences = list(FENCE.finditer(markdown))
    found = []
    for k, fence in enumerate(fences):
        if fence.group(1) != "bash":
            continue
        after = fences[k + 1] if k + 1 < len(fences) else None
        if after is not None and after.group(1) == "text" and not markdown[fence.end():after.start()].strip():
            found.append(Command(fence.group(2), after.group(2), after.span(2)))
        else:
            found.append(Command(fence.group(2), None, None))
    return found


def pictures(markdown: str) -> list[str]:
    """The PNG files the tutorial shows that its commands make (names relative to docs/)."""
    return [p for p in PICTURE.findall(markdown) if p not in NOT_PRODUCED]


# ----------------------------------------------------------------------------------------------
# Comparing a printed block with what the command prints now


def _unit_of_last_digit(token: str) -> float:
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _is_integer(token: str) -> bool:
    return "." not in token and "e" not in token.lower()


def numbers_match(shown: str, printed: str, relative: float = RELATIVE) -> bool:
    """Whether the number ``printed`` now is the number ``shown`` to the tutorial's precision.

    >>> numbers_match("0.0340", "0.0341"), numbers_match("0.0340", "0.0343"), numbers_match("45", "46")
    (True, False, False)
    >>> numbers_match("-2.852e-04", "-2.853e-04"), numbers_match("0.651", "-0.651")
    (True, False)
    """
    if _is_integer(shown) or _is_integer(printed):
        return shown.lstrip("+") == printed.lstrip("+")
    a, b = float(shown), float(printed)
    return abs(a - b) <= max(relative * max(abs(a), abs(b)), _unit_of_last_digit(shown) * (1 + 1e-9))


def _tokens(text: str) -> list[tuple[str, bool]]:
    """``text`` as (token, is_number) pairs: numbers, and the runs of other text between them with
    their whitespace collapsed (so a column that widens by one space still matches)."""
    out, at = [], 0
    for m in NUMBER.finditer(text):
        between = " ".join(text[at:m.start()].split())
        if between:
            out.append((between, False))
        out.append((m.group(0), True))
        at = m.end()
    rest = " ".join(text[at:].split())
    if rest:
        out.append((rest, False))
    return out


def block_differences(shown: str, printed: str, relative: float = RELATIVE) -> list[str]:
    """The lines of ``shown`` that do not match ``printed`` line for line (empty: the block is current).

    >>> block_differences("loss 0.0340\\n", "loss 0.0341\\n"), block_differences("a 1\\n", "a 1\\nb 2\\n")
    ([], ['line 2: the tutorial shows nothing, the command prints: b 2'])
    >>> block_differences("corr 0.651\\n", "corr -0.756\\n")
    ["line 1: the tutorial shows 'corr 0.651', the command prints 'corr -0.756'"]
    """
    want, got = shown.rstrip("\n").split("\n"), printed.rstrip("\n").split("\n")
    problems = []
    for n in range(max(len(want), len(got))):
        if n >= len(want):
            problems.append(f"line {n + 1}: the tutorial shows nothing, the command prints: {got[n]}")
            continue
        if n >= len(got):
            problems.append(f"line {n + 1}: the tutorial shows {want[n]!r}, the command prints nothing more")
            continue
        a, b = _tokens(want[n]), _tokens(got[n])
        same = len(a) == len(b) and all(
            na == nb and (numbers_match(ta, tb, relative) if na else ta == tb) for (ta, na), (tb, nb) in zip(a, b))
        if not same:
            problems.append(f"line {n + 1}: the tutorial shows {want[n].strip()!r}, the command prints {got[n].strip()!r}")
    return problems


# ----------------------------------------------------------------------------------------------
# Running it


@dataclass
class Outcome:
    """What one run of the tutorial printed and made."""

    markdown: str
    folder: Path
    commands: list[Command]
    printed: list[str]
    """The stdout of every bash block, in order."""

    def output_of(self, fragment: str) -> str:
        """What the (first) bash block containing ``fragment`` printed."""
        for command, out in zip(self.commands, self.printed):
            if fragment in command.code:
                return out
        raise KeyError(f"no bash block of the tutorial contains {fragment!r}")


def check_blas_kernel(env: dict) -> None:
    """Raise unless numpy's BLAS, started with ``env``, runs the kernels of :data:`BLAS_KERNEL`."""
    code = "from graphflow.backend import get_blas_kernel; print(get_blas_kernel())"
    kernel = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            check=True).stdout.strip()
    wanted = BLAS_KERNEL["OPENBLAS_CORETYPE"]
    if kernel != wanted:
        raise RuntimeError(f"the tutorial's numbers were printed with OpenBLAS's {wanted} kernels; under "
                           f"OPENBLAS_CORETYPE={wanted} numpy's BLAS here runs {kernel!r} (it needs numpy's "
                           "OpenBLAS on an x86-64 CPU with AVX2)")


def run_tutorial(folder: Path, markdown: str | None = None) -> Outcome:
    """Run every bash block of the tutorial in ``folder`` (which it fills), in order."""
    markdown = TUTORIAL.read_text() if markdown is None else markdown
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "examples", folder / "examples", dirs_exist_ok=True)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               MPLBACKEND="Agg", COLUMNS="100")
    env.pop("GRAPHFLOW_UPDATE_DOCS", None)
    env.update(BLAS_KERNEL)
    check_blas_kernel(env)
    found, printed = commands(markdown), []
    for k, command in enumerate(found):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command.code], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"bash block {k + 1} of the tutorial failed (exit {done.returncode}):\n{command.code}\n"
                               f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
        printed.append(done.stdout)
    return Outcome(markdown, folder, found, printed)


def stale_blocks(outcome: Outcome) -> list[str]:
    """One message per printed block of the tutorial that differs from what its command printed."""
    stale = []
    for k, (command, out) in enumerate(zip(outcome.commands, outcome.printed)):
        if command.shown is None:
            continue
        problems = block_differences(command.shown, out)
        if problems:
            first = command.code.strip().splitlines()[0]
            stale.append(f"the output of bash block {k + 1} ({first}):\n  " + "\n  ".join(problems))
    return stale


def rewritten(outcome: Outcome) -> str:
    """The tutorial with every printed block replaced by what its command printed."""
    text, shift = outcome.markdown, 0
    for command, out in zip(outcome.commands, outcome.printed):
        if command.shown_span is None:
            continue
        start, end = command.shown_span
        new = out.rstrip("\n") + "\n"
        text = text[:start + shift] + new + text[end + shift:]
        shift += len(new) - (end - start)
    return text


def missing_pictures(outcome: Outcome) -> list[str]:
    """The pictures the tutorial shows that its commands did not make, or that docs/ lacks."""
    missing = []
    for name in pictures(outcome.markdown):
        made = outcome.folder / name
        if not made.is_file() or made.read_bytes()[:4] != b"\x89PNG":
            missing.append(f"{name}: the tutorial shows it, its commands did not make it")
        elif not (ROOT / "docs" / name).is_file():
            missing.append(f"docs/{name} is not committed ({REGENERATE} writes it)")
    return missing


# ----------------------------------------------------------------------------------------------
# The prose's claims about the printed numbers


def table(text: str, first_column: str = "step") -> list[list[str]]:
    """The rows of the first table in ``text`` whose header starts with ``first_column``, as cells
    (``±`` and its spread dropped).

    >>> table("x\\nstep  a  b\\n   0  1.5 ± 0.1  2\\n   1  3  4\\n\\nlater")
    [['0', '1.5', '2'], ['1', '3', '4']]
    """
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.split()[:1] == [first_column])
    rows = []
    for line in lines[start + 1:]:
        if not line.strip() or not line.split()[0].isdigit():
            break
        rows.append(re.sub(r"±\s*\S+", "", line).split())
    return rows


def column(rows: list[list[str]], k: int) -> list[float]:
    return [float(r[k]) for r in rows]


def _inner_losses(o: Outcome) -> list[float]:
    line = next(x for x in o.output_of("--nodes 'dense2/w[3,0]'").splitlines() if x.startswith("loss per step"))
    return [float(v) for v in re.findall(r"\d+: (\S+)", line)]


def _eval_protocol_then_adam(o: Outcome) -> bool:
    rows = table(o.output_of("graphflow eval"))
    mplp, adam = column(rows, 1), column(rows, 2)
    stalls = abs(mplp[5] - mplp[3]) <= 0.1 * (mplp[0] - mplp[3])
    return mplp[2] < mplp[0] and mplp[1] < adam[1] and mplp[2] < adam[2] and stalls and adam[5] < min(mplp[5], adam[3])


def _inner_loss_down_then_up(o: Outcome) -> bool:
    loss = _inner_losses(o)
    return loss[0] > loss[1] > loss[2] < loss[3] < loss[4]


def _weight_columns(o: Outcome) -> tuple[list[float], list[float]]:
    """The update and -gradient columns of the one weight's table."""
    rows = table(o.output_of("--nodes 'dense2/w[3,0]'"))
    return column(rows, 4), column(rows, 5)


def _update_negative_and_larger(o: Outcome) -> bool:
    update, minus_gradient = _weight_columns(o)
    return max(update) < 0 and all(abs(u) > 3 * abs(g) for u, g in zip(update, minus_gradient))


def _update_steady_then_half(o: Outcome) -> bool:
    update = [abs(u) for u in _weight_columns(o)[0]]
    return max(update[:4]) - min(update[:4]) < 0.1 * min(update[:4]) and update[4] < 0.5 * min(update[:4])


def _output_layer_moves_more(o: Outcome) -> bool:
    printed = o.output_of("part_summary")
    sizes = {m.group(1): [float(v) for v in m.group(2).split()] for m in re.finditer(r"^(\S+/\S+)\s+(.*)$", printed, re.M)}
    return all(a > 100 * b for a, b in zip(sizes["dense2/w"], sizes["dense0/w"], strict=True))


def _updates_against_then_with_gradient(o: Outcome) -> bool:
    corr = column(table(o.output_of("message_vs_gradient")), 1)
    return corr[0] < 0 and corr[1] < 0 and min(corr[2:]) > 0


def _best_channel_changes_and_fades(o: Outcome) -> bool:
    rows = table(o.output_of("message_vs_gradient"))
    best = [abs(float(r[4])) for r in rows]
    return len({r[3] for r in rows}) > 1 and min(best[:3]) >= 0.7 and max(best[3:]) < 0.7


def _output_weights_shrink(o: Outcome) -> bool:
    from graphflow.inspect import load_run

    update = load_run(o.folder / "tiny.run.npz").nodes_field(
        [f"dense2/w[{i},0]" for i in range(8)], "update").values
    return float((update < 0).mean()) >= 0.9


@dataclass(frozen=True)
class Claim:
    """A sentence of the tutorial and a test of it against what the tutorial printed."""

    sentence: str
    holds: Callable[[Outcome], bool]


CLAIMS = (
    Claim("After 100 meta-steps the protocol lowers the evaluation loss a little in its first two steps, "
          "faster than Adam, and then stalls; Adam keeps going and is ahead by step 5.", _eval_protocol_then_adam),
    Claim("it falls for two steps and rises again at steps 3 and 4", _inner_loss_down_then_up),
    Claim("The update is negative at every step and, at each step, several times larger than the gradient",
          _update_negative_and_larger),
    Claim("about the same at steps 0–3, then less than half of that at step 4", _update_steady_then_half),
    Claim("At every step the output layer's weights moved more than 100 times as far as the first layer's.",
          _output_layer_moves_more),
    Claim("The learned updates of the eight weights correlate with −gradient negatively at steps 0 and 1 "
          "and positively at steps 2 to 4", _updates_against_then_with_gradient),
    Claim("the message channel that correlates best with the gradient is another one from one step to the "
          "next, and correlates strongly (|r| ≥ 0.7) at steps 0 to 2 only", _best_channel_changes_and_fades),
    Claim("learner does not turn into gradient-like updates: it mostly shrinks the output weights.",
          _output_weights_shrink),
)
"""The sentences of the tutorial that state something of its printed numbers, each with its test."""


def false_claims(outcome: Outcome) -> list[str]:
    """The claims of :data:`CLAIMS` that the tutorial no longer makes word for word, or that no longer hold."""
    prose = " ".join(outcome.markdown.split())
    problems = []
    for claim in CLAIMS:
        if " ".join(claim.sentence.split()) not in prose:
            problems.append(f"the tutorial no longer says {claim.sentence!r} (update CLAIMS in docs/tutorial_run.py)")
        elif not claim.holds(outcome):
            problems.append(f"false now: {claim.sentence!r}")
    return problems


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the tutorial is stale")
    parser.add_argument("--keep", type=Path, help="run in this new or empty folder (kept) instead of a temporary one")
    args = parser.parse_args(argv)
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: the folder is not empty (the tutorial starts from a fresh folder)")
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_tutorial(args.keep or Path(tmp))
        if not args.check:
            TUTORIAL.write_text(rewritten(outcome))
            for name in pictures(outcome.markdown):
                if (outcome.folder / name).is_file():
                    shutil.copyfile(outcome.folder / name, ROOT / "docs" / name)
            outcome.markdown = TUTORIAL.read_text()
            print(f"rewrote {TUTORIAL.relative_to(ROOT)} and {len(pictures(outcome.markdown))} pictures in docs/")
        problems = ([] if not args.check else stale_blocks(outcome)) + missing_pictures(outcome) + false_claims(outcome)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
