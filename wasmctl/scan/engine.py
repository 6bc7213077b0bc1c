"""Evaluating modules against policies, and finding the files to scan."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from wasmctl.errors import InputError, RemoteError, WasmParseError
from wasmctl.oci.reference import looks_like_reference
from wasmctl.scan.capabilities import (
    PREVIEW1_STANDARD,
    Capability,
    classify_export,
    classify_import,
    is_preview1,
)
from wasmctl.scan.model import Finding, ImportVerdict, Level, RuleId, ScanReport, TargetReport
from wasmctl.scan.policy import ComponentRule, Decision, Policy, Ruling
from wasmctl.wasm.model import ExternKind, ImportEntry, Module
from wasmctl.wasm.parser import open_binary, parse

_LEVEL = {Decision.DENY: Level.ERROR, Decision.WARN: Level.WARNING}
_UNBUNDLED = (ExternKind.MODULE, ExternKind.COMPONENT)
PREVIEW1_RULE = "preview1: standard"

ReferenceModules = Callable[[str], AbstractContextManager[Sequence[tuple[str, Path]]]]
"""Opens the modules of an artifact reference for a block: (display name, file) pairs.

The scanner judges files; fetching an artifact is someone else's work (the command line
passes `wasmctl.oci.transfer.reference_modules`)."""


def evaluate(module: Module, policies: Sequence[Policy], *, path: str, size: int) -> TargetReport:
    """Every decision and finding of `policies` (all must pass) on one parsed module."""
    verdicts: list[ImportVerdict] = []
    findings: list[Finding] = []
    for location, unit in module.walk():
        nested = location != ""
        for entry in unit.imports:
            verdict = _strictest(_decide(entry, p, location, nested=nested) for p in policies)
            verdicts.append(verdict)
            findings.extend(_import_findings(entry, verdict, policies, nested=nested))
        if not nested:
            for export in unit.exports:
                capability = classify_export(export)
                if capability is None:
                    continue
                verdict = _strictest(
                    _decide_export(export.name, export.kind, capability, p) for p in policies
                )
                verdicts.append(verdict)
                if verdict.decision in _LEVEL:
                    findings.append(
                        _finding(
                            RuleId.FORBIDDEN_IMPORT,
                            verdict,
                            f"exports {export.name} ({capability})",
                        )
                    )
    for policy in policies:
        findings.extend(_module_findings(module, policy, size))
    return TargetReport(
        path=path,
        kind=module.kind,
        size=size,
        imports=tuple(verdicts),
        findings=tuple(findings),
    )


def _decide(entry: ImportEntry, policy: Policy, location: str, *, nested: bool) -> ImportVerdict:
    capability = classify_import(entry)
    if nested:
        # Inside a component only the top-level imports reach the host; nested modules
        # import what the component wires to them. Their imports are held to explicit deny
        # and warn rules (a lowered socket call betrays intent), never to the defaults.
        rule = policy.matching_rule(entry, capability)
        if rule is None or rule.action is Decision.ALLOW:
            ruling = Ruling(Decision.INFO, "nested: wired inside the component")
        else:
            ruling = policy.decide(entry, capability)
    else:
        ruling = policy.decide(entry, capability)
        if (
            policy.preview1_strict
            and is_preview1(entry)
            and entry.name not in PREVIEW1_STANDARD
            and ruling.decision is not Decision.DENY
        ):
            ruling = Ruling(Decision.DENY, PREVIEW1_RULE, "not one of the 46 standard functions")
    return ImportVerdict(
        location=location,
        module=entry.module,
        name=entry.name,
        kind=entry.kind,
        capability=capability,
        decision=ruling.decision,
        reason=ruling.rule,
        note=ruling.note,
        policy=policy.name,
    )


def _decide_export(
    name: str, kind: ExternKind, capability: Capability, policy: Policy
) -> ImportVerdict:
    """Exports are held to deny and warn rules only: an export asks the host for nothing."""
    probe = ImportEntry(name, "", kind, 0)
    rule = policy.matching_rule(probe, capability)
    ruling = Ruling(Decision.ALLOW, "exports are allowed unless a rule denies them")
    if rule is not None and rule.action is not Decision.ALLOW:
        ruling = policy.decide(probe, capability)
    return ImportVerdict(
        location="",
        module=name,
        name="",
        kind=kind,
        capability=capability,
        decision=ruling.decision,
        reason=ruling.rule,
        note=ruling.note,
        policy=policy.name,
        direction="export",
    )


def _strictest(verdicts: Iterable[ImportVerdict]) -> ImportVerdict:
    return max(verdicts, key=lambda v: v.decision.severity)


def _import_findings(
    entry: ImportEntry, verdict: ImportVerdict, policies: Sequence[Policy], *, nested: bool
) -> list[Finding]:
    where = f" (nested {verdict.location})" if nested else ""
    subject = f"imports {verdict.display_name} ({verdict.capability}){where}"
    level = _LEVEL.get(verdict.decision)
    if level is None:
        if entry.kind in _UNBUNDLED and not nested:
            return [
                Finding(
                    RuleId.UNBUNDLED_IMPORT,
                    Level.WARNING,
                    f"{subject}: its code is not in this artifact",
                    verdict.policy,
                    verdict.location,
                    verdict.module,
                    verdict.name,
                    verdict.capability,
                )
            ]
        return []
    if verdict.reason == PREVIEW1_RULE:
        rule = RuleId.NONSTANDARD_PREVIEW1
    elif entry.kind in _UNBUNDLED:
        rule = RuleId.UNBUNDLED_IMPORT
    elif verdict.capability is Capability.UNKNOWN:
        rule = RuleId.UNKNOWN_IMPORT
    else:
        rule = RuleId.FORBIDDEN_IMPORT
    return [_finding(rule, verdict, subject)]


def _finding(rule: RuleId, verdict: ImportVerdict, subject: str) -> Finding:
    action = "denied" if verdict.decision is Decision.DENY else "warned"
    return Finding(
        rule=rule,
        level=_LEVEL[verdict.decision],
        message=f"{subject} {action} by {verdict.policy}, {verdict.reason}"
        + (f": {verdict.note}" if verdict.note else ""),
        policy=verdict.policy,
        location=verdict.location,
        module=verdict.module,
        name=verdict.name,
        capability=verdict.capability,
    )


def _module_findings(module: Module, policy: Policy, size: int) -> list[Finding]:
    out: list[Finding] = []
    rule = policy.component_rule
    if rule is ComponentRule.DENY and module.is_component:
        out.append(
            Finding(
                RuleId.WRONG_KIND,
                Level.ERROR,
                f"is a component; {policy.name} accepts core modules only",
                policy.name,
            )
        )
    elif rule is ComponentRule.REQUIRE and not module.is_component:
        out.append(
            Finding(
                RuleId.WRONG_KIND,
                Level.ERROR,
                f"is a core module; {policy.name} accepts components only",
                policy.name,
            )
        )
    limit = policy.size_limit
    if limit is not None and size > limit:
        out.append(
            Finding(
                RuleId.LIMIT_EXCEEDED,
                Level.ERROR,
                f"is {size} bytes; {policy.name} allows at most {limit}",
                policy.name,
            )
        )
    limit = policy.import_limit
    if limit is not None and len(module.imports) > limit:
        out.append(
            Finding(
                RuleId.LIMIT_EXCEEDED,
                Level.ERROR,
                f"has {len(module.imports)} imports; {policy.name} allows at most {limit}",
                policy.name,
            )
        )
    names = [e.name for e in module.exports]
    for requirement in policy.export_requirements:
        if not requirement.satisfied_by(names):
            wanted = " or ".join(requirement.any_of)
            out.append(
                Finding(
                    RuleId.MISSING_EXPORT,
                    Level.ERROR,
                    f"does not export {wanted}, which {policy.name} requires",
                    policy.name,
                )
            )
    return out


def scan_file(
    path: Path, policies: Sequence[Policy], *, display: str | None = None
) -> TargetReport:
    """Scan one file; a malformed or unreadable file gives a report with `error` set."""
    shown = display if display is not None else display_path(path)
    try:
        with open_binary(path) as data:
            size = len(data)
            module = parse(data)
    except WasmParseError as e:
        names = ", ".join(p.name for p in policies)
        finding = Finding(RuleId.UNPARSEABLE, Level.ERROR, f"cannot be parsed: {e}", names)
        return TargetReport(shown, None, size, (), (finding,), error=str(e))
    except InputError as e:
        return TargetReport(shown, None, None, (), (), error=e.message)
    return evaluate(module, policies, path=shown, size=size)


def scan_paths(
    targets: Sequence[str | Path],
    policies: Sequence[Policy],
    modules: ReferenceModules | None = None,
) -> ScanReport:
    """Scan files, directories (recursively, `*.wasm`) and artifacts (references: their
    Wasm layers, as `modules` opens them) against all `policies`."""
    if not policies:
        raise InputError("no policy to scan against")
    reports: list[TargetReport] = []
    for target in targets:
        if isinstance(target, str) and looks_like_reference(target):
            reports.extend(scan_reference(target, policies, modules))
            continue
        path = Path(target)
        if path.is_dir():
            files = find_wasm_files(path)
            if not files:
                reports.append(
                    TargetReport(
                        display_path(path),
                        None,
                        None,
                        (),
                        (),
                        error="no *.wasm files found under this directory",
                    )
                )
            reports.extend(scan_file(f, policies) for f in files)
        else:
            reports.append(scan_file(path, policies))
    return ScanReport(tuple(p.name for p in policies), tuple(reports))


def scan_reference(
    text: str, policies: Sequence[Policy], modules: ReferenceModules | None
) -> list[TargetReport]:
    """Scan every module of an artifact, as `modules` opens them; an artifact that cannot
    be read is a target with an error (remote when a registry failed)."""
    if modules is None:
        error = "artifact references are scanned by the command line, or with `modules`"
        return [TargetReport(text, None, None, (), (), error=error)]
    try:
        with modules(text) as found:
            return [scan_file(path, policies, display=name) for name, path in found]
    except InputError as e:
        return [TargetReport(text, None, None, (), (), error=e.message)]
    except RemoteError as e:
        return [TargetReport(text, None, None, (), (), error=e.message, remote=True)]


def find_wasm_files(root: Path) -> list[Path]:
    """`*.wasm` files under `root`, sorted; symlinked directories are not followed."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(
            Path(dirpath, name)
            for name in sorted(filenames)
            if name.endswith(".wasm") and Path(dirpath, name).is_file()
        )
    return found


def display_path(path: Path) -> str:
    """A path as text that can always be printed: undecodable bytes become `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
