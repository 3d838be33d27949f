"""Every command's help reads well: each option and argument says what it is for, flags carry no
``<bool>`` type, docstrings show no raw reST, positionals are written one way; ``--version``."""

from __future__ import annotations

import re

import click
import pytest
import typer

import graphflow
from graphflow.cli import _register, app, main

RAW_REST = re.compile(r"``|:(?:mod|func|class|meth|attr):`")
"""reST that a help text would print as is (``literal``, :mod:`x`)."""
POSITIONAL = re.compile(r"^[A-Z][A-Z_]*(\|[A-Z][A-Z_]*)*$")
"""How positionals are written: upper case, alternatives joined by ``|`` (``CHECKPOINT|RUN_FOLDER``)."""


def commands() -> list[tuple[str, click.Command]]:
    """``(command path, click command)`` of every command and group of ``graphflow``."""
    _register()
    found = []

    def walk(command: click.Command, path: str):
        found.append((path, command))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "graphflow")
    return found


COMMANDS = commands()


def test_every_command_is_walked():
    paths = {path for path, _ in COMMANDS}
    assert {"graphflow", "graphflow train", "graphflow eval", "graphflow demo", "graphflow explore",
            "graphflow mplp replay", "graphflow mplp eval"} <= paths


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_and_argument_has_help(path, command):
    ctx = click.Context(command, info_name=path)
    missing = [param.name for param in command.get_params(ctx) if not (getattr(param, "help", None) or "").strip()]
    assert not missing, f"`{path}`: no help text for {missing}"
    assert (command.help or "").strip(), f"`{path}` has no help text"


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_help_has_no_bool_types_no_raw_rest_and_one_way_of_positionals(path, command, capsys):
    assert main(path.split()[1:] + ["--help"]) == 0
    text = capsys.readouterr().out
    assert "Usage: " + path in " ".join(text.split())
    assert "<bool>" not in text, f"`{path} --help` writes a type beside a flag"
    assert not RAW_REST.search(text), f"`{path} --help` prints raw reST: {RAW_REST.search(text).group()}"
    for param in command.params:
        if isinstance(param, click.Argument):
            assert param.metavar and POSITIONAL.match(param.metavar), \
                f"`{path}`: positional {param.name} is written {param.metavar!r}, not like CHECKPOINT|RUN_FOLDER"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"graphflow {graphflow.__version__}\n"


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_help_loses_no_brackets_to_rich_markup(path, command):
    """Help is rendered as rich markup: an unescaped ``graphflow[ray]`` would print as ``graphflow``."""
    from rich.text import Text

    ctx = click.Context(command, info_name=path)
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.get_params(ctx)]
    for text in texts:
        assert Text.from_markup(text).plain == text.replace("\\[", "["), f"`{path}`: {text!r}"


def test_extras_are_named_in_full_in_the_rendered_help(capsys):
    for args, extra in ((["train"], "graphflow'stensorboardextra"), (["export"], "graphflow[safetensors]")):
        assert main(args + ["--help"]) == 0
        assert extra in "".join(capsys.readouterr().out.replace("│", "").split())


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_docstrings_unwrapped_and_positionals_shown_in_full(path, command, capsys):
    """Paragraphs are one line each (typer would print a docstring's line breaks mid-sentence), and
    each positional is written in full in the arguments table too (not cut to ``RUN_FILE|CHECK…``)."""
    for paragraph in (command.help or "").split("\n\n"):
        assert "\n" not in paragraph or paragraph.startswith("\b"), f"`{path}`: {paragraph!r}"
    assert main(path.split()[1:] + ["--help"]) == 0
    text = capsys.readouterr().out
    for param in command.params:
        if isinstance(param, click.Argument):
            assert text.count(param.metavar) >= 2, f"`{path} --help` cuts {param.metavar} short"
