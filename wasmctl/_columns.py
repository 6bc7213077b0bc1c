"""Text columns that fit a width without ever breaking a name (issue 15).

A table piped into `less` or a CI log used to fold a long import name at the 100th column,
so `grep` no longer found it. Here a row that fits is aligned as usual; a prose column
wraps between words; and a name too long for its column is written whole, the rest of its
row moved to the next line, aligned under its own columns (as `--help` lists long option
names). No rich: the lines are (text, style) pieces a caller prints plain or in colour.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence

Cell = tuple[str, str]  # (text, style)
Line = list[Cell]

GAP = 2
MIN_PROSE = 20
MIN_NAME = 24


def fitted_lines(
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    width: int,
    *,
    indent: int = 0,
    prose: int | None = None,
    header_style: str = "",
) -> Iterator[Line]:
    """The header and the rows, laid out within `width` where the names allow.

    The widest column (other than `prose`) is taken for the names: it is narrowed to the
    names that fit beside the other columns, and a longer name is written whole on a line
    of its own. `prose` is the index of a column of free text (a reason): it wraps between
    words where the line is still too wide.
    """
    n = len(header)
    widths = [max([len(header[i]), *(len(row[i][0]) for row in rows)]) for i in range(n)]

    def total() -> int:
        return indent + sum(widths) + GAP * (n - 1)

    if total() > width and n > 1:
        # the widest column holds the names: as wide as the names that fit beside the
        # others, the longer ones on lines of their own
        names = max((i for i in range(n) if i != prose), key=lambda i: widths[i])
        budget = width - (total() - widths[names])
        if prose is not None and budget < MIN_NAME:
            budget += widths[prose] - max(MIN_PROSE, len(header[prose]))
        fitting = [len(row[names][0]) for row in rows if len(row[names][0]) <= budget]
        widths[names] = max([len(header[names]), *fitting])
    if prose is not None and total() > width:
        room = widths[prose] - (total() - width)
        widths[prose] = max(room, MIN_PROSE, len(header[prose]))
    yield _aligned([(h, header_style) for h in header], widths, indent)
    for row in rows:
        yield from _row_lines(row, widths, indent, prose)


def plain(line: Line) -> str:
    """A line without its styles."""
    return "".join(text for text, _ in line).rstrip()


def _row_lines(
    row: Sequence[Cell], widths: list[int], indent: int, prose: int | None
) -> Iterator[Line]:
    cells = list(row)
    more: list[str] = []
    if prose is not None:
        text, style = cells[prose]
        wrapped = textwrap.wrap(
            text, max(widths[prose], 1), break_long_words=False, break_on_hyphens=False
        ) or [""]
        cells[prose] = (wrapped[0], style)
        more = wrapped[1:]
    over = next(
        (i for i, (text, _) in enumerate(cells) if i != prose and len(text) > widths[i]), None
    )
    if over is not None and over < len(cells) - 1:
        yield _aligned(cells[: over + 1], widths, indent)  # the long name, whole, ends it
        cells = [("", "")] * (over + 1) + cells[over + 1 :]
    yield _aligned(cells, widths, indent)
    if prose is not None:
        for text in more:
            blank: list[Cell] = [("", "")] * len(cells)
            blank[prose] = (text, cells[prose][1])
            yield _aligned(blank[: prose + 1], widths, indent)


def _aligned(cells: Sequence[Cell], widths: Sequence[int], indent: int) -> Line:
    out: Line = [(" " * indent, "")] if indent else []
    last = len(cells) - 1
    while last > 0 and not cells[last][0]:
        last -= 1  # no padding after the last cell with text
    for i, (text, style) in enumerate(cells[: last + 1]):
        if i:
            out.append((" " * GAP, ""))
        out.append((text, style))
        if i < last and len(text) < widths[i]:
            out.append((" " * (widths[i] - len(text)), ""))
    return out
