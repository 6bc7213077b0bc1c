"""`wasmctl audit`: known vulnerabilities of the Rust crates and Go modules inside Wasm
modules, matched offline against OSV databases.

- `osv`: the database (records, the evaluation of their ranges), `db`: where it lives, its
  update, its age; `versions`: versions compared as SemVer;
- `findings`: the packages a module is built from and the advisories that apply, with the
  reachability hint of `reach`;
- `model`: severities, ignores and the report; `report/`: its formats;
- `vex`: OpenVEX statements (files, verified attestations) that suppress or annotate
  findings, and the document `--emit-vex` writes.

`audit_targets` is the library's entry: targets in, an `AuditReport` out, never raising on
a finding (the command line turns the report into an exit code).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wasmctl.audit.model import (
    AuditReport,
    DatabaseInfo,
    Ignore,
    TargetAudit,
    Threshold,
    place,
)
from wasmctl.errors import InputError, RemoteError

if TYPE_CHECKING:
    from wasmctl.audit.findings import Finding, Package
    from wasmctl.audit.osv import Database
    from wasmctl.audit.vex import Document, Rejected, Statement, VexSet
    from wasmctl.oci.reference import Reference
    from wasmctl.oci.source import RegistryOptions
    from wasmctl.sbom.facts import Subject
    from wasmctl.sign.policy import Policy
    from wasmctl.sign.verifier import TrustSource


@dataclass(frozen=True)
class VexTrust:
    """Whose OpenVEX attestations on an artifact are read: those that verify under
    `policy` (a key, or a keyless identity) against `trust`."""

    policy: Policy
    trust: TrustSource


@dataclass(frozen=True)
class AuditOptions:
    ignores: tuple[Ignore, ...] = ()
    fail_on: Threshold = Threshold.ANY
    ignore_unreachable: bool = False
    today: date | None = None  # for ignores' expiry; today (UTC) when None
    registry: RegistryOptions | None = None
    vex: VexSet | None = None  # statements from VEX files, for every target
    vex_trust: VexTrust | None = None  # None: attestations are not read


def database_info(database: Database) -> DatabaseInfo:
    return DatabaseInfo(
        digest=database.digest,
        records=database.records,
        withdrawn=database.withdrawn,
        sources=tuple(str(s) for s in getattr(database, "sources", ())),
        newest=getattr(database, "newest", None),
    )


def audit_targets(
    targets: Sequence[str], database: Database, options: AuditOptions | None = None
) -> AuditReport:
    """Audit module files, directories (their `*.wasm`, recursively) and artifacts
    (`oci:`, `oci-archive:`, registry references). A target that cannot be read is
    reported with its error; the others are still audited."""
    options = options or AuditOptions()
    now = datetime.now(UTC)
    today = options.today or now.date()
    audited: list[TargetAudit] = []
    for target in targets:
        for name, subject, error in _subjects(target, options.registry):
            if error is not None:
                audited.append(
                    TargetAudit(name, error=error.message, remote=isinstance(error, RemoteError))
                )
                continue
            assert subject is not None
            attested: tuple[Document, ...] = ()
            rejected: tuple[Rejected, ...] = ()
            if options.vex_trust is not None and subject.artifact is not None:
                attested, rejected = _vex_attestations(target, subject, options)
            audited.append(
                audit_subject(name, subject, database, options, today, attested, rejected)
            )
    return AuditReport(
        targets=tuple(audited),
        database=database_info(database),
        fail_on=options.fail_on,
        ignores=options.ignores,
        expired=tuple(i for i in options.ignores if i.expired(today)),
        generated=now,
        vex=options.vex.documents if options.vex is not None else (),
    )


def audit_subject(
    name: str,
    subject: Subject,
    database: Database,
    options: AuditOptions,
    today: date,
    attested: tuple[Document, ...] = (),
    rejected: tuple[Rejected, ...] = (),
) -> TargetAudit:
    """The audit of every module of one subject (a module file, or an artifact's modules).
    VEX statements from `options.vex` and from `attested` (the artifact's verified
    attestations) apply to its findings; `rejected` are the attestations not used."""
    from wasmctl.audit.findings import audit

    findings: list[Finding] = []
    packages: list[Package] = []
    unmatched: list[tuple[Package, str]] = []
    for module in subject.modules:
        result = audit(module, database)
        findings += result.findings
        packages += result.packages
        unmatched += result.unmatched
    statements = _vex_set(options.vex, attested)
    return TargetAudit(
        target=name,
        findings=place(
            findings,
            options.ignores,
            today=today,
            ignore_unreachable=options.ignore_unreachable,
            vex=_vex_of(statements, subject) if statements is not None else None,
        ),
        packages=tuple(packages),
        unmatched=tuple(unmatched),
        subject=subject,
        vex=attested,
        vex_rejected=rejected,
    )


def _vex_set(given: VexSet | None, attested: tuple[Document, ...]) -> VexSet | None:
    if not attested:
        return given if given else None
    from wasmctl.audit.vex import VexSet

    return (given or VexSet(())).with_documents(attested)


def _vex_of(statements: VexSet, subject: Subject) -> Callable[[Finding], Statement | None]:
    """The statement in force for a finding of `subject`, its product known by where
    the finding was made."""
    from wasmctl.audit.vex import Product, product_of

    products: dict[str, Product] = {}

    def statement(finding: Finding) -> Statement | None:
        where = finding.package.where
        if where not in products:
            products[where] = product_of(subject, where)
        return statements.statement_for(finding, products[where])

    return statement


def _vex_attestations(
    target: str, subject: Subject, options: AuditOptions
) -> tuple[tuple[Document, ...], tuple[Rejected, ...]]:
    """The artifact's OpenVEX attestations that verify under `options.vex_trust`, and
    those found that do not. Read from the digest the audit read (a tag that moved since
    is not followed); a failure to look them up is reported as not used, never as a
    reason to pass."""
    from wasmctl.audit.vex import Rejected, attested
    from wasmctl.oci.reference import parse_reference
    from wasmctl.sign.targets import find_signature_candidates

    assert options.vex_trust is not None and subject.artifact is not None
    try:
        ref = _pinned(parse_reference(target), subject.artifact.digest)
        found = find_signature_candidates(ref, options.registry)
        return attested(found, (options.vex_trust.policy,), options.vex_trust.trust)
    except (InputError, RemoteError) as e:
        return (), (Rejected(target, f"VEX attestations could not be read: {e.message}"),)


def _pinned(ref: Reference, digest: str) -> Reference:
    from wasmctl.oci.reference import LayoutReference

    if isinstance(ref, LayoutReference):
        return LayoutReference(ref.path, None, digest, ref.archive)
    return replace(ref, digest=digest)


def _subjects(
    target: str, registry: RegistryOptions | None
) -> Iterator[tuple[str, Subject | None, InputError | RemoteError | None]]:
    """(name, subject, error) for a target: one per module file, one per artifact."""
    from wasmctl.oci.reference import looks_like_reference, parse_reference
    from wasmctl.sbom.facts import reference_facts

    if looks_like_reference(target):
        try:
            yield target, reference_facts(parse_reference(target), registry), None
        except (InputError, RemoteError) as e:
            yield target, None, e
        return
    path = Path(target)
    if path.is_dir():
        from wasmctl.scan.engine import display_path, find_wasm_files

        files = find_wasm_files(path)
        if not files:
            yield display_path(path), None, InputError("no *.wasm files found under this directory")
        for file in files:
            yield from _file_subject(display_path(file), file)
        return
    yield from _file_subject(target, path)


def _file_subject(
    name: str, path: Path
) -> Iterator[tuple[str, Subject | None, InputError | RemoteError | None]]:
    from wasmctl.sbom.facts import Subject, file_facts

    try:
        yield name, Subject((file_facts(path),)), None
    except InputError as e:
        yield name, None, e


__all__ = ["AuditOptions", "VexTrust", "audit_subject", "audit_targets", "database_info"]
