"""Renderers of a `ScanReport`: pure `render(report) -> str` functions chosen by format."""

from __future__ import annotations

import enum
from typing import assert_never

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


__all__ = ["ReportFormat", "render"]
