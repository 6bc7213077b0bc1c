"""CycloneDX 1.6: the SBOM of the audited target (`wasmctl.sbom.cyclonedx`) with the
findings as its `vulnerabilities` (a vulnerability disclosure report inside the BOM), the
same document `wasmctl sbom --with-vulnerabilities` writes.

One vulnerability per finding (advisory and package in one module), so that each carries
its own reachability hint and place:
- `id`, and `source` the database that publishes it (RustSec, Go's vulnerability database,
  else OSV) with its page; `references` for the aliases (no `advisories`: it would repeat
  the page, and the strict schema's check of an `iri-reference` costs 20 ms per URL);
- `ratings`: one per CVSS vector of the record (method CVSSv2, CVSSv3, CVSSv31 or CVSSv4,
  score and rating computed as the audit does); an informational advisory without a
  vector is rated `info`; an unrated vulnerability (Go's) has none: nothing is claimed;
- `description` the summary, `recommendation` the fixed versions;
- `affects`: the component of the package in the module it was found in, with the
  installed version as `affected` (the Go toolchain, `stdlib`, is no component: the
  module that was built with it is affected).

An ignore or `--ignore-unreachable` is the user's decision, not an analysis: CycloneDX's
`not_affected` and `false_positive` states are claims about the code that the audit
cannot make (an ignore may only accept a risk; a function absent from the name section
may have been inlined), and `resolved` would be false. So those vulnerabilities stay in
the document (leaving them out would hide them from every later reader) with an
`analysis` that has no `state`, only a `detail` saying who hid it and why, and
`wasmctl:audit:*` properties (status, and the ignore's reason, source and expiry).

An OpenVEX statement is such a claim, made by its author, and becomes the `analysis` as
CycloneDX's own VEX writes one (cyclonedx.org "Vulnerability Exploitability eXchange"):
the status as `state` (`not_affected`; `affected` is `exploitable`, `fixed` `resolved`,
`under_investigation` `in_triage`), the justification where CycloneDX has a label that
means the same (`component_not_present` and `vulnerable_code_not_present` are
`code_not_present`, `vulnerable_code_not_in_execute_path` `code_not_reachable`,
`inline_mitigations_already_exist` `protected_by_mitigating_control`;
`vulnerable_code_cannot_be_controlled_by_adversary` has none and stays in the detail),
the statement's time as `firstIssued`, and a `detail` naming the author, the document and
the impact or action statement; `wasmctl:audit:vex:*` properties repeat them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from wasmctl.audit.model import AuditReport, DatabaseInfo, Place, Placed, severity
from wasmctl.audit.report.rows import digest, finding_order, recommendation, source_of, timestamp
from wasmctl.errors import InputError

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.vulnerability import (
        Vulnerability,
        VulnerabilityAnalysis,
        VulnerabilityRating,
        VulnerabilitySource,
    )

RefOf = Callable[[str, str, str, str], "str | None"]  # (where, ecosystem, name, version)


def render_cyclonedx(report: AuditReport) -> str:
    """The target's SBOM with its vulnerabilities; one target only, as an SBOM
    describes one thing."""
    from wasmctl.sbom import creation_time
    from wasmctl.sbom.cyclonedx import render

    if len(report.targets) != 1:
        raise InputError(
            f"cyclonedx describes one target; give one, or use json "
            f"({len(report.targets)} targets were audited)"
        )
    (target,) = report.targets
    if target.subject is None:
        raise InputError(f"{target.target}: {target.error or 'could not be read'}")
    return render(
        target.subject,
        creation_time(),
        vulnerabilities=target.findings,
        database=report.database,
    )


def database_properties(database: DatabaseInfo) -> list[Property]:
    """What the vulnerabilities were matched against (every audit report states it)."""
    from cyclonedx.model import Property

    pairs = [
        ("wasmctl:audit:database:digest", digest(database)),
        ("wasmctl:audit:database:records", str(database.records)),
    ]
    if database.newest is not None:
        pairs.append(("wasmctl:audit:database:newest", str(timestamp(database.newest))))
    return [Property(name=k, value=v) for k, v in pairs]


def bom_vulnerabilities(findings: Sequence[Placed], ref_of: RefOf) -> list[Vulnerability]:
    """The CycloneDX vulnerabilities of `findings`, each affecting the component
    `ref_of(where, ecosystem, name, version)` names."""
    from wasmctl.errors import InternalError

    out = []
    seen: set[str] = set()
    for placed in sorted(findings, key=finding_order):
        package = placed.finding.package
        ref = ref_of(package.where, package.ecosystem, package.name, package.version)
        if ref is None:  # the SBOM and the audit read the same facts
            raise InternalError(
                f"no SBOM component for {package.name}@{package.version} in {package.where}"
            )
        bom_ref = f"{ref}:vuln:{placed.finding.advisory.id}"
        if bom_ref in seen:  # two packages in one component: one entry is enough
            continue
        seen.add(bom_ref)
        out.append(_vulnerability(placed, ref, bom_ref))
    return out


def _vulnerability(placed: Placed, ref: str, bom_ref: str) -> Vulnerability:
    from cyclonedx.model import XsUri
    from cyclonedx.model.impact_analysis import ImpactAnalysisAffectedStatus
    from cyclonedx.model.vulnerability import (
        BomTarget,
        BomTargetVersionRange,
        Vulnerability,
        VulnerabilityReference,
        VulnerabilitySource,
    )

    finding = placed.finding
    advisory, package = finding.advisory, finding.package
    name, url = source_of(advisory.id)
    source = VulnerabilitySource(name=name, url=XsUri(url))
    references = []
    for alias in advisory.aliases:
        alias_name, alias_url = source_of(alias)
        references.append(
            VulnerabilityReference(
                id=alias, source=VulnerabilitySource(name=alias_name, url=XsUri(alias_url))
            )
        )
    return Vulnerability(
        bom_ref=bom_ref,
        id=advisory.id,
        source=source,
        references=references,
        ratings=_ratings(placed, source),
        description=advisory.summary or None,
        recommendation=recommendation(finding),
        analysis=_analysis(placed),
        affects=[
            BomTarget(
                ref=ref,
                versions=[
                    BomTargetVersionRange(
                        version=package.version, status=ImpactAnalysisAffectedStatus.AFFECTED
                    )
                ],
            )
        ],
        properties=_properties(placed),
    )


def _ratings(placed: Placed, source: VulnerabilitySource) -> list[VulnerabilityRating]:
    from cyclonedx.model.vulnerability import (
        VulnerabilityRating,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
    )

    advisory = placed.finding.advisory
    out = []
    for kind, vector in advisory.severity:
        rated = severity(((kind, vector),))
        if rated.score is None:
            continue  # a vector the audit could not read either
        if kind == "CVSS_V2":
            method = VulnerabilityScoreSource.CVSS_V2
        elif kind == "CVSS_V4":
            method = VulnerabilityScoreSource.CVSS_V4
        elif vector.startswith("CVSS:3.1/"):
            method = VulnerabilityScoreSource.CVSS_V3_1
        else:
            method = VulnerabilityScoreSource.CVSS_V3
        out.append(
            VulnerabilityRating(
                source=source,
                score=Decimal(str(rated.score)),
                severity=VulnerabilitySeverity(rated.rating.value),
                method=method,
                vector=vector,
            )
        )
    if not out and advisory.informational:
        out.append(VulnerabilityRating(source=source, severity=VulnerabilitySeverity.INFO))
    return out


def _analysis(placed: Placed) -> VulnerabilityAnalysis | None:
    from cyclonedx.model.vulnerability import VulnerabilityAnalysis

    if placed.vex is not None:
        return _vex_analysis(placed)
    if placed.place is Place.IGNORED and placed.ignore is not None:
        ignore = placed.ignore
        until = f" until {ignore.expires.isoformat()}" if ignore.expires else ""
        detail = f"Ignored by wasmctl audit ({ignore.source}{until}): {ignore.reason}"
        return VulnerabilityAnalysis(detail=detail)
    if placed.place is Place.UNREACHABLE:
        listed = ", ".join(placed.finding.reach.listed)
        return VulnerabilityAnalysis(
            detail="Hidden by wasmctl audit --ignore-unreachable: none of the functions the "
            f"advisory names ({listed}) is in the module's name section (a hint: "
            "inlined code keeps no name)."
        )
    return None


_VEX_STATES = {
    "not_affected": "NOT_AFFECTED",
    "affected": "EXPLOITABLE",
    "fixed": "RESOLVED",
    "under_investigation": "IN_TRIAGE",
}
_VEX_JUSTIFICATIONS = {
    "component_not_present": "CODE_NOT_PRESENT",
    "vulnerable_code_not_present": "CODE_NOT_PRESENT",
    "vulnerable_code_not_in_execute_path": "CODE_NOT_REACHABLE",
    "inline_mitigations_already_exist": "PROTECTED_BY_MITIGATING_CONTROL",
}


def _vex_analysis(placed: Placed) -> VulnerabilityAnalysis:
    """The analysis an OpenVEX statement makes (see the module docstring)."""
    from cyclonedx.model.impact_analysis import (
        ImpactAnalysisJustification,
        ImpactAnalysisState,
    )
    from cyclonedx.model.vulnerability import VulnerabilityAnalysis

    statement = placed.vex
    assert statement is not None
    label = statement.justification.value if statement.justification is not None else None
    justification = _VEX_JUSTIFICATIONS.get(label or "")
    said = statement.impact_statement or statement.action_statement or statement.status_notes
    detail = f"OpenVEX {statement.describe()} (document {statement.origin.document})"
    detail += f": {said}" if said else ""
    if placed.place is Place.IGNORED and placed.ignore is not None:
        ignore = placed.ignore
        detail += f". Also ignored by wasmctl audit ({ignore.source}): {ignore.reason}"
    return VulnerabilityAnalysis(
        state=ImpactAnalysisState[_VEX_STATES[statement.status.value]],
        justification=(
            ImpactAnalysisJustification[justification] if justification is not None else None
        ),
        detail=detail,
        first_issued=statement.timestamp,
    )


def _properties(placed: Placed) -> list[Property]:
    from cyclonedx.model import Property

    finding = placed.finding
    pairs: list[tuple[str, str]] = [
        ("wasmctl:audit:status", placed.place.value),
        ("wasmctl:audit:module", finding.package.where),
        ("wasmctl:audit:reachability", finding.reach.verdict.value),
    ]
    pairs += _repeated("wasmctl:audit:symbols:listed", finding.reach.listed)
    pairs += _repeated("wasmctl:audit:symbols:found", finding.reach.found)
    if finding.advisory.informational:
        pairs.append(("wasmctl:audit:informational", finding.advisory.informational))
    if placed.vex is not None:
        statement = placed.vex
        pairs.append(("wasmctl:audit:vex:status", statement.status.value))
        if statement.justification is not None:
            pairs.append(("wasmctl:audit:vex:justification", statement.justification.value))
        pairs.append(("wasmctl:audit:vex:author", statement.origin.author))
        pairs.append(("wasmctl:audit:vex:document", statement.origin.document))
        pairs.append(("wasmctl:audit:vex:source", statement.origin.source))
    if placed.ignore is not None:
        pairs.append(("wasmctl:audit:ignore:id", placed.ignore.id))
        pairs.append(("wasmctl:audit:ignore:reason", placed.ignore.reason))
        pairs.append(("wasmctl:audit:ignore:source", placed.ignore.source))
        if placed.ignore.expires is not None:
            pairs.append(("wasmctl:audit:ignore:expires", placed.ignore.expires.isoformat()))
    return [Property(name=k, value=v) for k, v in pairs]


def _repeated(name: str, values: Iterable[str]) -> list[tuple[str, str]]:
    return [(name, v) for v in values]
