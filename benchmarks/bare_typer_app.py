"""A bare typer app shaped like wasmctl's, as the baseline of the `--help` benchmark.

    BARE_TYPER_COMMANDS=2 python benchmarks/bare_typer_app.py --help

(The benchmark script runs it through a generated launcher shaped like pip's console
scripts, calling `main()`, so it starts exactly as the `wasmctl` console script does.)

It has what the `wasmctl` app has at the top level, and nothing else: a `typer.Typer` with a
help text and an epilog, `no_args_is_help`, `-h/--help`, a callback with four global options
(`--verbose`, `--quiet`, `--no-color`, an eager `--version`), and N commands
(`BARE_TYPER_COMMANDS`, default 2; the benchmark script sets it to wasmctl's count), each with
one argument and a couple of options, annotated the way wasmctl's are. It imports only typer
(which brings in click and, for the help screen, rich, exactly as it does for wasmctl), so
the time of `--help` here is the floor any typer CLI with that many commands pays.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="bare",
    help="A bare typer app with as many commands as wasmctl, as a --help baseline.",
    epilog="Examples:  bare cmd0 x  ·  Exit codes: 0 ok, 1 failed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write("bare 0.0.0\n")
        raise typer.Exit()


@app.callback()
def _global(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Less detail.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    del verbose, quiet, no_color, version


def _make_command(index: int) -> Callable[..., None]:
    def command(
        target: Annotated[str, typer.Argument(help="A file.")],
        fmt: Annotated[str, typer.Option("--format", "-f", help="Output format.")] = "table",
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
        ] = None,
    ) -> None:
        sys.stdout.write(f"cmd{index} {target} {fmt} {output}\n")

    command.__doc__ = f"Command number {index}: does nothing but echo its arguments.\n\nMore."
    return command


def _command_count() -> int:
    raw = os.environ.get("BARE_TYPER_COMMANDS", "2")
    try:
        count = int(raw)
    except ValueError:
        sys.exit(f"BARE_TYPER_COMMANDS must be a whole number, not {raw!r}")
    if count < 1:
        sys.exit("BARE_TYPER_COMMANDS must be at least 1")
    return count


for _i in range(_command_count()):
    app.command(f"cmd{_i}", epilog="Examples:\n\n  bare cmd x\n")(_make_command(_i))


def main() -> None:
    """The entry point, as a console script would call it."""
    app()


if __name__ == "__main__":
    main()
