"""`wasmctl scan`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wasmctl.cli._common import info, terminal_width, use_color, write_output
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options
from wasmctl.scan.presets import PRESETS
from wasmctl.scan.report import ReportFormat

if TYPE_CHECKING:
    from wasmctl.oci.source import RegistryOptions
    from wasmctl.scan import Policy, ScanReport

EXAMPLES = """
Examples:

  wasmctl scan --preset no-network dist/

  wasmctl scan --preset wasi-p1-strict --allow network.socket server.wasm

  wasmctl scan --policy policy.yaml --format sarif -o wasmctl.sarif .

Exit codes: 0 allowed, 1 denied, 2 malformed or unreadable input, 3 registry unreachable.
"""


def scan(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Files, directories searched for *.wasm, or artifacts (oci:DIR[:TAG], "
            "oci-archive:FILE[:TAG], REGISTRY/REPO[:TAG]) whose Wasm layers are scanned.",
            metavar="TARGET",
        ),
    ],
    policy: Annotated[
        list[Path] | None,
        typer.Option("--policy", "-p", help="A policy file (YAML); repeatable.", metavar="FILE"),
    ] = None,
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help=f"A built-in policy: {', '.join(PRESETS)}; repeatable.",
            autocompletion=lambda: list(PRESETS),
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="RULE",
            help="Also allow a capability (network.socket) or an import "
            "glob (env:proxy_*); overrides the policies.",
        ),
    ] = None,
    deny: Annotated[
        list[str] | None,
        typer.Option("--deny", help="Also deny a capability or an import glob.", metavar="RULE"),
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ReportFormat.TABLE,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
) -> None:
    """Check modules' imports against a policy; every finding is reported.

    With several policies (presets or files) every one must pass. Without any, imports are
    listed by capability and unknown ones warned about.
    """
    from wasmctl.errors import exit_code_for
    from wasmctl.scan import AUDIT, load_policy_file, load_preset
    from wasmctl.scan.report import render_chunks

    policies = [load_preset(name) for name in preset or ()]
    policies += [load_policy_file(p) for p in policy or ()]
    if not policies:
        policies = [AUDIT]
    policies = [p.with_overrides(allow or (), deny or ()) for p in policies]
    # Registry options load httpx and rich's progress bars: only when a target needs them.
    from wasmctl.oci.reference import looks_like_reference

    remote = any(
        looks_like_reference(t) and not t.startswith(("oci:", "oci-archive:")) for t in targets
    )
    report = _scan(targets, policies, registry_options(plain_http, ca_file) if remote else None)
    chunks = render_chunks(
        report,
        fmt,
        color=use_color() and output is None,
        width=terminal_width(),
    )
    write_output(chunks, output)
    if output is not None:
        info(f"{report.verdict}: report written to {output}")
    code = exit_code_for(report.verdict, remote=report.remote_failure)
    if code:
        raise typer.Exit(code)


def _scan(
    targets: list[str], policies: list[Policy], options: RegistryOptions | None
) -> ScanReport:
    """The scan, with artifact references fetched here (`scan` judges files only)."""
    import contextlib

    from wasmctl.oci.reference import looks_like_reference
    from wasmctl.scan import scan_paths

    if not any(looks_like_reference(t) for t in targets):
        return scan_paths(targets, policies)
    from wasmctl.oci.transfer import reference_modules

    with options if options is not None else contextlib.nullcontext():
        return scan_paths(targets, policies, lambda text: reference_modules(text, options))
