"""A rich console that renders into a string, for the table renderers."""

from __future__ import annotations

import io

from rich.console import Console


def string_console(*, color: bool, width: int) -> tuple[Console, io.StringIO]:
    """A console writing to a buffer: fixed width, colour only when asked, no markup guessing."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
    )
    return console, buffer
