"""Signing and verifying what users point at: a local file, or an artifact by reference.

A file's signature is a bundle beside it (`FILE.sigstore.json`, as `cosign sign-blob
--bundle`); an artifact's is a referrer of its manifest. Verification collects every
signature found, checks each one, and passes when signatures by at least `required`
distinct signers verify (keys by their SPKI digest, keyless signers by identity and issuer:
copies of one signature, or many signatures by one key, are one signer). One trusted
signature is enough by default, whatever else is stored beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasmctl._files import open_regular, read_limited, replace_atomically
from wasmctl.errors import InputError
from wasmctl.oci.models import Descriptor
from wasmctl.oci.reference import Reference, RegistryReference
from wasmctl.oci.source import RegistryOptions, Source, open_source
from wasmctl.sign.bundle import (
    BUNDLE_V03,
    COSIGN_SIGN_PREDICATE,
    MAX_BUNDLE,
    Bundle,
    BundleError,
    Statement,
    statement_for,
)
from wasmctl.sign.legacy import DSSE_LAYER, verify_attestation_layer, verify_simple_signing
from wasmctl.sign.policy import Policy, Signer, distinct_signers
from wasmctl.sign.predicate import Predicate
from wasmctl.sign.signer import SigningBackend
from wasmctl.sign.storage import MAX_SIGNATURE_BLOB, Candidate, bundle_referrer, find_candidates
from wasmctl.sign.verifier import Check, Expectation, TrustSource, verify_bundle

SCHEMA = "wasmctl.verify/v1"
BUNDLE_SUFFIX = ".sigstore.json"


@dataclass(frozen=True)
class Verification:
    """Every signature found for a target, each one's result, and the verdict."""

    target: str
    digest: str
    policy: dict[str, Any]
    required: int
    checks: tuple[Check, ...]
    problems: tuple[str, ...] = ()
    predicate_type: str | None = None

    @property
    def verified(self) -> int:
        """Signatures that verify (copies by one signer each count here)."""
        return sum(1 for c in self.checks if c.ok)

    @property
    def signers(self) -> int:
        """Distinct signers among the signatures that verify: what `required` counts."""
        return len(set(self._numbers()))

    def _numbers(self) -> list[int]:
        verified = [c for c in self.checks if c.ok]
        return distinct_signers([c.signer or Signer() for c in verified])

    def duplicates(self) -> dict[int, int]:
        """Index of each verified check whose signer an earlier verified check already
        counted, mapped to the index of that earlier check."""
        indexes = [i for i, c in enumerate(self.checks) if c.ok]
        first: dict[int, int] = {}
        out = {}
        for index, number in zip(indexes, self._numbers(), strict=True):
            if number in first:
                out[index] = first[number]
            else:
                first[number] = index
        return out

    @property
    def passed(self) -> bool:
        return self.signers >= self.required

    def to_json(self) -> dict[str, Any]:
        duplicates = self.duplicates()
        signatures = []
        for i, check in enumerate(self.checks):
            entry = check.to_json()
            entry["duplicateOf"] = self.checks[duplicates[i]].source if i in duplicates else None
            signatures.append(entry)
        return {
            "schema": SCHEMA,
            "target": self.target,
            "digest": self.digest,
            "passed": self.passed,
            "required": self.required,
            "verified": self.verified,
            "signers": self.signers,
            "predicateType": self.predicate_type,
            "policy": self.policy,
            "signatures": signatures,
            "problems": list(self.problems),
        }


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file, read in chunks."""
    try:
        with open_regular(path, "file") as f:
            return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


def default_bundle_path(path: Path) -> Path:
    return path.with_name(path.name + BUNDLE_SUFFIX)


# -- files ------------------------------------------------------------------------------------


def sign_file(path: Path, backend: SigningBackend, bundle_path: Path | None = None) -> Path:
    """Sign a file's sha256; write the bundle atomically beside it (or to `bundle_path`)."""
    digest = file_digest(path)
    bundle = backend.sign_digest(bytes.fromhex(digest.partition(":")[2]))
    target = bundle_path or default_bundle_path(path)
    replace_atomically(target, bundle)
    return target


def attest_file(
    path: Path, predicate: Predicate, backend: SigningBackend, bundle_path: Path | None = None
) -> Path:
    """Sign an in-toto statement about a file's sha256 (named by the file's name, as
    `sigstore attest` and `cosign attest-blob` name it); write the bundle as `sign_file`."""
    if bundle_path is None:
        refuse_replacing_a_bundle(path)
    digest = file_digest(path)
    statement = statement_for(path.name, digest, predicate.type, predicate.content)
    check_statement_size(statement)
    bundle = backend.sign_statement(statement)
    target = bundle_path or default_bundle_path(path)
    replace_atomically(target, bundle)
    return target


def refuse_replacing_a_bundle(path: Path) -> None:
    """An attestation's bundle does not take the default place of one already there: that
    is the file's signature (or an earlier attestation), which it would silently replace."""
    target = default_bundle_path(path)
    if target.exists() or target.is_symlink():
        raise InputError(
            f"{target} exists; the attestation would replace it",
            hint="give --bundle PATH for the attestation (verify it with the same --bundle)",
        )


def verify_file(
    path: Path,
    policy: Policy,
    trust: TrustSource,
    *,
    bundle_path: Path | None = None,
    predicate_type: str | None = None,
) -> Verification:
    """Verify a file against its bundle (a message signature, or a DSSE statement about it)."""
    digest = file_digest(path)
    source = bundle_path or default_bundle_path(path)
    raw = read_limited(source, MAX_BUNDLE, "bundle", BundleError)
    bundle = Bundle.from_bytes(raw, str(source))
    expected = Expectation(digest, predicate_type)
    check = verify_bundle(bundle, expected, policy, trust, source=f"bundle {source}")
    return Verification(str(path), digest, policy.describe(), 1, (check,), (), predicate_type)


# -- artifacts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedArtifact:
    """What signing an artifact stored: the subject and the referrer holding the bundle."""

    subject: Descriptor
    referrer: Descriptor
    predicate_type: str


def sign_reference(
    ref: Reference,
    backend: SigningBackend,
    options: RegistryOptions | None = None,
    *,
    predicate_type: str = COSIGN_SIGN_PREDICATE,
    predicate: Any = None,
) -> SignedArtifact:
    """Sign the manifest (or index) `ref` resolves to and store the bundle as its referrer."""
    with open_source(ref, options, write=True) as store:
        subject = store.subject()
        statement = statement_for(subject_name(ref), subject.digest, predicate_type, predicate)
        bundle = backend.sign_statement(statement)
        blobs, manifest = bundle_referrer(subject, bundle, predicate_type)
        referrer = store.attach(blobs, manifest)
    return SignedArtifact(subject, referrer, predicate_type)


def attest_reference(
    ref: Reference,
    predicate: Predicate,
    backend: SigningBackend,
    options: RegistryOptions | None = None,
) -> SignedArtifact:
    """Sign an in-toto statement of `predicate` about the manifest (or index) `ref`
    resolves to, and store the bundle as its referrer: `cosign attest`, in cosign v3's
    layout (what `attest` and `sbom --attest` write). Verified by `verify_reference` with
    the predicate's type."""
    with open_source(ref, options, write=True) as store:
        subject = store.subject()
        name = subject_name(ref)
        statement = statement_for(name, subject.digest, predicate.type, predicate.content)
        check_statement_size(statement)
        bundle = backend.sign_statement(statement)
        blobs, manifest = bundle_referrer(subject, bundle, predicate.type)
        referrer = store.attach(blobs, manifest)
    return SignedArtifact(subject, referrer, predicate.type)


# A keyless bundle's certificate, log entry and checkpoint take a few kilobytes beside the
# base64 of the statement; this leaves room for them under what readers accept.
BUNDLE_MATERIAL = 64 << 10
MAX_STATEMENT = (min(MAX_BUNDLE, MAX_SIGNATURE_BLOB) - BUNDLE_MATERIAL) // 4 * 3


def check_statement_size(statement: Statement) -> None:
    """Refuse, before anything is signed or logged, a statement too large for its bundle
    to be read back (`verify` and `gate` read bundles up to 16 MiB)."""
    size = len(statement.to_bytes())
    if size > MAX_STATEMENT:
        raise InputError(
            f"the in-toto statement would be {size} bytes, more than the {MAX_STATEMENT} "
            "a signed bundle can carry",
            hint="attest a smaller predicate (JSON escapes of non-ASCII text count too)",
        )


def subject_name(ref: Reference) -> str:
    """The statement's name for an artifact: the repository, as cosign's attestations name
    it (`registry/repository`), or the layout's directory or archive name."""
    if isinstance(ref, RegistryReference):
        return ref.name
    return ref.path.name or str(ref.path)


def verify_reference(
    ref: Reference,
    policy: Policy,
    trust: TrustSource,
    options: RegistryOptions | None = None,
    *,
    predicate_type: str | None = None,
    required: int = 1,
) -> Verification:
    """Verify the signatures (or, with `predicate_type`, the attestations) of an artifact."""
    found = find_signature_candidates(ref, options)
    return verify_candidates(found, policy, trust, predicate_type=predicate_type, required=required)


@dataclass(frozen=True)
class SignatureCandidates:
    """Every signature and attestation stored for an artifact, read once: verified against
    one policy after another (`verify_candidates`) without listing its referrers again."""

    target: str
    digest: str
    candidates: tuple[Candidate, ...]
    problems: tuple[str, ...] = ()


def find_signature_candidates(
    ref: Reference, options: RegistryOptions | None = None
) -> SignatureCandidates:
    """The signatures and attestations stored for the artifact `ref` resolves to."""
    with open_source(ref, options) as store:
        subject = store.subject()
        candidates, problems = find_candidates(store, subject.digest)
    return SignatureCandidates(str(ref), subject.digest, tuple(candidates), tuple(problems))


def verify_candidates(
    found: SignatureCandidates,
    policy: Policy,
    trust: TrustSource,
    *,
    predicate_type: str | None = None,
    required: int = 1,
) -> Verification:
    """Verify what `find_signature_candidates` found: the signatures (or, with
    `predicate_type`, the attestations of that type) under one policy."""
    wanted = predicate_type or COSIGN_SIGN_PREDICATE
    expected = Expectation(found.digest, wanted)
    checks = tuple(
        check
        for candidate in found.candidates
        if _relevant(candidate, wanted)
        for check in [_verify_candidate(candidate, expected, policy, trust)]
    )
    return Verification(
        found.target, found.digest, policy.describe(), required, checks, found.problems, wanted
    )


def _relevant(candidate: Candidate, predicate_type: str) -> bool:
    """Signatures when signatures are asked for, attestations of the type asked for.

    The referrer's predicate annotation is only a hint to skip the others; a candidate
    without one is checked (and its statement decides)."""
    if candidate.predicate_type is None:
        signature_layer = candidate.media_type != DSSE_LAYER
        return signature_layer == (predicate_type == COSIGN_SIGN_PREDICATE)
    return candidate.predicate_type == predicate_type


def _verify_candidate(
    candidate: Candidate, expected: Expectation, policy: Policy, trust: TrustSource
) -> Check:
    if candidate.media_type == BUNDLE_V03:
        try:
            bundle = Bundle.from_bytes(candidate.data, candidate.source)
        except InputError as e:
            return Check(candidate.source, "sigstore-bundle", error=e.message)
        return verify_bundle(bundle, expected, policy, trust, source=candidate.source)
    if candidate.media_type == DSSE_LAYER:
        return verify_attestation_layer(
            candidate.data, candidate.annotations, expected, policy, trust, source=candidate.source
        )
    legacy_expected = Expectation(
        expected.digest,
        None if expected.predicate_type == COSIGN_SIGN_PREDICATE else expected.predicate_type,
    )
    return verify_simple_signing(
        candidate.data,
        candidate.annotations,
        legacy_expected,
        policy,
        trust,
        source=candidate.source,
    )


# -- listing (inspect) ------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundSignature:
    """A signature or attestation stored for an artifact, described without verifying it."""

    source: str
    format: str
    kind: str
    predicate_type: str | None
    signer: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "kind": self.kind,
            "predicateType": self.predicate_type,
            "signer": self.signer,
            "error": self.error,
        }


def list_signatures(store: Source, digest: str) -> list[FoundSignature]:
    """What `inspect` shows: each stored signature's signer (identity or key hint) and what
    it is (signature, attestation and its predicate); nothing is verified here."""
    candidates, problems = find_candidates(store, digest)
    found = [_describe(c) for c in candidates]
    found += [
        FoundSignature(p.split(": ", 1)[0], "unknown", "unknown", None, "", p) for p in problems
    ]
    return found


def _describe(candidate: Candidate) -> FoundSignature:
    from wasmctl.sign.legacy import certificate_annotation
    from wasmctl.sign.policy import certificate_signer

    predicate = candidate.predicate_type
    try:
        if candidate.media_type == BUNDLE_V03:
            bundle = Bundle.from_bytes(candidate.data, candidate.source)
            statement = bundle.statement()
            predicate = statement.predicate_type if statement else predicate
            certificate = bundle.certificate
            signer = (
                certificate_signer(certificate).describe()
                if certificate
                else f"key {bundle.public_key_hint or '(no hint)'}"
            )
            fmt = "sigstore-bundle"
        else:
            certificate = certificate_annotation(candidate.annotations)
            signer = certificate_signer(certificate).describe() if certificate else "key"
            fmt = (
                "cosign-attestation"
                if candidate.media_type == DSSE_LAYER
                else ("cosign-simplesigning")
            )
    except InputError as e:
        return FoundSignature(candidate.source, "unknown", "unknown", predicate, "", e.message)
    signature = predicate in (None, COSIGN_SIGN_PREDICATE) and candidate.media_type != DSSE_LAYER
    kind = "signature" if signature else "attestation"
    return FoundSignature(candidate.source, fmt, kind, predicate, signer)
