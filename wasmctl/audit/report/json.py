"""The JSON report (`wasmctl.audit/v1`), documented by docs/audit.schema.json.

Each target lists its findings, every finding in every place: `status` says whether it is
active, informational, ignored (with the `ignore` that matched), suppressed by a VEX
`not_affected` statement or hidden by `--ignore-unreachable`; `vex` is the OpenVEX
statement in force for it, whatever its status (`affected`, `fixed`, `under_investigation`
suppress nothing); and each names its target too, so a flattened list
(`jq '[.targets[].findings[]]'`) loses nothing. `vex` at the top lists the VEX documents
read (files, and attestations found on a target) and the attestations not used, with why.
The order is fixed (`rows.finding_order`), so the same audit at the same `now` gives the
same bytes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from wasmctl.audit.model import AuditReport, Ignore, Place, Placed, TargetAudit
from wasmctl.audit.report.rows import digest, finding_order, osv_url, package_count, timestamp

SCHEMA = "wasmctl.audit/v1"


def render_json(report: AuditReport, *, now: datetime) -> str:
    """The report as indented JSON text."""
    return json.dumps(report_data(report, now=now), indent=2, ensure_ascii=False) + "\n"


def report_data(report: AuditReport, *, now: datetime) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    failing = {id(p) for p in report.failing}
    age = report.database.age(now)
    return {
        "schema": SCHEMA,
        "verdict": report.verdict,
        "failOn": report.fail_on.value,
        "database": {
            "digest": digest(report.database),
            "records": report.database.records,
            "withdrawn": report.database.withdrawn,
            "sources": list(report.database.sources),
            "newest": timestamp(report.database.newest),
            "ageSeconds": None if age is None else max(0, int(age.total_seconds())),
        },
        "summary": {
            "targets": len(report.targets),
            "errors": sum(1 for t in report.targets if t.error is not None),
            "packages": package_count(report),
            "findings": len(report.placed()),
            "failing": len(failing),
            **{place.value: len(report.placed(place)) for place in Place},
            "unmatched": sum(len(t.unmatched) for t in report.targets),
        },
        "targets": [_target(t, failing) for t in report.targets],
        "ignores": [_ignore(i) for i in report.applied],
        "expiredIgnores": [_ignore(i) for i in report.expired],
        "vex": {
            "documents": [d.to_json(target) for target, d in report.vex_documents],
            "rejected": [r.to_json(t.target) for t in report.targets for r in t.vex_rejected],
        },
        "unmatched": [
            {
                "target": t.target,
                "ecosystem": package.ecosystem,
                "package": package.name,
                "version": package.version,
                "where": package.where,
                "reason": reason,
            }
            for t in report.targets
            for package, reason in t.unmatched
        ],
    }


def _target(t: TargetAudit, failing: set[int]) -> dict[str, Any]:
    artifact = t.subject.artifact if t.subject is not None else None
    return {
        "target": t.target,
        "error": t.error,
        "remote": t.remote,
        "artifact": None if artifact is None else artifact.reference,
        "modules": [] if t.subject is None else [m.name for m in t.subject.modules],
        "packages": len(t.packages),
        "findings": [
            _finding(t, p, failing=id(p) in failing) for p in sorted(t.findings, key=finding_order)
        ],
    }


def _finding(t: TargetAudit, placed: Placed, *, failing: bool) -> dict[str, Any]:
    finding = placed.finding
    advisory, package, severity, reach = (
        finding.advisory,
        finding.package,
        finding.severity,
        finding.reach,
    )
    return {
        "id": advisory.id,
        "aliases": list(advisory.aliases),
        "summary": advisory.summary,
        "url": osv_url(advisory.id),
        "ecosystem": package.ecosystem,
        "package": package.name,
        "version": package.version,
        "fixed": list(finding.fixed),
        "severity": {
            "rating": severity.rating.value,
            "score": severity.score,
            "vector": severity.vector,
        },
        "informational": advisory.informational,
        "symbols": {
            "verdict": reach.verdict.value,
            "listed": list(reach.listed),
            "found": list(reach.found),
        },
        "target": t.target,
        "where": package.where,
        "status": placed.place.value,
        "failing": failing,
        "ignore": None if placed.ignore is None else _ignore(placed.ignore),
        "vex": None if placed.vex is None else placed.vex.to_json(),
    }


def _ignore(ignore: Ignore) -> dict[str, Any]:
    return {
        "id": ignore.id,
        "reason": ignore.reason,
        "expires": None if ignore.expires is None else ignore.expires.isoformat(),
        "source": ignore.source,
    }
