"""The gate: every check of the policy on every target, each result recorded.

A target is resolved once, to a digest, and every later check reads that digest (a tag
moved between two checks cannot mix two artifacts into one verdict). Nothing stops at the
first failure; a check that cannot run because resolution failed is reported as skipped.

This is the runner: it reads (targets at once, an artifact's modules and signatures once)
and hands what it read to the checks (`wasmctl.gate.checks`); the results are the model's
(`wasmctl.gate.model`, whose names are importable from here too).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from wasmctl.errors import InputError, RemoteError, WasmctlError
from wasmctl.gate import checks as check
from wasmctl.gate.model import SCHEMA, CheckResult, GateReport, Status, TargetResult, Verdict
from wasmctl.gate.policy import (
    AttestationRule,
    GatePolicy,
    Rules,
    Scan,
    Signatures,
    Vulnerabilities,
)
from wasmctl.gate.targets import Target, collect
from wasmctl.oci.artifact import Artifact, ArtifactKind, LaunchContext
from wasmctl.oci.reference import LayoutReference, Reference, RegistryReference
from wasmctl.oci.source import RegistryOptions
from wasmctl.sign.verifier import TrustSource

if TYPE_CHECKING:
    from wasmctl.sign.targets import SignatureCandidates
    from wasmctl.sign.trust import TrustedRoot

__all__ = [
    "DEFAULT_JOBS",
    "SCHEMA",
    "CheckResult",
    "GateOptions",
    "GateReport",
    "Judge",
    "Status",
    "TargetResult",
    "Verdict",
    "run_gate",
]

_T = TypeVar("_T")
_R = TypeVar("_R")
_K = TypeVar("_K")
_V = TypeVar("_V")


DEFAULT_JOBS = 8


@dataclass(frozen=True)
class GateOptions:
    """How to reach artifacts: registries, or only a local layout (`offline`); and how many
    targets are resolved and checked at once (`jobs`; 1: one after another)."""

    registry: RegistryOptions | None = None
    offline: bool = False
    layout: Path | None = None
    trusted_root: Path | None = None
    jobs: int = DEFAULT_JOBS


def run_gate(arguments: Sequence[str], policy: GatePolicy, options: GateOptions) -> GateReport:
    """Gate every target named by `arguments` (references, layouts, manifests).

    The report lists the targets in the order they were collected, however many are gated
    at once: only the registry I/O overlaps, never what is reported."""
    if options.jobs < 1:
        raise InputError(f"jobs must be at least 1, not {options.jobs}")
    targets = collect(list(arguments), policy.runtime_classes)
    if not targets:
        raise InputError("no targets: the manifests name no containers")
    trust = _SharedTrust(
        options.trusted_root or policy.trusted_root,
        offline=options.offline or policy.offline_root,
    )
    # one session per registry for the whole gate: resolution, modules and signatures of a
    # target share one client, and nothing is fetched twice
    with options.registry or RegistryOptions() as registry, _Workers(options.jobs) as workers:
        gate = _Gate(policy, options, trust, registry, workers)
        return GateReport(policy.source, gate.run(targets))


class Judge:
    """The gate kept open, for a caller that judges targets as they come (the admission
    server, `wasmctl.gate.serve`): the trust, the scan policies and one session per
    registry are loaded once and shared by every call, from any number of threads.

    `judge` gates targets as `run_gate` does (sharing per digest within the call); nothing
    of one call's targets is kept for the next but what the registry sessions cache by
    digest (manifests, signatures), which can never be stale. Close it (`with`) to close
    the sessions."""

    def __init__(self, policy: GatePolicy, options: GateOptions) -> None:
        self.policy = policy
        self.options = options
        self.trust = _SharedTrust(
            options.trusted_root or policy.trusted_root,
            offline=options.offline or policy.offline_root,
        )
        self.registry = options.registry or RegistryOptions()
        self._scan_loaded: _Memo[Scan, list[Any]] = _Memo()
        self._databases: _Memo[Path | None, Any] = _Memo()
        self._stack = ExitStack()
        self._stack.enter_context(self.registry)

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def prepare(self) -> None:
        """Read what the policy names, now rather than at the first verdict: its keys, its
        scan policies, and the trusted root when a keyless signer is wanted. Raises what
        reading them raises (a missing file: an input error; TUF out of reach: remote)."""
        from wasmctl.sign.keys import load_public_key_file

        keyless = False
        scans: list[Scan] = []
        for rules in (self.policy.rules, *(o.rules for o in self.policy.overrides)):
            signers = [rules.signatures, *(a.signers for a in rules.attestations)]
            for signatures in signers:
                if signatures is None:
                    continue
                keyless = keyless or bool(signatures.keyless)
                for path in signatures.keys:
                    load_public_key_file(path)
            if rules.scan is not None:
                scans.append(rules.scan)
        gate = self._gate()
        for scan in scans:
            gate._scan_policies(scan)
        for rules in (self.policy.rules, *(o.rules for o in self.policy.overrides)):
            if rules.vulnerabilities is not None:
                gate._database(rules.vulnerabilities)
        if keyless:
            self.trust.root()

    def judge(self, targets: Sequence[Target]) -> tuple[TargetResult, ...]:
        """Every target gated, in order; the whole work in the calling thread."""
        return self._gate().run(targets)

    def resolve(self, reference: RegistryReference) -> str:
        """The digest a registry reference names now (its manifest is fetched, checked
        against the digest, and kept in the session's cache for the verdict that follows)."""
        from wasmctl.oci.reference import manifest_reference

        if reference.digest:
            return reference.digest
        session = self.registry.sessions.session(reference.registry)
        _, _, digest = session.manifest(reference.repository, manifest_reference(reference))
        return digest

    def _gate(self) -> _Gate:
        return _Gate(
            self.policy,
            self.options,
            self.trust,
            self.registry,
            _Workers(1),
            self._scan_loaded,
            self._databases,
        )


@dataclass
class _SharedTrust(TrustSource):
    """The trusted root, loaded once however many threads verify at the same time."""

    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def root(self) -> TrustedRoot:
        with self._lock:
            return super().root()


class _Workers:
    """A function run over items, `jobs` at a time; the results in the items' order."""

    def __init__(self, jobs: int) -> None:
        self._pool = (
            ThreadPoolExecutor(jobs, thread_name_prefix="wasmctl-gate") if jobs > 1 else None
        )

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def map(self, function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        if self._pool is None or len(items) < 2:
            return [function(item) for item in items]
        return list(self._pool.map(function, items))


class _Memo(Generic[_K, _V]):
    """Values by key, each computed once: the first thread to ask computes it, the others
    wait for its value (or its exception)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[_K, Future[_V]] = {}

    def get(self, key: _K, compute: Callable[[], _V]) -> _V:
        with self._lock:
            future = self._futures.get(key)
            mine = future is None
            if future is None:
                future = self._futures[key] = Future()
        if mine:
            try:
                future.set_result(compute())
            except BaseException as e:
                future.set_exception(e)
        return future.result()


@dataclass
class _Resolved:
    reference: Reference  # pinned to the digest; for --offline, the local layout
    shown: str
    digest: str
    artifact: Artifact

    @property
    def location(self) -> Reference:
        """Where the artifact is, whatever tag named it: what targets that share their
        digest-level checks (modules, signatures) have in common."""
        ref = self.reference
        if isinstance(ref, LayoutReference):
            return LayoutReference(ref.path, None, self.digest, ref.archive)
        return RegistryReference(ref.registry, ref.repository, None, self.digest)


_TargetKey = tuple[str, str | None, bool, LaunchContext | None]


def _key(target: Target) -> _TargetKey:
    """What makes two targets one: the reference (and the digest it was resolved to), and
    how it would be run."""
    return (target.reference, target.digest, target.wasm_runtime, _launch(target))


@dataclass(frozen=True)
class _Finished:
    """A target decided before its artifact's checks (unreadable, unresolved, not Wasm)."""

    target: Target
    result: TargetResult


@dataclass
class _Pending:
    """A target resolved to a Wasm artifact: its checks so far (registry, pin, resolve,
    format), waiting for those of the artifact (size, scan, signature, attestation)."""

    key: _TargetKey
    target: Target
    launch: LaunchContext | None
    rules: Rules
    override: str | None
    checks: list[CheckResult | None]
    resolved: _Resolved

    def finish(self, more: Sequence[CheckResult | None]) -> TargetResult:
        checks = [*self.checks, *more]
        return TargetResult(
            self.target.reference,
            self.target.origin,
            tuple(c for c in checks if c is not None),
            self.resolved.shown,
            self.resolved.digest,
            self.resolved.artifact.kind.value,
            self.override,
        )


def _once(
    made: list[tuple[Any, Sequence[CheckResult | None]]],
    depends: Any,
    make: Callable[[], Sequence[CheckResult | None]],
) -> Sequence[CheckResult | None]:
    """What `make` gave for equal dependencies before (compared, not hashed: a policy's
    claims are a mapping), else what it gives now."""
    for seen, value in made:
        if seen == depends:
            return value
    value = make()
    made.append((depends, value))
    return value


class _Fetched:
    """An artifact's module files, fetched on first use, once for each format it is read
    as, and kept until the stack closes."""

    def __init__(self, gate: _Gate, stack: ExitStack) -> None:
        self.gate = gate
        self.stack = stack
        self._by_kind: dict[ArtifactKind, list[tuple[str, Path]] | WasmctlError] = {}

    def get(self, resolved: _Resolved) -> list[tuple[str, Path]] | WasmctlError:
        kind = resolved.artifact.kind
        if kind not in self._by_kind:
            self._by_kind[kind] = self.stack.enter_context(self.gate._modules(resolved))
        return self._by_kind[kind]


class _Candidates:
    """The signatures stored for one artifact, looked up on first use, and only then."""

    def __init__(self, reference: Reference, registry: RegistryOptions) -> None:
        self.reference = reference
        self.registry = registry
        self._found: SignatureCandidates | WasmctlError | None = None

    def get(self) -> SignatureCandidates:
        from wasmctl.sign.targets import find_signature_candidates

        if self._found is None:
            try:
                self._found = find_signature_candidates(self.reference, self.registry)
            except WasmctlError as e:
                self._found = e
        if isinstance(self._found, WasmctlError):
            raise self._found
        return self._found


class _Gate:
    """One gate's run: targets resolved `jobs` at a time, then each artifact checked once
    for all the targets that name it (`run`)."""

    def __init__(
        self,
        policy: GatePolicy,
        options: GateOptions,
        trust: TrustSource,
        registry: RegistryOptions,
        workers: _Workers,
        scan_loaded: _Memo[Scan, list[Any]] | None = None,
        databases: _Memo[Path | None, Any] | None = None,
    ) -> None:
        self.policy = policy
        self.options = options
        self.trust = trust
        self.registry = registry
        self.workers = workers
        self._scan_loaded: _Memo[Scan, list[Any]] = scan_loaded or _Memo()
        self._databases: _Memo[Path | None, Any] = databases or _Memo()
        self._resolving: _Memo[str, threading.Lock] = _Memo()

    def run(self, targets: Sequence[Target]) -> tuple[TargetResult, ...]:
        """Every target gated. An image named again (by many manifests, run the same way) is
        gated once; targets whose references resolve to one artifact (`app:v1` and
        `app@sha256:…`) share its checks: its modules are fetched and scanned, and its
        signatures found and verified, once."""
        unique: dict[_TargetKey, Target] = {}
        for target in targets:
            unique.setdefault(_key(target), target)
        prepared = self.workers.map(self._prepare, list(unique.values()))
        done: dict[_TargetKey, TargetResult] = {}
        groups: dict[Reference, list[_Pending]] = {}
        for result in prepared:
            if isinstance(result, _Pending):
                groups.setdefault(result.resolved.location, []).append(result)
            else:
                done[_key(result.target)] = result.result
        checked = self.workers.map(self._check_artifact, list(groups.values()))
        for group, results in zip(groups.values(), checked, strict=True):
            done.update((pending.key, r) for pending, r in zip(group, results, strict=True))
        return tuple(replace(done[_key(t)], target=t.reference, origin=t.origin) for t in targets)

    def _prepare(self, target: Target) -> _Pending | _Finished:
        """The checks of one target up to its artifact's: an image is Wasm, and gated, when
        a runtime would run it as Wasm (its format, platform, layers, entrypoint, crun
        annotations on the image or the pod: `wasm_evidence`) or its pod asks for a Wasm
        runtime class; only an image with none of these is an ordinary container, skipped.
        An image that cannot be read is never ordinary: it is an error (exit 3 for an
        unreachable registry)."""
        from wasmctl.oci.reference import parse_reference

        launch = _launch(target)
        try:
            ref = parse_reference(target.reference)
        except InputError as e:
            return _Finished(
                target,
                TargetResult(
                    target.reference,
                    target.origin,
                    (CheckResult("resolve", Status.ERROR, e.message),),
                ),
            )
        shown = str(ref)
        rules, override = self.policy.rules_for(shown)
        checks: list[CheckResult | None] = [
            check.registry(ref, rules),
            check.pin_syntax(ref, rules),
        ]
        read = ref  # what is read: with a digest resolved before, that artifact
        if isinstance(ref, RegistryReference) and target.digest and not ref.digest:
            read = replace(ref, digest=target.digest)
        try:
            resolved = self._resolve(read, launch, shown)
        except WasmctlError as e:
            if _named_image(target, e):
                return _Finished(target, self._image(target, ref, read, shown, rules, checks))
            return _Finished(target, self._unresolved(target, shown, override, checks, e))
        if resolved.artifact.kind is ArtifactKind.UNKNOWN:
            if target.origin is None and not resolved.artifact.wasm_evidence:
                return _Finished(target, self._image(target, ref, read, shown, rules, checks))
            return _Finished(target, self._not_wasm(target, shown, override, checks, resolved))
        checks[1] = check.pin(ref, rules, resolved.digest)
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
        checks.append(check.artifact_format(rules, resolved.artifact))
        return _Pending(_key(target), target, launch, rules, override, checks, resolved)

    def _check_artifact(self, group: list[_Pending]) -> list[TargetResult]:
        """The checks of one artifact for every target resolved to it (in one thread): its
        modules are fetched once, its signatures found once, and each check is made once
        for each distinct rule that asks for it."""
        candidates = _Candidates(group[0].resolved.reference, self.registry)
        made: list[tuple[Any, Sequence[CheckResult | None]]] = []
        out = []
        with ExitStack() as stack:
            modules = _Fetched(self, stack)
            for pending in group:
                rules, artifact = pending.rules, pending.resolved.artifact
                # a module check depends on what would run (the format, the launch, what
                # says Wasm: `check.runnable`) and on the limits; the modules on the format only
                depends = (
                    "modules",
                    pending.launch,
                    artifact.kind,
                    artifact.wasm_evidence,
                    rules.max_module_bytes,
                    rules.scan,
                    rules.vulnerabilities,
                    rules.signatures if _reads_vex(rules) else None,
                )
                sized = _once(
                    made, depends, partial(self._module_checks, pending, modules, candidates)
                )
                signed = _once(
                    made,
                    ("signature", rules.signatures),
                    partial(self._signed, rules, candidates),
                )
                attested = _once(
                    made,
                    ("attestation", rules.signatures, rules.attestations),
                    partial(check.attestations, rules, partial(self._attested, candidates)),
                )
                out.append(pending.finish([*sized, *signed, *attested]))
        return out

    def _module_checks(
        self, pending: _Pending, modules: _Fetched, candidates: _Candidates
    ) -> list[CheckResult | None]:
        rules = pending.rules
        if rules.max_module_bytes is None and rules.scan is None and rules.vulnerabilities is None:
            return []  # nothing to fetch the modules for
        resolved = pending.resolved
        runnable = check.runnable(
            resolved.digest, resolved.artifact, pending.launch, modules.get(resolved)
        )
        return [
            check.size(rules, runnable),
            check.scan(rules, runnable, self._scan_policies),
            check.vulnerabilities(
                rules,
                runnable,
                self._database,
                resolved.digest,
                partial(self._vex_attested, rules, candidates) if _reads_vex(rules) else None,
            ),
        ]

    def _vex_attested(
        self, rules: Rules, candidates: _Candidates
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The artifact's OpenVEX attestations that verify under the rules' `signatures`
        (and those found that do not), for the vulnerabilities check."""
        from wasmctl.audit.vex import attested

        assert rules.signatures is not None  # the policy refuses vexAttestations without
        return attested(candidates.get(), check.authorities(rules.signatures), self.trust)

    def _signed(self, rules: Rules, candidates: _Candidates) -> list[CheckResult | None]:
        return [check.signature(rules, partial(self._verified, candidates))]

    def _verified(
        self, candidates: _Candidates, signatures: Signatures, predicate_type: str | None
    ) -> check.Verified:
        return check.verified(candidates.get, signatures, self.trust, predicate_type)

    def _attested(
        self, candidates: _Candidates, signers: Signatures, rule: AttestationRule
    ) -> check.Attested:
        """The attestations of the rule's type, verified under `signers`; SLSA provenance
        also judged on its content (the rule's conditions, and a GitHub Actions
        certificate's claims)."""
        from wasmctl.sign.provenance import PROVENANCE_TYPES, judge

        conditions = rule.provenance
        judged = (
            partial(judge, conditions=conditions)
            if rule.predicate_type in PROVENANCE_TYPES
            else None
        )
        return check.attested(candidates.get, signers, self.trust, rule.predicate_type, judged)

    def _database(self, rule: Vulnerabilities) -> Any:
        """The OSV database of a vulnerabilities rule, loaded once for the whole gate (for
        `gate serve`, once per policy load: a change of its files reloads the policy)."""
        from datetime import UTC, datetime

        from wasmctl.audit import db

        def load() -> Any:
            return db.load(rule.database)

        database = self._databases.get(rule.database, load)
        if rule.max_age is not None:
            db.check_age(database, db.parse_duration(rule.max_age), datetime.now(UTC))
        return database

    def _scan_policies(self, scan: Scan) -> list[Any]:
        """The policies of a scan rule, loaded once for the whole gate."""
        from wasmctl.scan import load_policy_file, load_preset

        def load() -> list[Any]:
            return [
                *(load_preset(p) for p in scan.presets),
                *(load_policy_file(p) for p in scan.policies),
            ]

        return self._scan_loaded.get(scan, load)

    # -- resolution --------------------------------------------------------------------

    def _resolve(
        self, ref: Reference, launch: LaunchContext | None = None, shown: str | None = None
    ) -> _Resolved:
        from wasmctl.oci.source import open_artifact

        if isinstance(ref, RegistryReference) and self.options.offline:
            ref = self._offline_reference(ref)
        # one thread at a time per manifest: the others then find it in the session's cache
        # (`app@sha256:…` and `app:v1@sha256:…` fetch it once)
        place = (
            f"{ref.name}@{ref.digest or ref.tag}"
            if isinstance(ref, RegistryReference)
            else str(ref)
        )
        with (
            self._resolving.get(place, threading.Lock),
            open_artifact(ref, launch, self.registry) as (_, artifact),
        ):
            digest = artifact.descriptor.digest
        if isinstance(ref, LayoutReference):
            pinned: Reference = LayoutReference(ref.path, None, digest, ref.archive)
        else:
            pinned = RegistryReference(ref.registry, ref.repository, ref.tag, digest)
        return _Resolved(pinned, shown or str(ref), digest, artifact)

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
            for name in ("format", "size", "scan", "vulnerabilities", "signature", "attestation")
        ]
        kept = tuple(c for c in checks if c is not None)
        return TargetResult(
            target.reference, target.origin, (*kept, failed, *rest), shown, override=override
        )

    def _image(
        self,
        target: Target,
        ref: Reference,
        read: Reference,
        shown: str,
        rules: Rules,
        checks: list[CheckResult | None],
    ) -> TargetResult:
        """An image named directly (not through a pod) that is no Wasm artifact, e.g. a
        container image with SLSA provenance (issue 16): judged on what applies to any OCI
        image (registry, pin, signatures, attestations with their conditions). What the
        policy asks of a Wasm module (format, size, scan, vulnerabilities) fails: it cannot
        be checked, and a check that cannot be made never passes."""
        from wasmctl.oci.source import open_source

        place = read
        if isinstance(read, RegistryReference) and self.options.offline:
            place = self._offline_reference(read)
        _, override = self.policy.rules_for(shown)
        try:
            with open_source(place, self.registry) as store:
                digest = store.subject().digest
        except WasmctlError as e:
            failed = CheckResult(
                "resolve", Status.ERROR, e.message, remote=isinstance(e, RemoteError)
            )
            kept = tuple(c for c in checks if c is not None)
            return TargetResult(
                target.reference, target.origin, (*kept, failed), shown, override=override
            )
        pinned: Reference = (
            LayoutReference(place.path, None, digest, place.archive)
            if isinstance(place, LayoutReference)
            else replace(place, digest=digest)
        )
        checks[1] = check.pin(ref, rules, digest)
        checks.append(
            CheckResult(
                "resolve",
                Status.PASS,
                f"{digest} is an OCI image, not a Wasm artifact: judged on what applies to "
                "any image (registry, pin, signatures, attestations)",
            )
        )
        if rules.formats:
            checks.append(
                CheckResult(
                    "format",
                    Status.FAIL,
                    f"an OCI image (not Wasm) is not one of {', '.join(rules.formats)}",
                )
            )
        wasm_only = (
            ("size", rules.max_module_bytes is not None),
            ("scan", rules.scan is not None),
            ("vulnerabilities", rules.vulnerabilities is not None),
        )
        checks += [
            CheckResult(name, Status.FAIL, f"{digest} is not a Wasm artifact: no module to check")
            for name, asked in wasm_only
            if asked
        ]
        candidates = _Candidates(pinned, self.registry)
        checks += self._signed(rules, candidates)
        checks += check.attestations(rules, partial(self._attested, candidates))
        kept = tuple(c for c in checks if c is not None)
        return TargetResult(
            target.reference,
            target.origin,
            kept,
            shown,
            digest,
            "image",
            override,
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


def _named_image(target: Target, error: WasmctlError) -> bool:
    """An index named directly (not through a pod) that holds no Wasm manifest and nothing
    that would make a runtime run it as Wasm: an ordinary image, judged as one."""
    from wasmctl.oci.artifact import NoWasmManifestError

    return target.origin is None and isinstance(error, NoWasmManifestError) and not error.evidence


def _reads_vex(rules: Rules) -> bool:
    """The vulnerabilities check also reads the artifact's VEX attestations."""
    return rules.vulnerabilities is not None and rules.vulnerabilities.vex_attestations


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
