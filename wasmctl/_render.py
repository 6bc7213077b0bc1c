"""Indented JSON written as it is produced, byte for byte what `json.dumps(value, indent=2,
ensure_ascii=False)` writes, for reports with hundreds of thousands of entries.

`json.dumps` with an indent runs the pure-Python encoder and joins every piece into one
string (a scan of 200,000 imports took a gigabyte that way). Here lists may be lazy
iterables, each flat object (no nested list or object, the shape of every report row) is
encoded in one call of the C encoder, and pieces are gathered into chunks of about
`CHUNK` characters, so memory holds one chunk and whatever the caller keeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from typing import Any

CHUNK = 1 << 16
INDENT = "  "
_SCALAR = (str, int, float, bool, type(None))


def iter_json(value: Any) -> Iterator[str]:
    """`json.dumps(value, indent=2, ensure_ascii=False)` in chunks; lists may be any
    iterable (a generator is consumed once)."""
    pending: list[str] = []
    size = 0
    for piece in _encode(value, 0):
        pending.append(piece)
        size += len(piece)
        if size >= CHUNK:
            yield "".join(pending)
            pending.clear()
            size = 0
    if pending:
        yield "".join(pending)


_scalar = json.JSONEncoder(ensure_ascii=False).encode


@cache
def _flat_encoder(level: int) -> Callable[[Any], str]:
    """The C encoder writing an object's items with the indented form's separator."""
    inner = "\n" + INDENT * (level + 1)
    return json.JSONEncoder(ensure_ascii=False, separators=("," + inner, ": ")).encode


def _encode(value: Any, level: int) -> Iterator[str]:
    if isinstance(value, _SCALAR):
        yield _scalar(value)
    elif isinstance(value, Mapping):
        yield from _encode_object(value, level)
    elif isinstance(value, Iterable):
        yield from _encode_array(value, level)
    else:
        yield _scalar(value)  # raises TypeError, as json.dumps would


def _encode_object(value: Mapping[str, Any], level: int) -> Iterator[str]:
    if not value:
        yield "{}"
        return
    inner = "\n" + INDENT * (level + 1)
    if all(isinstance(v, _SCALAR) for v in value.values()):
        # One C-encoder call: with `inner` as the item separator it writes exactly the
        # indented form between the braces (JSON strings hold no raw newline).
        flat = _flat_encoder(level)(value)
        yield "{" + inner + flat[1:-1] + "\n" + INDENT * level + "}"
        return
    yield "{"
    first = True
    for key, item in value.items():
        yield (inner if first else "," + inner) + _scalar(str(key)) + ": "
        first = False
        yield from _encode(item, level + 1)
    yield "\n" + INDENT * level + "}"


def _encode_array(value: Iterable[Any], level: int) -> Iterator[str]:
    inner = "\n" + INDENT * (level + 1)
    first = True
    for item in value:
        yield "[" + inner if first else "," + inner
        first = False
        yield from _encode(item, level + 1)
    yield "[]" if first else "\n" + INDENT * level + "]"


def aligned_lines(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> Iterator[str]:
    """Rows as plain text columns padded to their widest cell, two spaces apart: the form
    of a table too long for rich, which lays out every row before it writes one."""
    materialised = [header, *rows]
    widths = [max(len(row[i]) for row in materialised) for i in range(len(header))]
    for row in materialised:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
