"""`wasmctl inspect`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from wasmctl.cli._common import terminal_width, use_color, write_output
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options
from wasmctl.inspect import InspectFormat

EXAMPLES = """
Examples:

  wasmctl inspect app.wasm

  wasmctl inspect --format json component.wasm | jq '.imports[].module'

  wasmctl inspect oci:out:v1

  wasmctl inspect oci:cosign-saved@sha256:…

  wasmctl inspect ghcr.io/acme/app:v1
"""


def inspect(
    target: Annotated[
        str,
        typer.Argument(
            help="A .wasm module or component, or an artifact: oci:DIR[:TAG|@DIGEST], "
            "oci-archive:FILE[:TAG].",
            metavar="TARGET",
        ),
    ],
    fmt: Annotated[
        InspectFormat, typer.Option("--format", "-f", help="Output format.")
    ] = InspectFormat.TABLE,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
) -> None:
    """Show a module's imports with their capability, exports, custom sections, nesting.

    For a component, every nested core module and component is shown too. For an artifact:
    its format (wasm, compat, wasm-to-oci, spin, wasmcloud-legacy ...), manifest, config,
    layers, referrers and signatures. Any other image or index is shown as what it is (not
    a Wasm artifact), with its platforms and the signatures a `cosign save` layout keeps.
    """
    from wasmctl.inspect import describe_file, table
    from wasmctl.oci.reference import looks_like_reference

    if looks_like_reference(target):
        from wasmctl.inspect.artifact import inspect_reference
        from wasmctl.oci.reference import parse_reference

        info = inspect_reference(parse_reference(target), registry_options(plain_http, ca_file))
        render = table.render_artifact_table
    else:
        info = describe_file(target)
        render = table.render_module_table
    if fmt is InspectFormat.JSON:
        from wasmctl._render import iter_json

        # Written as it is encoded: 200,000 imports are 22 MB of JSON.
        write_output(_lines(iter_json(info)), output)
    else:
        text = render(info, color=use_color() and output is None, width=terminal_width())
        write_output(text, output)


def _lines(chunks: Iterator[str]) -> Iterator[str]:
    yield from chunks
    yield "\n"
