"""The ``graphflow`` command line. Each command group lives in its own module and registers on ``app``.

Bad input exits with status 2 and one clear message, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperCommand, TyperGroup

from graphflow.errors import GraphflowError


def _unwrapped(text: str | None) -> str | None:
    """A docstring's paragraphs one line each (typer prints a docstring's line breaks as they are,
    so that later paragraphs break mid-sentence); a paragraph that starts with ``\\b`` keeps its lines."""
    if not text:
        return text
    import inspect

    return "\n\n".join(par if par.startswith("\b") else " ".join(par.split())
                       for par in inspect.cleandoc(text).split("\n\n"))


class _FlagsWithoutType:
    """Help that writes on/off flags without a type: typer puts ``<bool>`` beside every flag
    (``--json <bool>``), which reads as if the flag took a value. And docstrings unwrapped
    (:func:`_unwrapped`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = _unwrapped(self.help)

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class Command(_FlagsWithoutType, TyperCommand):
    """Every ``graphflow`` command (see :class:`Typer`)."""


class Group(_FlagsWithoutType, TyperGroup):
    """``graphflow`` and its command groups (``graphflow mplp``)."""


class Typer(typer.Typer):
    """A typer app whose commands and groups are :class:`Command` and :class:`Group`."""

    def __init__(self, **kwargs):
        super().__init__(cls=Group, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or Command, **kwargs)


app = Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
            help="graphflow: explicit node graphs that learn by learned message passing (MPLP).")


def _print_version(asked: bool) -> None:
    if asked:
        from graphflow import __version__

        typer.echo(f"graphflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print graphflow's version and exit."),
) -> None:
    """graphflow: explicit node graphs that learn by learned message passing (MPLP)."""
    # A callback keeps ``app`` a command group even while only one command is registered
    # (typer would otherwise run that command without its name: ``graphflow mnist``).


def fail(message: str, code: int = 2) -> None:
    """Print a clear error to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _register() -> None:
    import importlib

    for module in ("graph_cmd", "mplp_cmd", "train_cmd", "export_cmd", "inspect_cmd", "bench_cmd", "sweep_cmd",
                   "metagrad_cmd"):
        try:
            importlib.import_module(f"graphflow.cli.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"graphflow.cli.{module}":
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    from graphflow.backend import keep_freed_memory

    keep_freed_memory()  # the process is ours: keep freed memory for reuse (graphflow.backend)
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    _register()
    try:
        result = app(args=argv, prog_name="graphflow", standalone_mode=False)
    except GraphflowError as err:
        typer.echo(f"error: {err}", err=True)
        return 2
    except typer.Exit as err:
        return err.exit_code
    except SystemExit as err:
        return int(err.code or 0)
    except typer.Abort:
        return 1
    except MemoryError:
        typer.echo("error: out of memory (the graph, the outer batch or the evaluation is too big for this machine)",
                   err=True)
        return 2
    except Exception as err:
        # Usage errors: click's ClickException, or the copy of it that newer typers vendor.
        if callable(getattr(err, "format_message", None)) and isinstance(getattr(err, "exit_code", None), int):
            ctx = getattr(err, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            typer.echo(f"error: {err.format_message()}{hint}", err=True)
            return 2
        raise
    # Without standalone mode, click hands back the code of a ``typer.Exit`` instead of raising it.
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
