"""The `wasmctl` command line: thin typer commands over the library.

`main()` is the only place where exceptions become messages and exit codes (DESIGN.md §1):
0 success, 1 denied, 2 bad input, 3 registry or network, 4 a bug.

A run builds only the command it runs: `COMMANDS` says where each one is defined, and its
module is imported, and its signature turned into click parameters, when it is first asked
for. Doing that for every command took most of the time of `wasmctl --version` (issue 15).
Heavy imports happen inside the commands, so a command's `--help` stays fast too.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Annotated, Any, NamedTuple, NoReturn

import typer
import typer.main
from typer import _click as click

from wasmctl import __version__
from wasmctl.cli._common import SETTINGS
from wasmctl.cli._help import HelpCommand, HelpGroup


class Entry(NamedTuple):
    """Where a command is defined: its module in `wasmctl.cli`, and the names there of the
    function typer makes it from, of its examples (the epilog), and of its own command class
    if it has one (`HelpCommand` otherwise)."""

    module: str
    function: str
    epilog: str = "EXAMPLES"
    cls: str | None = None


# The top-level commands, in the order `wasmctl --help` lists them.
COMMANDS: dict[str, Entry] = {
    "inspect": Entry("inspect", "inspect"),
    "build": Entry("build", "build"),
    "push": Entry("registry", "push", "PUSH_EXAMPLES"),
    "pull": Entry("registry", "pull", "PULL_EXAMPLES"),
    "copy": Entry("registry", "copy_cmd", "COPY_EXAMPLES"),
    "tag": Entry("registry", "tag_cmd", "TAG_EXAMPLES"),
    "login": Entry("registry", "login", "LOGIN_EXAMPLES"),
    "logout": Entry("registry", "logout", "LOGIN_EXAMPLES"),
    "scan": Entry("scan", "scan"),
    "sbom": Entry("sbom", "sbom", cls="SbomCommand"),
    "gate": Entry("gate", "gate"),
    "audit": Entry("audit", "audit"),
    "generate-key-pair": Entry("sign", "generate_key_pair", "KEYPAIR_EXAMPLES"),
    "sign": Entry("sign", "sign", "SIGN_EXAMPLES"),
    "attest": Entry("attest", "attest"),
    "verify": Entry("sign", "verify", "VERIFY_EXAMPLES"),
}
_GATE_SERVE = Entry("serve", "serve")


class _Commands(HelpGroup):
    """The top-level group: its commands are built from `COMMANDS` one at a time, when
    asked for. Also `gate serve` and `audit db update`: more words under `gate` and
    `audit`, which themselves take targets (a file named `serve` is still gated as
    `./serve`, a directory named `db` audited as `./db`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _OnDemand(self.commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # typer's reads `commands.items()`: would build them all

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args[:2] == ["gate", "serve"]:
            return "gate serve", _build("serve", _GATE_SERVE), args[2:]
        if args[:2] == ["audit", "db"]:
            return "audit db", _db_group(), args[2:]
        return super().resolve_command(ctx, args)


class _OnDemand(MutableMapping[str, click.Command]):
    """The group's commands by name: those of `COMMANDS`, each built the first time it is
    looked up, and any added to the group as they are."""

    def __init__(self, added: Mapping[str, click.Command]) -> None:
        self._commands: dict[str, click.Command | None] = {**dict.fromkeys(COMMANDS), **added}

    def __getitem__(self, name: str) -> click.Command:
        command = self._commands[name]
        if command is None:
            command = self._commands[name] = _build(name, COMMANDS[name])
        return command

    def __contains__(self, name: object) -> bool:  # without building it
        return name in self._commands

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)


def _build(name: str, entry: Entry) -> click.Command:
    """Import the command's module and make that one command, through a typer app of its own."""
    module = importlib.import_module(f"wasmctl.cli.{entry.module}")
    one_app = typer.Typer(
        add_completion=False, context_settings={"help_option_names": ["-h", "--help"]}
    )
    one_app.command(
        name,
        cls=getattr(module, entry.cls) if entry.cls else HelpCommand,
        epilog=getattr(module, entry.epilog),
    )(getattr(module, entry.function))
    return typer.main.get_command(one_app)


def _db_group() -> click.Command:
    from wasmctl.cli import audit

    db_app = typer.Typer(
        name="db",
        cls=HelpGroup,
        help="The offline OSV database `audit` matches against.",
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    db_app.command("update", cls=HelpCommand, epilog=audit.DB_EXAMPLES)(audit.db_update)
    db_app.callback()(lambda: None)  # a group, even with one command
    return typer.main.get_command(db_app)


EXAMPLES = """
Examples:

  wasmctl scan --preset no-network dist/
  wasmctl build app.wasm -t ghcr.io/acme/app:v1
  wasmctl sign ghcr.io/acme/app:v1
  wasmctl sbom ghcr.io/acme/app:v1 --attest
  wasmctl gate --policy gate.yaml k8s/
  wasmctl gate serve --policy gate.yaml --tls-cert tls.crt --tls-key tls.key
  wasmctl audit db update && wasmctl audit --fail-on high ghcr.io/acme/app:v1

Exit codes: 0 ok, 1 denied, 2 bad input, 3 registry or network, 4 a bug.
"""

# The group and its global options. No command is registered on it (`COMMANDS` lists them):
# `typer.main.get_command(app)` is a `_Commands`, which builds each when it is looked up.
app = typer.Typer(
    cls=_Commands,
    name="wasmctl",
    help="Supply-chain toolkit for WebAssembly on OCI registries: inspect, scan, build, "
    "push and pull, sign and verify, SBOMs, known vulnerabilities, and the pre-deploy gate.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"wasmctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def _global(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and more detail.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only data and errors.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour (also: NO_COLOR=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    SETTINGS.verbose = verbose
    SETTINGS.quiet = quiet
    SETTINGS.no_color = no_color


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code instead of exiting."""
    from wasmctl.cli._signals import EXIT_CODE as TERMINATED
    from wasmctl.cli._signals import Terminated
    from wasmctl.errors import ExitCode, WasmctlError

    if sys.stdout is None:  # started with stdout closed (`>&-`): fail only if it is used
        sys.stdout = _ClosedOutput()
    try:
        result = app(
            args=list(argv) if argv is not None else None,
            prog_name="wasmctl",
            standalone_mode=False,
        )
    except typer.Abort:
        sys.stderr.write("Aborted.\n")
        return 130
    except typer.TyperException as e:  # typer's (vendored click's) usage errors
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"error: {e}\n")
        return ExitCode.INPUT
    except WasmctlError as e:
        _report_error(e.diagnostics(), e)
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except Terminated:  # SIGTERM, unwound like Ctrl-C (cli/_signals.py)
        sys.stderr.write("Terminated.\n")
        return TERMINATED
    except SystemExit as e:
        # In non-standalone mode click exits by itself only on a broken stdout pipe (EPIPE),
        # with status 1, which would read as "denied".
        return ExitCode.OK if e.code in (0, None) else _output_pipe_closed()
    except BrokenPipeError:
        return _output_pipe_closed()
    except Exception as e:  # the last line of defence: a bug must not look like "denied"
        _report_error(
            f"internal error: {type(e).__name__}: {e}\nThis is a bug in wasmctl; please "
            "report it with the command you ran (add --verbose for the traceback).",
            e,
        )
        return ExitCode.INTERNAL
    return result if isinstance(result, int) else ExitCode.OK


def _report_error(text: str, error: BaseException) -> None:
    if SETTINGS.verbose:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    sys.stderr.write(f"error: {text}\n")


class _ClosedOutput(io.TextIOBase):
    """Stands for a closed stdout: writing to it is an input error (exit 2), not a crash."""

    def write(self, text: str) -> int:
        from wasmctl.errors import InputError

        raise InputError(
            "standard output is closed",
            hint="redirect it (> FILE, or > /dev/null), or give -o FILE",
        )

    def isatty(self) -> bool:
        return False


def _output_pipe_closed() -> int:
    """The reader went away (`| head`): what was asked for was not all written, and a
    verdict must never read as success, so this is exit 2, neither 0 nor 1."""
    _silence_stdout()
    sys.stderr.write("error: the output pipe closed before everything was written\n")
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script."""
    from wasmctl.cli._signals import install_sigterm_handler

    install_sigterm_handler()
    code = run(argv)
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            code = _output_pipe_closed() if code == 0 else code
    sys.exit(code)
