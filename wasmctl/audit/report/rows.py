"""What every audit format shares: the order findings are written in, the pages that
describe an advisory or an alias, and the database's digest as it is shown."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from wasmctl.audit.model import Place

if TYPE_CHECKING:
    from wasmctl.audit.findings import Finding
    from wasmctl.audit.model import AuditReport, DatabaseInfo, Placed, TargetAudit

PLACE_ORDER = {place: i for i, place in enumerate(Place)}

# Advisory ids by prefix: the database that publishes them, and its page for one id.
_SOURCES = (
    ("RUSTSEC-", "RustSec", "https://rustsec.org/advisories/{}.html"),
    ("GO-", "Go Vulnerability Database", "https://pkg.go.dev/vuln/{}"),
    ("CVE-", "NVD", "https://nvd.nist.gov/vuln/detail/{}"),
    ("GHSA-", "GitHub Advisory Database", "https://github.com/advisories/{}"),
)
OSV = ("OSV", "https://osv.dev/vulnerability/{}")


def source_of(ident: str) -> tuple[str, str]:
    """(database name, page URL) of an advisory id or alias; osv.dev for any other."""
    for prefix, name, url in _SOURCES:
        if ident.startswith(prefix):
            return name, url.format(ident)
    return OSV[0], OSV[1].format(ident)


def osv_url(ident: str) -> str:
    """osv.dev's page of an advisory (it shows every database's records alike)."""
    return OSV[1].format(ident)


def ordered(report: AuditReport) -> Iterator[tuple[TargetAudit, Placed]]:
    """Every finding with its target: targets in the report's order, then by place
    (active, informational, ignored, unreachable), advisory id, package and module."""
    for target in report.targets:
        for placed in sorted(target.findings, key=finding_order):
            yield target, placed


def finding_order(placed: Placed) -> tuple[int, str, str, str, str, str]:
    package = placed.finding.package
    return (
        PLACE_ORDER[placed.place],
        placed.finding.advisory.id,
        package.ecosystem,
        package.name,
        package.version,
        package.where,
    )


def digest(database: DatabaseInfo) -> str:
    """The database's content digest, algorithm-qualified (`sha256:...`)."""
    return database.digest if ":" in database.digest else f"sha256:{database.digest}"


def short_digest(database: DatabaseInfo) -> str:
    algorithm, _, value = digest(database).partition(":")
    return f"{algorithm}:{value[:12]}"


def age_text(age: timedelta | None) -> str:
    """`3 days old`, `5 hours old`, or `of unknown age` (no record had a date)."""
    if age is None:
        return "of unknown age"
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} old"
    return "less than a minute old"


def package_count(report: AuditReport) -> int:
    return sum(len(t.packages) for t in report.targets)


def upgrades(finding: Finding) -> tuple[str, ...]:
    """The fixed versions above the installed one, in the record's order: what one can
    upgrade to (RustSec lists the fixes of older branches too). All of them when a
    version cannot be compared."""
    from wasmctl.audit.versions import VersionError, parse

    package = finding.package
    try:
        installed = parse(package.ecosystem, package.version)
        return tuple(v for v in finding.fixed if parse(package.ecosystem, v) > installed)
    except VersionError:
        return finding.fixed


def recommendation(finding: Finding) -> str:
    """What to upgrade to, in words."""
    name, fixed = finding.package.name, upgrades(finding)
    if not fixed:
        return f"No fixed version of {name} is known."
    if len(fixed) == 1:
        return f"Upgrade {name} to {fixed[0]}, which fixes it."
    return f"Upgrade {name} to a version that fixes it: {', '.join(fixed)}."


def timestamp(when: datetime | None) -> str | None:
    """RFC 3339 in UTC (`2026-11-30T12:00:00Z`); a naive time is taken as UTC."""
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
