"""`wasmctl inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wasmctl.cli._common import TableOrJson, terminal_width, use_color, write_output

EXAMPLES = """
Examples:

  wasmctl inspect app.wasm

  wasmctl inspect --format json component.wasm | jq '.imports[].module'

  wasmctl inspect oci:out:v1
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
        TableOrJson, typer.Option("--format", "-f", help="Output format.")
    ] = TableOrJson.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
) -> None:
    """Show a module's imports with their capability, exports, custom sections, nesting.

    For a component, every nested core module and component is shown too. For an artifact:
    its format (wasm, compat, wasm-to-oci, spin, wasmcloud-legacy ...), manifest, config and
    layers.
    """
    import json

    from wasmctl.inspect import describe_file, table

    if target.startswith(("oci:", "oci-archive:")):
        from wasmctl.inspect.artifact import describe_artifact
        from wasmctl.oci.artifact import open_artifact
        from wasmctl.oci.reference import LayoutReference, parse_reference

        ref = parse_reference(target)
        assert isinstance(ref, LayoutReference)
        with open_artifact(ref) as (_, artifact):
            info = describe_artifact(artifact)
        render = table.render_artifact_table
    else:
        info = describe_file(target)
        render = table.render_module_table
    if fmt is TableOrJson.JSON:
        text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    else:
        text = render(info, color=use_color() and output is None, width=terminal_width())
    write_output(text, output)
