"""What the command line prints on bad input, checked one way in every test: one ``error:`` line
(indented detail lines may follow it), no traceback."""

from __future__ import annotations


def one_error_line(err: str, out: str = "") -> str:
    """The one ``error:`` line of stderr ``err`` (``out``: stdout, which must hold no traceback either)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: ") and "Traceback" not in err + out, err
    assert sum(line.startswith("error:") for line in lines) == 1 and all(line.startswith("  ") for line in lines[1:]), err
    return lines[0]
