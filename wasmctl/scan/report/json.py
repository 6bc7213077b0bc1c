"""The JSON report (`wasmctl.scan/v1`), documented in docs/scan-json.md.

`iter_json_report` writes it piece by piece (a module with 200,000 imports gives 120 MB
of JSON, never held whole); `render_json` is the same text in one string.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wasmctl._render import iter_json
from wasmctl.scan.model import Finding, ImportVerdict, ScanReport, TargetReport, Verdict

SCHEMA = "wasmctl.scan/v1"


def report_data(report: ScanReport) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    data = _report(report)
    data["targets"] = [
        {key: list(value) if key in _ROWS else value for key, value in target.items()}
        for target in data["targets"]
    ]
    return data


def render_json(report: ScanReport) -> str:
    """The report as indented JSON text."""
    return "".join(iter_json_report(report))


def iter_json_report(report: ScanReport) -> Iterator[str]:
    """The text of `render_json` in chunks, each row turned into JSON as it is written."""
    yield from iter_json(_report(report))
    yield "\n"


_ROWS = ("imports", "exports", "findings")


def _report(report: ScanReport) -> dict[str, Any]:
    """The report's data with every target's rows as generators, made when written."""
    return {
        "schema": SCHEMA,
        "policies": list(report.policies),
        "verdict": report.verdict.value,
        "summary": {
            "targets": len(report.targets),
            **{v.value: report.count(v) for v in Verdict},
        },
        "targets": (_target(t) for t in report.targets),
    }


def _target(t: TargetReport) -> dict[str, Any]:
    return {
        "path": t.path,
        "kind": t.kind.value if t.kind else None,
        "size": t.size,
        "verdict": t.verdict.value,
        "error": t.error,
        "imports": (_verdict(v) for v in t.imports if v.direction == "import"),
        "exports": (_verdict(v) for v in t.imports if v.direction == "export"),
        "findings": (_finding(f) for f in t.findings),
    }


def _verdict(v: ImportVerdict) -> dict[str, Any]:
    return {
        "location": v.location,
        "module": v.module,
        "name": v.name,
        "kind": v.kind.value,
        "capability": v.capability.value,
        "decision": v.decision.value,
        "reason": v.reason,
        "note": v.note,
        "policy": v.policy,
    }


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule.value,
        "level": f.level.value,
        "message": f.message,
        "policy": f.policy,
        "location": f.location,
        "module": f.module,
        "name": f.name,
        "capability": f.capability.value if f.capability else None,
    }
