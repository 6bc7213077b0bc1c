"""SARIF 2.1.0 for GitHub code scanning (github/codeql-action/upload-sarif).

- A rule per advisory: its id, its summary, osv.dev's page as `helpUri`, and for GitHub's
  severity the CVSS base score as `security-severity` where the record has a vector.
- A result per finding. Levels follow the severity: `error` for high and critical,
  `warning` for medium and for unknown (Go's records rate nothing, and an unrated
  vulnerability is not a minor one), `note` for low and none, and for RustSec's
  informational advisories (unmaintained, unsound, notice), which never fail a run.
- The location is the artifact: the module file (repository-relative, as `scan` writes
  it) or the reference, with a logical location naming the module inside it (`app/0` for
  a nested one). Binaries have no lines, so there is no `region`, and upload-sarif then
  computes no fingerprint: each result carries `partialFingerprints` from the advisory,
  the target, the module and the package, not its version, so an upgrade that is still
  vulnerable keeps its alert.
- Ignored findings and those hidden by `--ignore-unreachable` are results with an
  external, accepted suppression whose justification is the reason: code scanning shows
  them as dismissed rather than not at all. So are those a VEX `not_affected` statement
  suppressed, the justification naming the statement's status, justification label,
  author and document, and its impact statement. The VEX statement in force for any
  finding is in its properties (`vex`).
- A target that could not be read is a tool execution notification.

One run per file: GitHub rejects several runs with the same tool and category.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import PurePosixPath
from typing import Any

from wasmctl._sarif import SCHEMA, tool
from wasmctl.audit.model import AuditReport, Place, Placed, Rating, TargetAudit
from wasmctl.audit.report.rows import (
    digest,
    ordered,
    osv_url,
    recommendation,
    source_of,
    timestamp,
)

FINGERPRINT = "wasmctlVulnerability/v1"

LEVELS = {
    Rating.CRITICAL: "error",
    Rating.HIGH: "error",
    Rating.MEDIUM: "warning",
    Rating.UNKNOWN: "warning",
    Rating.LOW: "note",
    Rating.NONE: "note",
}


def level(placed: Placed) -> str:
    """The SARIF level of a finding (see the module docstring)."""
    if placed.finding.advisory.informational:
        return "note"
    return LEVELS[placed.finding.severity.rating]


def render_sarif(report: AuditReport) -> str:
    """The report as a SARIF 2.1.0 log with one run."""
    return json.dumps(sarif_log(report), indent=2, ensure_ascii=False) + "\n"


def sarif_log(report: AuditReport) -> dict[str, Any]:
    """The SARIF log as data."""
    rows = list(ordered(report))
    first: dict[str, Placed] = {}
    for _, placed in rows:
        first.setdefault(placed.finding.advisory.id, placed)
    rule_ids = sorted(first)
    index = {ident: i for i, ident in enumerate(rule_ids)}
    uris = {id(t): _artifact(t) for t in report.targets}
    errors = [t for t in report.targets if t.error is not None]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": tool([_rule(first[ident]) for ident in rule_ids]),
                "automationDetails": {"id": "wasmctl/audit/"},
                "invocations": [
                    {
                        "executionSuccessful": not errors,
                        "toolExecutionNotifications": [
                            {
                                "level": "error",
                                "message": {"text": f"{t.target}: {t.error}"},
                                "locations": [_location(uris[id(t)])],
                            }
                            for t in errors
                        ],
                    }
                ],
                "columnKind": "unicodeCodePoints",
                "results": [_result(p, uris[id(t)], index[p.finding.advisory.id]) for t, p in rows],
                "properties": {
                    "failOn": report.fail_on.value,
                    "verdict": report.verdict,
                    "database": {
                        "digest": digest(report.database),
                        "records": report.database.records,
                        "newest": timestamp(report.database.newest),
                    },
                },
            }
        ],
    }


def _rule(placed: Placed) -> dict[str, Any]:
    advisory = placed.finding.advisory
    severity = placed.finding.severity
    summary = advisory.summary or advisory.id
    name, page = source_of(advisory.id)
    aliases = ", ".join(advisory.aliases)
    full = f"{summary} ({', '.join((advisory.id, *advisory.aliases))})"
    help_text = f"{summary}\n\n{name}: {page}" + (f"\nAliases: {aliases}" if aliases else "")
    help_markdown = f"{summary}\n\n[{advisory.id}]({page}) ({name})" + (
        f"; aliases: {', '.join(f'[{a}]({source_of(a)[1]})' for a in advisory.aliases)}"
        if aliases
        else ""
    )
    tags = ["security", "vulnerability", "supply-chain", placed.finding.package.ecosystem]
    if advisory.informational:
        tags.append(advisory.informational)
    properties: dict[str, Any] = {"tags": tags, "precision": "high"}
    if severity.score is not None and not advisory.informational:
        properties["security-severity"] = f"{severity.score:.1f}"
    return {
        "id": advisory.id,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": full},
        "helpUri": osv_url(advisory.id),
        "help": {"text": help_text, "markdown": help_markdown},
        "defaultConfiguration": {"level": level(placed)},
        "properties": properties,
    }


def _artifact(target: TargetAudit) -> dict[str, str]:
    """The artifact location: a module file relative to the repository (the working
    directory) where it is inside it, else absolute; an artifact's reference as given."""
    if target.subject is not None and target.subject.artifact is not None:
        return {"uri": target.target}
    try:
        rel = os.path.relpath(target.target)
    except ValueError:
        rel = target.target
    if rel.startswith(".."):
        return {"uri": _posix(os.path.abspath(target.target))}
    return {"uri": _posix(rel), "uriBaseId": "%SRCROOT%"}


def _posix(path: str) -> str:
    return PurePosixPath(path.replace(os.sep, "/")).as_posix()


def _location(artifact: dict[str, str], where: str | None = None) -> dict[str, Any]:
    location: dict[str, Any] = {"physicalLocation": {"artifactLocation": dict(artifact)}}
    if where is not None:
        location["logicalLocations"] = [
            {"name": where.rsplit("/", 1)[-1], "fullyQualifiedName": where, "kind": "module"}
        ]
    return location


def _result(placed: Placed, artifact: dict[str, str], rule_index: int) -> dict[str, Any]:
    finding = placed.finding
    package, advisory = finding.package, finding.advisory
    text = (
        f"{package.name} {package.version} in {package.where} is affected by {advisory.id}"
        f"{': ' + advisory.summary if advisory.summary else ''}. "
        f"{recommendation(finding)}"
    )
    result: dict[str, Any] = {
        "ruleId": advisory.id,
        "ruleIndex": rule_index,
        "level": level(placed),
        "message": {"text": text},
        "locations": [_location(artifact, package.where)],
        "partialFingerprints": {
            FINGERPRINT: _fingerprint(
                advisory.id, artifact["uri"], package.where, package.ecosystem, package.name
            )
        },
        "properties": {
            "ecosystem": package.ecosystem,
            "package": package.name,
            "version": package.version,
            "fixed": list(finding.fixed),
            "aliases": list(advisory.aliases),
            "status": placed.place.value,
            "reachability": finding.reach.verdict.value,
            "symbols": list(finding.reach.found),
            "vex": None if placed.vex is None else placed.vex.to_json(),
        },
    }
    if placed.place is Place.IGNORED and placed.ignore is not None:
        ignore = placed.ignore
        until = f", until {ignore.expires.isoformat()}" if ignore.expires else ""
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"{ignore.reason} (ignored by {ignore.source}{until})",
            }
        ]
    elif placed.place is Place.SUPPRESSED and placed.vex is not None:
        statement = placed.vex
        said = f": {statement.impact_statement}" if statement.impact_statement else ""
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"VEX {statement.describe()} "
                f"(document {statement.origin.document}){said}",
            }
        ]
    elif placed.place is Place.UNREACHABLE:
        listed = ", ".join(finding.reach.listed)
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": "hidden by --ignore-unreachable: the module's name section "
                f"has none of the functions the advisory names ({listed})",
            }
        ]
    return result


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
