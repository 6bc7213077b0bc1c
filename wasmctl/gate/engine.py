"""The gate: every check of the policy on every target, each result recorded.

A target is resolved once, to a digest, and every later check reads that digest (a tag
moved between two checks cannot mix two artifacts into one verdict). Nothing stops at the
first failure; a check that cannot run because resolution failed is reported as skipped.
"""

from __future__ import annotations

import enum
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wasmctl.errors import DeniedError, InputError, RemoteError, WasmctlError, exit_code_for
from wasmctl.gate.policy import GatePolicy, KeylessAuthority, Rules, Scan, Signatures
from wasmctl.gate.targets import Origin, Target, collect
from wasmctl.oci.artifact import Artifact, ArtifactKind, LaunchContext
from wasmctl.oci.reference import LayoutReference, Reference, RegistryReference
from wasmctl.oci.source import RegistryOptions
from wasmctl.sign.policy import Policy, Signer
from wasmctl.sign.verifier import TrustSource

SCHEMA = "wasmctl.gate/v1"


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


class Verdict(enum.StrEnum):
    PASS = "pass"
    DENY = "deny"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    remote: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True)
class TargetResult:
    target: str
    origin: Origin | None
    checks: tuple[CheckResult, ...] = ()
    reference: str | None = None
    digest: str | None = None
    format: str | None = None
    override: str | None = None
    skipped: str | None = None

    @property
    def verdict(self) -> Verdict:
        if self.skipped is not None:
            return Verdict.SKIPPED
        if any(c.status is Status.FAIL for c in self.checks):
            return Verdict.DENY
        if any(c.status is Status.ERROR for c in self.checks):
            return Verdict.ERROR
        return Verdict.PASS

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "origin": self.origin.to_json() if self.origin else None,
            "verdict": self.verdict.value,
            "reference": self.reference,
            "digest": self.digest,
            "format": self.format,
            "override": self.override,
            "skipped": self.skipped,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True)
class GateReport:
    policy: str
    targets: tuple[TargetResult, ...]

    @property
    def verdict(self) -> Verdict:
        verdicts = {t.verdict for t in self.targets}
        if Verdict.DENY in verdicts:
            return Verdict.DENY
        if Verdict.ERROR in verdicts:
            return Verdict.ERROR
        return Verdict.PASS

    @property
    def exit_code(self) -> int:
        """0 pass, 1 denied, 3 a registry could not be reached, 2 any other error. A gate
        fails closed: an unreachable registry is never a pass."""
        remote = any(c.remote for t in self.targets for c in t.checks)
        return exit_code_for(self.verdict, remote=remote)

    def to_json(self) -> dict[str, Any]:
        counts = {v.value: sum(t.verdict is v for t in self.targets) for v in Verdict}
        return {
            "schema": SCHEMA,
            "policy": self.policy,
            "verdict": self.verdict.value,
            "counts": counts,
            "targets": [t.to_json() for t in self.targets],
        }


@dataclass(frozen=True)
class GateOptions:
    """How to reach artifacts: registries, or only a local layout (`offline`)."""

    registry: RegistryOptions | None = None
    offline: bool = False
    layout: Path | None = None
    trusted_root: Path | None = None


def run_gate(arguments: Sequence[str], policy: GatePolicy, options: GateOptions) -> GateReport:
    """Gate every target named by `arguments` (references, layouts, manifests)."""
    targets = collect(list(arguments), policy.runtime_classes)
    if not targets:
        raise InputError("no targets: the manifests name no containers")
    trust = TrustSource(
        options.trusted_root or policy.trusted_root,
        offline=options.offline or policy.offline_root,
    )
    # one session per registry for the whole gate: resolution, modules and signatures of a
    # target share one client, and nothing is fetched twice
    with options.registry or RegistryOptions() as registry:
        gate = _Gate(policy, options, trust, registry)
        return GateReport(policy.source, tuple(gate.target(t) for t in targets))


@dataclass
class _Resolved:
    reference: Reference  # pinned to the digest; for --offline, the local layout
    shown: str
    digest: str
    artifact: Artifact


class _Gate:
    def __init__(
        self,
        policy: GatePolicy,
        options: GateOptions,
        trust: TrustSource,
        registry: RegistryOptions,
    ) -> None:
        self.policy = policy
        self.options = options
        self.trust = trust
        self.registry = registry
        self._scan_policies: dict[Scan, list[Any]] = {}
        self._done: dict[tuple[str, bool, LaunchContext | None], TargetResult] = {}

    def target(self, target: Target) -> TargetResult:
        """Gate one target; an image named again (by many manifests, run the same way) is
        gated once."""
        launch = _launch(target)
        key = (target.reference, target.wasm_runtime, launch)
        if key not in self._done:
            self._done[key] = self._gate(target, launch)
        return replace(self._done[key], target=target.reference, origin=target.origin)

    def _gate(self, target: Target, launch: LaunchContext | None) -> TargetResult:
        """Every check on one target. An image is Wasm, and gated, when a runtime would run
        it as Wasm (its format, platform, layers, entrypoint, crun annotations on the image
        or the pod: `wasm_evidence`) or its pod asks for a Wasm runtime class; only an image
        with none of these is an ordinary container, skipped. An image that cannot be read
        is never ordinary: it is an error (exit 3 for an unreachable registry)."""
        from wasmctl.oci.reference import parse_reference

        try:
            ref = parse_reference(target.reference)
        except InputError as e:
            return TargetResult(
                target.reference, target.origin, (CheckResult("resolve", Status.ERROR, e.message),)
            )
        shown = str(ref)
        rules, override = self.policy.rules_for(shown)
        checks: list[CheckResult | None] = [
            self._registry(ref, rules),
            self._pin_syntax(ref, rules),
        ]
        try:
            resolved = self._resolve(ref, launch)
        except WasmctlError as e:
            return self._unresolved(target, shown, override, checks, e)
        if resolved.artifact.kind is ArtifactKind.UNKNOWN:
            return self._not_wasm(target, shown, override, checks, resolved)
        checks[1] = self._pin(ref, rules, resolved)
        artifact = resolved.artifact
        resolve_details = {"wasmEvidence": list(artifact.wasm_evidence)}
        checks.append(
            CheckResult(
                "resolve",
                Status.PASS,
                f"{artifact.kind.value} artifact {resolved.digest}" + _because(artifact),
                resolve_details if artifact.wasm_evidence else {},
            )
        )
        checks.append(self._format(rules, resolved))
        with self._modules(resolved) as modules:
            modules = _runnable(resolved, launch, modules)
            checks.append(self._size(rules, modules))
            checks.append(self._scan(rules, modules))
        checks.append(self._signatures(rules, resolved))
        checks += self._attestations(rules, resolved)
        return TargetResult(
            target.reference,
            target.origin,
            tuple(c for c in checks if c is not None),
            resolved.shown,
            resolved.digest,
            resolved.artifact.kind.value,
            override,
        )

    # -- resolution --------------------------------------------------------------------

    def _resolve(self, ref: Reference, launch: LaunchContext | None = None) -> _Resolved:
        from wasmctl.oci.source import open_artifact

        if isinstance(ref, RegistryReference) and self.options.offline:
            ref = self._offline_reference(ref)
        with open_artifact(ref, launch, self.registry) as (_, artifact):
            digest = artifact.descriptor.digest
        if isinstance(ref, LayoutReference):
            pinned: Reference = LayoutReference(ref.path, None, digest, ref.archive)
        else:
            pinned = RegistryReference(ref.registry, ref.repository, ref.tag, digest)
        return _Resolved(pinned, str(ref), digest, artifact)

    def _offline_reference(self, ref: RegistryReference) -> LayoutReference:
        """With --offline, a registry reference is read from the local layout: by digest
        when pinned, else by a tag equal to the whole reference (`copy -r REF oci:DIR:REF`)."""
        if self.options.layout is None:
            raise InputError(
                f"{ref}: --offline reads registry references from a local layout",
                hint="give --layout DIR (filled with `wasmctl copy -r REF oci:DIR:REF`)",
            )
        if ref.digest:
            return LayoutReference(self.options.layout, None, ref.digest)
        return LayoutReference(self.options.layout, str(ref), None)

    def _unresolved(
        self,
        target: Target,
        shown: str,
        override: str | None,
        checks: list[CheckResult | None],
        error: WasmctlError,
    ) -> TargetResult:
        from wasmctl.oci.artifact import NoWasmManifestError

        if (
            isinstance(error, NoWasmManifestError)
            and not error.evidence
            and not target.wasm_runtime
        ):
            return TargetResult(
                target.reference,
                target.origin,
                reference=shown,
                override=override,
                skipped=_ordinary(target),
            )
        remote = isinstance(error, RemoteError)
        status = Status.FAIL if isinstance(error, NoWasmManifestError) else Status.ERROR
        evidence = error.evidence if isinstance(error, NoWasmManifestError) else ()
        details = {"wasmEvidence": list(evidence)} if evidence else {}
        failed = CheckResult("resolve", status, error.message, details, remote=remote)
        rest = [
            CheckResult(name, Status.SKIP, "not evaluated: the artifact was not resolved")
            for name in ("format", "size", "scan", "signature", "attestation")
        ]
        kept = tuple(c for c in checks if c is not None)
        return TargetResult(
            target.reference, target.origin, (*kept, failed, *rest), shown, override=override
        )

    def _not_wasm(
        self,
        target: Target,
        shown: str,
        override: str | None,
        checks: list[CheckResult | None],
        resolved: _Resolved,
    ) -> TargetResult:
        evidence = resolved.artifact.wasm_evidence
        if not target.wasm_runtime and not evidence:
            return TargetResult(
                target.reference,
                target.origin,
                reference=shown,
                digest=resolved.digest,
                override=override,
                skipped=_ordinary(target),
            )
        message = f"{resolved.digest} is not a Wasm artifact"
        if evidence:
            message = (
                f"{resolved.digest} would run as Wasm ({'; '.join(evidence)}), but it is no "
                "Wasm format wasmctl can check"
            )
        details = {"wasmEvidence": list(evidence)} if evidence else {}
        failed = CheckResult("resolve", Status.FAIL, message, details)
        kept = tuple(c for c in checks if c is not None)
        return TargetResult(
            target.reference,
            target.origin,
            (*kept, failed),
            shown,
            resolved.digest,
            ArtifactKind.UNKNOWN.value,
            override,
        )

    @contextmanager
    def _modules(self, resolved: _Resolved) -> Iterator[list[tuple[str, Path]] | WasmctlError]:
        """The artifact's module files, fetched once for the size and scan checks, from the
        manifest resolution chose (read again, an index could pick another without the pod's
        annotations), named by their path in the image (a compat layer) or their title."""
        from wasmctl.oci.artifact import extract_modules
        from wasmctl.oci.source import open_source

        with tempfile.TemporaryDirectory(prefix="wasmctl-gate-") as work, ExitStack() as stack:
            modules: list[tuple[str, Path]] | WasmctlError
            try:
                # kept open while the files are read: a layout's raw layers are its blob
                # files, and an archive's layout lives in a temporary directory
                source = stack.enter_context(open_source(resolved.reference, self.registry))
                extracted = extract_modules(source, resolved.artifact, Path(work))
                modules = [(m.name, m.path) for m in extracted]
            except WasmctlError as e:
                modules = e
            yield modules

    # -- checks --------------------------------------------------------------------------

    def _registry(self, ref: Reference, rules: Rules) -> CheckResult | None:
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

    def _pin_syntax(self, ref: Reference, rules: Rules) -> CheckResult | None:
        """Before resolution: what the reference says (refined once the digest is known)."""
        if rules.pin == "tag" or not isinstance(ref, RegistryReference):
            return None
        if ref.digest:
            return CheckResult("pin", Status.PASS, f"pinned to {ref.digest}")
        if rules.pin == "digest":
            return CheckResult("pin", Status.FAIL, "a tag, not a digest (pin: digest)")
        return CheckResult("pin", Status.PASS, "a tag (pin: record)")

    def _pin(self, ref: Reference, rules: Rules, resolved: _Resolved) -> CheckResult | None:
        if rules.pin == "tag" or not isinstance(ref, RegistryReference):
            return None
        if ref.digest:
            return CheckResult("pin", Status.PASS, f"pinned to {ref.digest}")
        pinned = f"{ref.name}@{resolved.digest}"
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

    def _format(self, rules: Rules, resolved: _Resolved) -> CheckResult | None:
        if not rules.formats:
            return None
        kind = resolved.artifact.kind.value
        if kind in rules.formats:
            return CheckResult("format", Status.PASS, f"{kind} is allowed")
        return CheckResult(
            "format", Status.FAIL, f"{kind} is not one of {', '.join(rules.formats)}"
        )

    def _size(
        self, rules: Rules, modules: list[tuple[str, Path]] | WasmctlError
    ) -> CheckResult | None:
        limit = rules.max_module_bytes
        if limit is None:
            return None
        if isinstance(modules, WasmctlError):
            return _error("size", modules)
        large = {name: p.stat().st_size for name, p in modules if p.stat().st_size > limit}
        if large:
            listed = ", ".join(f"{n} ({s:,} bytes)" for n, s in large.items())
            return CheckResult("size", Status.FAIL, f"larger than {limit:,} bytes: {listed}")
        return CheckResult("size", Status.PASS, f"{len(modules)} module(s) within {limit:,} bytes")

    def _scan(
        self, rules: Rules, modules: list[tuple[str, Path]] | WasmctlError
    ) -> CheckResult | None:
        if rules.scan is None:
            return None
        if isinstance(modules, WasmctlError):
            return _error("scan", modules)
        from wasmctl.scan import load_policy_file, load_preset, scan_file
        from wasmctl.scan.model import Level
        from wasmctl.scan.model import Verdict as ScanVerdict

        policies = self._scan_policies.get(rules.scan)
        if policies is None:
            policies = [load_preset(p) for p in rules.scan.presets]
            policies += [load_policy_file(p) for p in rules.scan.policies]
            self._scan_policies[rules.scan] = policies
        denied, errors = [], []
        for name, path in modules:
            report = scan_file(path, policies, display=name)
            if report.verdict is ScanVerdict.DENY:
                denied += [
                    f"{name}: {f.message}" for f in report.findings if f.level is Level.ERROR
                ]
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

    def _policies(self, signatures: Signatures) -> list[Policy]:
        from wasmctl.sign.keys import load_public_key_file
        from wasmctl.sign.policy import KeyPolicy

        policies: list[Policy] = [_identity(a) for a in signatures.keyless]
        if signatures.keys:
            keys = [load_public_key_file(path) for path in signatures.keys]
            policies.append(KeyPolicy(tuple(keys), ", ".join(p.name for p in signatures.keys)))
        return policies

    def _verified(
        self, resolved: _Resolved, signatures: Signatures, predicate_type: str | None
    ) -> tuple[dict[str, Signer], list[str], list[str]]:
        """Sources that verify under any authority, with their signers; what was found;
        problems met."""
        from wasmctl.sign.targets import verify_reference

        ok: dict[str, Signer] = {}
        found: list[str] = []
        problems: list[str] = []
        for policy in self._policies(signatures):
            result = verify_reference(
                resolved.reference,
                policy,
                self.trust,
                self.registry,
                predicate_type=predicate_type,
            )
            for check in result.checks:
                if check.ok:
                    ok.setdefault(check.source, check.signer or Signer())
            for check in result.checks:
                who = check.signer.describe() if check.signer else "unknown signer"
                line = f"{check.source}: {who}" + (f" ({check.error})" if check.error else "")
                if line not in found:
                    found.append(line)
            problems += [p for p in result.problems if p not in problems]
        return ok, found, problems

    def _signatures(self, rules: Rules, resolved: _Resolved) -> CheckResult | None:
        """Passes when `required` distinct signers verify: copies of one signature (under
        two referrers, a `.sig` layer twice, a bundle and a legacy layer) and signatures by
        one key or one keyless identity count once (`distinct_signers`)."""
        from wasmctl.sign.policy import distinct_signers

        signatures = rules.signatures
        if signatures is None:
            return None
        try:
            ok, found, problems = self._verified(resolved, signatures, None)
        except WasmctlError as e:
            return _error("signature", e)
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

    def _attestations(self, rules: Rules, resolved: _Resolved) -> list[CheckResult]:
        out = []
        for predicate_type in rules.attestations:
            if rules.signatures is None:
                out.append(
                    CheckResult(
                        "attestation",
                        Status.ERROR,
                        "attestations need `signatures` (whose keys or identities "
                        "must have signed them)",
                    )
                )
                continue
            try:
                ok, found, _ = self._verified(resolved, rules.signatures, predicate_type)
            except WasmctlError as e:
                out.append(_error("attestation", e))
                continue
            details = {"predicateType": predicate_type, "verified": sorted(ok), "found": found}
            if ok:
                out.append(
                    CheckResult(
                        "attestation",
                        Status.PASS,
                        f"{predicate_type} attestation verifies",
                        details,
                    )
                )
            else:
                what = "; ".join(found) if found else "none found"
                out.append(
                    CheckResult(
                        "attestation",
                        Status.FAIL,
                        f"no verified {predicate_type} attestation: {what}",
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


def _error(check: str, error: WasmctlError) -> CheckResult:
    status = Status.FAIL if isinstance(error, _NoModuleError) else Status.ERROR
    return CheckResult(check, status, error.message, remote=isinstance(error, RemoteError))


def _ordinary(target: Target) -> str:
    runtime = target.origin.runtime_class if target.origin else None
    on = f"runtime class {runtime}" if runtime else "the default runtime"
    return f"an ordinary container image on {on}, not Wasm"


def _launch(target: Target) -> LaunchContext | None:
    """How the target's pod asks the runtime to run it: crun's annotations, and the
    container's command and args (which decide crun's `-smart` values, and which file of a
    compat image runs). None when the pod adds nothing to the image."""
    if not target.annotations and target.command is None and target.args is None:
        return None
    return LaunchContext(target.annotations, target.command, target.args)


def _because(artifact: Artifact) -> str:
    """The resolve message's note on an image that is Wasm only by how it would be run."""
    if artifact.kind is not ArtifactKind.COMPAT or not artifact.wasm_evidence:
        return ""
    config = artifact.config or {}
    arch, os_name = str(config.get("architecture", "")), str(config.get("os", ""))
    if arch.lower().startswith("wasm") and os_name.lower().startswith("wasi"):
        return ""
    return f" (labelled {os_name}/{arch}, run as Wasm: {'; '.join(artifact.wasm_evidence)})"


def _runnable(
    resolved: _Resolved,
    launch: LaunchContext | None,
    modules: list[tuple[str, Path]] | WasmctlError,
) -> list[tuple[str, Path]] | WasmctlError:
    """The modules, when they include what a runtime would run; else a denial.

    An image that runs as Wasm but holds no module wasmctl can read, or whose compat
    entrypoint (args[0]) is not one of the modules found (a file not named `*.wasm`, a
    link), is refused: what would run was not scanned."""
    from wasmctl.oci import media_types as mt
    from wasmctl.oci.artifact import entrypoint_path

    if isinstance(modules, WasmctlError):
        return modules
    artifact = resolved.artifact
    if artifact.kind is ArtifactKind.WASMCLOUD_PROVIDER:
        return modules  # a provider archive holds native code, not a module to scan
    if not modules:
        why = "; ".join(artifact.wasm_evidence) or artifact.kind.value
        return _NoModuleError(
            f"{resolved.digest}: no Wasm module found in its layers, though it would run "
            f"as Wasm ({why})"
        )
    raw_layers = any(
        layer.media_type in mt.RAW_WASM_LAYER_TYPES for layer in artifact.manifest.layers
    )
    if artifact.kind is ArtifactKind.COMPAT and not raw_layers:
        # runwasi runs Wasm layers where there are some; else a runtime runs args[0]
        entry = entrypoint_path(artifact.config, launch)
        if entry is not None and entry not in {name.lstrip("/") for name, _ in modules}:
            found = ", ".join(name for name, _ in modules)
            return _NoModuleError(
                f"{resolved.digest}: the entrypoint /{entry}, which a runtime would run as "
                f"Wasm, is not among the modules found in its layers ({found})"
            )
    return modules


class _NoModuleError(DeniedError):
    """What a runtime would run is not a module the gate could check (a denial)."""
