"""What every command shares: global settings, the terminal, and writing results.

Each output-format enum lives beside its reporters, in the library (`ReportFormat` in
`wasmctl.scan.report`, `VerifyFormat` in `wasmctl.sign.report` ...); commands import them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from wasmctl._files import replace_atomically
from wasmctl.errors import InputError


@dataclass
class Settings:
    """Global options, set by the top-level callback."""

    verbose: bool = False
    quiet: bool = False
    no_color: bool = False


SETTINGS = Settings()


def one_of(values: Iterable[str]) -> str:
    """Choices as help texts and messages name them: `table, json or sarif`."""
    *rest, last = values
    return f"{', '.join(rest)} or {last}" if rest else last


def use_color(stream: object = None) -> bool:
    """Colour only on a terminal, and never with `--no-color` or `NO_COLOR` set."""
    stream = sys.stdout if stream is None else stream
    if SETTINGS.no_color or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width() -> int:
    """The width to render tables at: the terminal's, else `COLUMNS`, else 100."""
    try:
        return max(60, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        pass
    if sys.stdout.isatty():
        return max(60, os.get_terminal_size(sys.stdout.fileno()).columns)
    return 100


def write_output(text: str | Iterable[str], output: Path | None) -> None:
    """Write `text` (a string, or chunks as a report makes them) to stdout (`None` or `-`)
    or to a file, atomically.

    Chunks are written as they come, so a large report never sits in memory whole. A file
    is written beside its destination under a temporary name and renamed into place, so a
    failed run never leaves a partial file. It follows the umask, as a file made by the
    shell's `>` would.
    """
    chunks = (text,) if isinstance(text, str) else text
    if output is None or str(output) == "-":
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    if output.exists() and not output.is_file() and not output.is_dir():
        # /dev/null, a FIFO, /dev/stdout: written as they are, never replaced by a rename
        try:
            with output.open("w", encoding="utf-8") as f:
                f.writelines(chunks)
        except OSError as e:
            raise InputError(f"cannot write {output}: {e.strerror or e}") from None
        return

    def write(f: BinaryIO) -> None:
        for chunk in chunks:
            f.write(chunk.encode("utf-8"))

    replace_atomically(output, write)


def info(message: str) -> None:
    """A diagnostic line on stderr, unless `--quiet`."""
    if not SETTINGS.quiet:
        sys.stderr.write(message + "\n")
