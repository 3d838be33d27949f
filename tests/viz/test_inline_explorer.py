"""run.explorer(): the explorer page inline in a notebook cell, as graphflow explore writes it."""

from __future__ import annotations

import html
import re

from graphflow.inspect._example import example_run
from graphflow.viz.explorer import explorer_html, write_explorer


def test_the_inline_explorer_is_the_explorer_page_in_an_iframe(tmp_path):
    run = example_run()
    cell = run.explorer(height=640)._repr_html_()
    match = re.fullmatch(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts" style="width:100%;height:640px;[^"]*"></iframe>',
                         cell)
    assert match, cell[:200]
    assert html.unescape(match.group(1)) == explorer_html(run)
    written = write_explorer(run, tmp_path / "run.html")
    assert written.read_text(encoding="utf-8") == explorer_html(run)
    assert not [p for p in tmp_path.iterdir() if p.name != "run.html"]  # the atomic write left nothing else
