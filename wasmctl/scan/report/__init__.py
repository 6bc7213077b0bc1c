"""Renderers of a `ScanReport`: pure `render(report) -> str` functions chosen by format, and
`render_chunks`, the same text in pieces for reports too large to hold as one string."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import TYPE_CHECKING, assert_never

if TYPE_CHECKING:  # the command line reads ReportFormat for --help: no scanner loaded for it
    from wasmctl.scan.model import ScanReport


class ReportFormat(enum.StrEnum):
    """The output formats of `wasmctl scan`."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


def render(report: ScanReport, fmt: ReportFormat, *, color: bool = False, width: int = 100) -> str:
    """The report in the chosen format."""
    if fmt is ReportFormat.TABLE:
        from wasmctl.scan.report.table import render_table

        return render_table(report, color=color, width=width)
    if fmt is ReportFormat.JSON:
        from wasmctl.scan.report.json import render_json

        return render_json(report)
    if fmt is ReportFormat.SARIF:
        from wasmctl.scan.report.sarif import render_sarif

        return render_sarif(report)
    assert_never(fmt)


def render_chunks(
    report: ScanReport, fmt: ReportFormat, *, color: bool = False, width: int = 100
) -> Iterator[str]:
    """The text of `render`, in chunks: JSON and SARIF are made as they are written."""
    if fmt is ReportFormat.JSON:
        from wasmctl.scan.report.json import iter_json_report

        yield from iter_json_report(report)
    elif fmt is ReportFormat.SARIF:
        from wasmctl.scan.report.sarif import iter_sarif

        yield from iter_sarif(report)
    else:
        yield render(report, fmt, color=color, width=width)


__all__ = ["ReportFormat", "render", "render_chunks"]
