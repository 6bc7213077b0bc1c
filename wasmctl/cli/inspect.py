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
"""


def inspect(
    target: Annotated[str, typer.Argument(help="A .wasm module or component.", metavar="FILE")],
    fmt: Annotated[
        TableOrJson, typer.Option("--format", "-f", help="Output format.")
    ] = TableOrJson.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
) -> None:
    """Show a module's imports with their capability, exports, custom sections, nesting.

    For a component, every nested core module and component is shown too.
    """
    import json

    from wasmctl.inspect import describe_file

    info = describe_file(target)
    if fmt is TableOrJson.JSON:
        text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    else:
        from wasmctl.inspect.table import render_module_table

        text = render_module_table(
            info, color=use_color() and output is None, width=terminal_width()
        )
    write_output(text, output)
