"""`wasmctl scan`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wasmctl.cli._common import ScanFormat, info, terminal_width, use_color, write_output
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options

PRESET_NAMES = ("pure-compute", "no-network", "wasi-p1-strict", "wasi-p2-proxy", "proxy-wasm",
                "opa")  # fmt: skip
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
            help=f"A built-in policy: {', '.join(PRESET_NAMES)}; repeatable.",
            autocompletion=lambda: list(PRESET_NAMES),
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
        ScanFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ScanFormat.TABLE,
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
    from wasmctl.scan import AUDIT, Verdict, load_policy_file, load_preset, scan_paths
    from wasmctl.scan.report import ReportFormat, render_chunks

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
    options = registry_options(plain_http, ca_file) if remote else None
    report = scan_paths(targets, policies, options)
    chunks = render_chunks(
        report,
        ReportFormat(fmt.value),
        color=use_color() and output is None,
        width=terminal_width(),
    )
    write_output(chunks, output)
    if output is not None:
        info(f"{report.verdict}: report written to {output}")
    if report.verdict is Verdict.DENY:
        raise typer.Exit(1)
    if report.remote_failure:
        raise typer.Exit(3)
    if report.verdict is Verdict.ERROR:
        raise typer.Exit(2)
