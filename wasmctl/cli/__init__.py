"""The `wasmctl` command line: thin typer commands over the library.

`main()` is the only place where exceptions become messages and exit codes (DESIGN.md §1):
0 success, 1 denied, 2 bad input, 3 registry or network, 4 a bug. Heavy imports happen
inside the commands, so `wasmctl --help` stays fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, NoReturn

import typer
import typer.main
from typer import _click as click

from wasmctl import __version__
from wasmctl.cli import audit as audit_cmd
from wasmctl.cli import build as build_cmd
from wasmctl.cli import gate as gate_cmd
from wasmctl.cli import inspect as inspect_cmd
from wasmctl.cli import registry as registry_cmd
from wasmctl.cli import sbom as sbom_cmd
from wasmctl.cli import scan as scan_cmd
from wasmctl.cli import serve as serve_cmd
from wasmctl.cli import sign as sign_cmd
from wasmctl.cli._common import SETTINGS
from wasmctl.cli._help import HelpCommand, HelpGroup


class _Commands(HelpGroup):
    """The commands, and `gate serve` and `audit db update`: more words under `gate` and
    `audit`, which themselves take targets (a file named `serve` is still gated as
    `./serve`, a directory named `db` audited as `./db`)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args[:2] == ["gate", "serve"]:
            return "gate serve", _subcommand("serve", serve_cmd.serve, serve_cmd.EXAMPLES), args[2:]
        if args[:2] == ["audit", "db"]:
            return "audit db", _db_group(), args[2:]
        return super().resolve_command(ctx, args)


def _db_group() -> click.Command:
    db_app = typer.Typer(
        name="db",
        cls=HelpGroup,
        help="The offline OSV database `audit` matches against.",
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    db_app.command("update", cls=HelpCommand, epilog=audit_cmd.DB_EXAMPLES)(audit_cmd.db_update)
    db_app.callback()(lambda: None)  # a group, even with one command
    return typer.main.get_command(db_app)


def _subcommand(name: str, function: Callable[..., None], epilog: str) -> click.Command:
    sub_app = typer.Typer(
        add_completion=False, context_settings={"help_option_names": ["-h", "--help"]}
    )
    sub_app.command(name, cls=HelpCommand, epilog=epilog)(function)
    return typer.main.get_command(sub_app)


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


def _command(name: str, epilog: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return app.command(name, cls=HelpCommand, epilog=epilog)


_command("inspect", epilog=inspect_cmd.EXAMPLES)(inspect_cmd.inspect)
_command("build", epilog=build_cmd.EXAMPLES)(build_cmd.build)
_command("push", epilog=registry_cmd.PUSH_EXAMPLES)(registry_cmd.push)
_command("pull", epilog=registry_cmd.PULL_EXAMPLES)(registry_cmd.pull)
_command("copy", epilog=registry_cmd.COPY_EXAMPLES)(registry_cmd.copy_cmd)
_command("tag", epilog=registry_cmd.TAG_EXAMPLES)(registry_cmd.tag_cmd)
_command("login", epilog=registry_cmd.LOGIN_EXAMPLES)(registry_cmd.login)
_command("logout", epilog=registry_cmd.LOGIN_EXAMPLES)(registry_cmd.logout)
_command("scan", epilog=scan_cmd.EXAMPLES)(scan_cmd.scan)
app.command("sbom", cls=sbom_cmd.SbomCommand, epilog=sbom_cmd.EXAMPLES)(sbom_cmd.sbom)
_command("gate", epilog=gate_cmd.EXAMPLES)(gate_cmd.gate)
_command("audit", epilog=audit_cmd.EXAMPLES)(audit_cmd.audit)
_command("generate-key-pair", epilog=sign_cmd.KEYPAIR_EXAMPLES)(sign_cmd.generate_key_pair)
_command("sign", epilog=sign_cmd.SIGN_EXAMPLES)(sign_cmd.sign)
_command("verify", epilog=sign_cmd.VERIFY_EXAMPLES)(sign_cmd.verify)


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
