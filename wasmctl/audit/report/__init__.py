"""Renderers of an `AuditReport`: pure `render(report, fmt) -> str` functions chosen by
format.

- `table`: for people, one row per finding, grouped by where it is reported;
- `json`: `wasmctl.audit/v1`, documented by docs/audit.schema.json;
- `sarif`: SARIF 2.1.0 for GitHub code scanning, a rule per advisory;
- `cyclonedx`: the target's CycloneDX 1.6 SBOM with its `vulnerabilities`, the document
  `wasmctl sbom --with-vulnerabilities` writes.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, assert_never

if TYPE_CHECKING:  # the command line reads AuditFormat for --help: nothing loaded for it
    from wasmctl.audit.model import AuditReport


class AuditFormat(enum.StrEnum):
    """The output formats of `wasmctl audit`."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    CYCLONEDX = "cyclonedx"


def render(
    report: AuditReport,
    fmt: AuditFormat,
    *,
    color: bool = False,
    width: int = 100,
    now: datetime,
) -> str:
    """The report in the chosen format. `now` is what the database's age is measured
    from (the table and JSON state it); CycloneDX takes its timestamp from
    `SOURCE_DATE_EPOCH` as `wasmctl sbom` does, so both give the same document."""
    if fmt is AuditFormat.TABLE:
        from wasmctl.audit.report.table import render_table

        return render_table(report, color=color, width=width, now=now)
    if fmt is AuditFormat.JSON:
        from wasmctl.audit.report.json import render_json

        return render_json(report, now=now)
    if fmt is AuditFormat.SARIF:
        from wasmctl.audit.report.sarif import render_sarif

        return render_sarif(report)
    if fmt is AuditFormat.CYCLONEDX:
        from wasmctl.audit.report.cyclonedx import render_cyclonedx

        return render_cyclonedx(report)
    assert_never(fmt)


__all__ = ["AuditFormat", "render"]
