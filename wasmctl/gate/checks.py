"""The gate's checks, each a function of the rules and of what was read (the reference, the
artifact, its modules, its signatures) to a `CheckResult`, or None when the policy does not
ask for it. Reading is the runner's (`wasmctl.gate.engine`); nothing here fetches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wasmctl.errors import DeniedError, RemoteError, WasmctlError
from wasmctl.gate.model import CheckResult, Status
from wasmctl.gate.policy import (
    AttestationRule,
    KeylessAuthority,
    Rules,
    Scan,
    Signatures,
    Vulnerabilities,
)
from wasmctl.oci.artifact import Artifact, ArtifactKind, LaunchContext
from wasmctl.oci.reference import Reference, RegistryReference
from wasmctl.sign.policy import Policy, Signer

if TYPE_CHECKING:
    from wasmctl.sign.targets import SignatureCandidates
    from wasmctl.sign.verifier import Check, TrustSource

Modules = list[tuple[str, Path]] | WasmctlError  # (name in the image, file), or why not
# sources that verify under any authority, with their signers; what was found; problems met
Verified = tuple[dict[str, Signer], list[str], list[str]]
Verify = Callable[[Signatures, str | None], Verified]  # signatures, predicate type
Attest = Callable[[Signatures, "AttestationRule"], "Attested"]  # signers, the rule


def registry(ref: Reference, rules: Rules) -> CheckResult | None:
    if not rules.registries:
        return None
    if not isinstance(ref, RegistryReference):
        return CheckResult("registry", Status.SKIP, "a local layout, not a registry")
    name = f"{ref.name}/"
    allowed = [
        p
        for p in rules.registries
        if name.startswith(p if p.endswith("/") else p + "/") or ref.name == p.rstrip("/")
    ]
    if allowed:
        return CheckResult("registry", Status.PASS, f"{ref.name} is under {allowed[0]}")
    return CheckResult(
        "registry",
        Status.FAIL,
        f"{ref.name} is not under an allowed prefix",
        {"allowed": list(rules.registries)},
    )


def pin_syntax(ref: Reference, rules: Rules) -> CheckResult | None:
    """Before resolution: what the reference says (refined once the digest is known)."""
    if rules.pin == "tag" or not isinstance(ref, RegistryReference):
        return None
    if ref.digest:
        return CheckResult("pin", Status.PASS, f"pinned to {ref.digest}")
    if rules.pin == "digest":
        return CheckResult("pin", Status.FAIL, "a tag, not a digest (pin: digest)")
    return CheckResult("pin", Status.PASS, "a tag (pin: record)")


def pin(ref: Reference, rules: Rules, digest: str) -> CheckResult | None:
    if rules.pin == "tag" or not isinstance(ref, RegistryReference):
        return None
    if ref.digest:
        return CheckResult("pin", Status.PASS, f"pinned to {ref.digest}")
    pinned = f"{ref.name}@{digest}"
    if rules.pin == "digest":
        return CheckResult(
            "pin",
            Status.FAIL,
            f"a tag, not a digest (pin: digest); pin it as {pinned}",
            {"resolved": pinned},
        )
    return CheckResult(
        "pin", Status.PASS, f"tag resolved and recorded: {pinned}", {"resolved": pinned}
    )


def artifact_format(rules: Rules, artifact: Artifact) -> CheckResult | None:
    if not rules.formats:
        return None
    kind = artifact.kind.value
    if kind in rules.formats:
        return CheckResult("format", Status.PASS, f"{kind} is allowed")
    return CheckResult("format", Status.FAIL, f"{kind} is not one of {', '.join(rules.formats)}")


def size(rules: Rules, modules: Modules) -> CheckResult | None:
    limit = rules.max_module_bytes
    if limit is None:
        return None
    if isinstance(modules, WasmctlError):
        return error("size", modules)
    large = {name: p.stat().st_size for name, p in modules if p.stat().st_size > limit}
    if large:
        listed = ", ".join(f"{n} ({s:,} bytes)" for n, s in large.items())
        return CheckResult("size", Status.FAIL, f"larger than {limit:,} bytes: {listed}")
    return CheckResult("size", Status.PASS, f"{len(modules)} module(s) within {limit:,} bytes")


def scan(rules: Rules, modules: Modules, load: Callable[[Scan], list[Any]]) -> CheckResult | None:
    """`load`: the scan policies of a `scan` rule (loaded once for the gate)."""
    if rules.scan is None:
        return None
    if isinstance(modules, WasmctlError):
        return error("scan", modules)
    from wasmctl.scan import scan_file
    from wasmctl.scan.model import Level
    from wasmctl.scan.model import Verdict as ScanVerdict

    policies = load(rules.scan)
    denied, errors = [], []
    for name, path in modules:
        report = scan_file(path, policies, display=name)
        if report.verdict is ScanVerdict.DENY:
            denied += [f"{name}: {f.message}" for f in report.findings if f.level is Level.ERROR]
        elif report.verdict is ScanVerdict.ERROR:
            errors.append(f"{name}: {report.error}")
    names = ", ".join([*rules.scan.presets, *(p.name for p in rules.scan.policies)])
    if denied:
        return CheckResult(
            "scan",
            Status.FAIL,
            f"denied by {names}: {denied[0]}"
            + (f" (+{len(denied) - 1} more)" if len(denied) > 1 else ""),
            {"findings": denied},
        )
    if errors:
        return CheckResult("scan", Status.ERROR, errors[0], {"errors": errors})
    return CheckResult("scan", Status.PASS, f"{len(modules)} module(s) allowed by {names}")


# the artifact's OpenVEX attestations that verify, and those found that do not
# (wasmctl.audit.vex.Document, wasmctl.audit.vex.Rejected)
VexAttested = Callable[[], tuple[tuple[Any, ...], tuple[Any, ...]]]


def vulnerabilities(
    rules: Rules,
    modules: Modules,
    database: Callable[[Vulnerabilities], Any],
    digest: str | None = None,
    vex_attested: VexAttested | None = None,
) -> CheckResult | None:
    """Known vulnerabilities of the modules (`wasmctl audit`), judged as the policy's
    `vulnerabilities` says. `database`: the rule's OSV database, loaded once for the gate
    (it raises what loading raises: missing is an input error, stale a remote one).

    OpenVEX statements about the artifact (`digest`) or a module apply as in `audit`: the
    policy's `vex` files, and with `vexAttestations` the attestations `vex_attested`
    verifies under the rules' `signatures`; one that cannot be read or does not verify is
    listed and never used. A `not_affected` statement suppresses its finding (listed in
    the details with its author and justification); other statuses are reported."""
    rule = rules.vulnerabilities
    if rule is None:
        return None
    if isinstance(modules, WasmctlError):
        return error("vulnerabilities", modules)
    from datetime import UTC, datetime

    from wasmctl.audit import AuditOptions, audit_subject
    from wasmctl.audit.model import Place, Threshold
    from wasmctl.audit.vex import Rejected, VexSet
    from wasmctl.sbom.facts import ArtifactFacts, Subject, file_facts

    try:
        db = database(rule)
    except WasmctlError as e:  # the hint is the fix: `wasmctl audit db update`
        message = f"{e.message} ({e.hint})" if e.hint else e.message
        return CheckResult("vulnerabilities", Status.ERROR, message,
                           remote=isinstance(e, RemoteError))  # fmt: skip
    attested: tuple[Any, ...] = ()
    rejected: tuple[Any, ...] = ()
    if rule.vex_attestations and vex_attested is not None:
        try:
            attested, rejected = vex_attested()
        except WasmctlError as e:  # no statement read: nothing suppressed, the gate is shut
            rejected = (Rejected("attestations", f"could not be read: {e.message}"),)
    options = AuditOptions(
        ignores=rule.ignores,
        fail_on=Threshold(rule.fail_on),
        ignore_unreachable=rule.ignore_unreachable,
        vex=VexSet(rule.vex_documents) if rule.vex_documents else None,
    )
    artifact = ArtifactFacts(digest, "artifact", digest, None, None) if digest else None
    today = datetime.now(UTC).date()
    failing, ignored, suppressed, stated, errors = [], [], [], [], []
    for name, path in modules:
        try:
            subject = Subject((file_facts(path, Path(name).stem),), artifact)
        except WasmctlError as e:
            errors.append(f"{name}: {e.message}")
            continue
        audited = audit_subject(name, subject, db, options, today, attested)
        for placed in audited.findings:
            finding = placed.finding
            if placed.vex is not None:
                stated.append({**_identified(finding), **placed.vex.to_json()})
            if placed.place is Place.IGNORED:
                ignored.append(
                    f"{finding.advisory.id} ({placed.ignore.reason if placed.ignore else ''})"
                )
            elif placed.place is Place.SUPPRESSED and placed.vex is not None:
                suppressed.append(f"{_vulnerability(finding)}: VEX {placed.vex.describe()}")
            elif placed.place is Place.ACTIVE and options.fail_on.reached_by(
                finding.severity.rating
            ):
                failing.append(placed)
    details: dict[str, Any] = {"database": {"digest": db.digest, "records": db.records}}
    if ignored:
        details["ignored"] = sorted(set(ignored))
    if suppressed:
        details["suppressed"] = sorted(set(suppressed))
    if stated:
        details["vex"] = stated
    if rule.vex_documents or attested:
        details["vexDocuments"] = [d.to_json() for d in (*rule.vex_documents, *attested)]
    if rejected:
        details["vexRejected"] = [{"source": r.source, "reason": r.reason} for r in rejected]
    if failing:
        described = [
            _vulnerability(p.finding) + (f" [VEX {p.vex.status.value}]" if p.vex else "")
            for p in failing
        ]
        details["findings"] = described
        more = f" (+{len(described) - 1} more)" if len(described) > 1 else ""
        return CheckResult(
            "vulnerabilities",
            Status.FAIL,
            f"{len(described)} known vulnerabilit{'y' if len(described) == 1 else 'ies'} "
            f"at or above {rule.fail_on}: {described[0]}{more}",
            details,
        )
    if errors:
        return CheckResult("vulnerabilities", Status.ERROR, errors[0], {"errors": errors})
    quiet = f"; {len(set(suppressed))} suppressed by VEX" if suppressed else ""
    return CheckResult(
        "vulnerabilities",
        Status.PASS,
        f"{len(modules)} module(s): nothing known at or above {rule.fail_on}{quiet}",
        details,
    )


def _vulnerability(finding: Any) -> str:
    """`RUSTSEC-2022-0013 regex 1.5.4 (fix: 1.5.5; high 7.5) in app.wasm`."""
    fixed = ", ".join(finding.fixed) or "none"
    rating = finding.severity.rating.value
    score = f" {finding.severity.score}" if finding.severity.score is not None else ""
    package = finding.package
    return (f"{finding.advisory.id} {package.name} {package.version} (fix: {fixed}; "
            f"{rating}{score}) in {package.where}")  # fmt: skip


def _identified(finding: Any) -> dict[str, Any]:
    package = finding.package
    return {"id": finding.advisory.id, "package": package.name, "version": package.version,
            "where": package.where}  # fmt: skip


def authorities(signatures: Signatures) -> list[Policy]:
    """One policy per keyless authority, and one for all the keys."""
    from wasmctl.sign.keys import load_public_key_file
    from wasmctl.sign.policy import KeyPolicy

    policies: list[Policy] = [_identity(a) for a in signatures.keyless]
    if signatures.keys:
        keys = [load_public_key_file(path) for path in signatures.keys]
        policies.append(KeyPolicy(tuple(keys), ", ".join(p.name for p in signatures.keys)))
    return policies


def verified(
    candidates: Callable[[], SignatureCandidates],
    signatures: Signatures,
    trust: TrustSource,
    predicate_type: str | None,
) -> Verified:
    """Sources that verify under any authority, with their signers; what was found;
    problems met. The referrers are listed and read once, for every authority."""
    result = attested(candidates, signatures, trust, predicate_type)
    return result.ok, result.found, result.problems


@dataclass
class Attested:
    """What verifying one kind of signature or attestation under every authority gave:
    the sources that verify (and meet the conditions) with their signers, a line for each
    one found, problems met, and each condition that failed (`source`, `condition`,
    `wanted`, `found`)."""

    ok: dict[str, Signer] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)


def attested(
    candidates: Callable[[], SignatureCandidates],
    signatures: Signatures,
    trust: TrustSource,
    predicate_type: str | None,
    judge: Callable[[Check], Check] | None = None,
) -> Attested:
    """`verified`, with each verified check judged on its content too (`judge`: the
    provenance conditions); a check that fails them does not count."""
    from wasmctl.sign.targets import verify_candidates

    out = Attested()
    for policy in authorities(signatures):
        result = verify_candidates(candidates(), policy, trust, predicate_type=predicate_type)
        checks = [judge(c) for c in result.checks] if judge else list(result.checks)
        for check in checks:
            if check.ok:
                out.ok.setdefault(check.source, check.signer or Signer())
        for check in checks:
            who = check.signer.describe() if check.signer else "unknown signer"
            line = f"{check.source}: {who}" + (f" ({check.error})" if check.error else "")
            if line not in out.found:
                out.found.append(line)
            for condition in check.conditions:
                failed = {"source": check.source, **condition.to_json()}
                if not condition.passed and failed not in out.conditions:
                    out.conditions.append(failed)
        out.problems += [p for p in result.problems if p not in out.problems]
    return out


def signature(rules: Rules, verify: Verify) -> CheckResult | None:
    """Passes when `required` distinct signers verify: copies of one signature (under
    two referrers, a `.sig` layer twice, a bundle and a legacy layer) and signatures by
    one key or one keyless identity count once (`distinct_signers`)."""
    from wasmctl.sign.policy import distinct_signers

    signatures = rules.signatures
    if signatures is None:
        return None
    try:
        ok, found, problems = verify(signatures, None)
    except WasmctlError as e:
        return error("signature", e)
    sources = sorted(ok)
    numbers = distinct_signers([ok[s] for s in sources])
    signers = len(set(numbers))
    first: dict[int, str] = {}
    duplicates = {}
    for source, number in zip(sources, numbers, strict=True):
        if number in first:
            duplicates[source] = first[number]
        else:
            first[number] = source
    details: dict[str, Any] = {
        "verified": sources,
        "signers": signers,
        "found": found,
        "required": signatures.required,
    }
    if duplicates:
        details["duplicates"] = duplicates
    if problems:
        details["problems"] = problems
    counted = f"{signers} of {signatures.required} required signer(s) verify"
    if len(ok) > signers:
        counted += f" ({len(ok)} signatures; copies by one signer count once)"
    if signers >= signatures.required:
        return CheckResult("signature", Status.PASS, counted, details)
    what = "; ".join(found) if found else "no signatures found"
    return CheckResult("signature", Status.FAIL, f"{counted}: {what}", details)


def attestations(rules: Rules, attest: Attest) -> list[CheckResult]:
    """One result per required attestation: it passes when one verifies under its signers
    (its own `signers`, else the `signatures` authorities) and, for SLSA provenance, meets
    the conditions (and agrees with a GitHub Actions certificate); a failure gives each
    failed condition with the value found (`details.conditions`)."""
    out = []
    for rule in rules.attestations:
        predicate_type = rule.predicate_type
        signers = rule.signers or rules.signatures
        if signers is None:
            out.append(
                CheckResult(
                    "attestation",
                    Status.ERROR,
                    "attestations need `signatures`, or their own `signers` (whose keys or "
                    "identities must have signed them)",
                )
            )
            continue
        try:
            result = attest(signers, rule)
        except WasmctlError as e:
            out.append(error("attestation", e))
            continue
        details: dict[str, Any] = {
            "predicateType": predicate_type,
            "verified": sorted(result.ok),
            "found": result.found,
        }
        if rule.provenance is not None:
            details["provenance"] = rule.provenance.describe()
        if result.conditions:
            details["conditions"] = result.conditions
        if result.ok:
            out.append(
                CheckResult(
                    "attestation",
                    Status.PASS,
                    f"{predicate_type} attestation verifies"
                    + (" and meets the provenance conditions" if rule.provenance else ""),
                    details,
                )
            )
        else:
            what = "; ".join(result.found) if result.found else "none found"
            out.append(
                CheckResult(
                    "attestation",
                    Status.FAIL,
                    f"no verified {predicate_type} attestation"
                    + (" meeting the provenance conditions" if rule.provenance else "")
                    + f": {what}",
                    details,
                )
            )
    return out


def _identity(authority: KeylessAuthority) -> Policy:
    from wasmctl.sign.policy import IdentityPolicy

    return IdentityPolicy(
        authority.identity,
        authority.identity_regexp,
        authority.issuer,
        authority.issuer_regexp,
        dict(authority.claims),
    )


def error(check: str, error: WasmctlError) -> CheckResult:
    status = Status.FAIL if isinstance(error, NoModuleError) else Status.ERROR
    return CheckResult(check, status, error.message, remote=isinstance(error, RemoteError))


def runnable(
    digest: str, artifact: Artifact, launch: LaunchContext | None, modules: Modules
) -> Modules:
    """The modules, when they include what a runtime would run; else a denial.

    An image that runs as Wasm but holds no module wasmctl can read, or whose compat
    entrypoint (args[0]) is not one of the modules found (a file not named `*.wasm`, a
    link), is refused: what would run was not scanned."""
    from wasmctl.oci import media_types as mt
    from wasmctl.oci.artifact import entrypoint_path

    if isinstance(modules, WasmctlError):
        return modules
    if artifact.kind is ArtifactKind.WASMCLOUD_PROVIDER:
        return modules  # a provider archive holds native code, not a module to scan
    if not modules:
        why = "; ".join(artifact.wasm_evidence) or artifact.kind.value
        return NoModuleError(
            f"{digest}: no Wasm module found in its layers, though it would run as Wasm ({why})"
        )
    raw_layers = any(
        layer.media_type in mt.RAW_WASM_LAYER_TYPES for layer in artifact.manifest.layers
    )
    if artifact.kind is ArtifactKind.COMPAT and not raw_layers:
        # runwasi runs Wasm layers where there are some; else a runtime runs args[0]
        entry = entrypoint_path(artifact.config, launch)
        if entry is not None and entry not in {name.lstrip("/") for name, _ in modules}:
            found = ", ".join(name for name, _ in modules)
            return NoModuleError(
                f"{digest}: the entrypoint /{entry}, which a runtime would run as "
                f"Wasm, is not among the modules found in its layers ({found})"
            )
    return modules


class NoModuleError(DeniedError):
    """What a runtime would run is not a module the gate could check (a denial)."""
