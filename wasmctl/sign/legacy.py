"""cosign's tag-based signatures (cosign v1/v2, still everywhere): read and verify.

Signatures live under the tag `sha256-<hex>.sig` as an image whose layers are
"simple signing" payloads (`application/vnd.dev.cosign.simplesigning.v1+json`) naming the
signed manifest digest; attestations live under `.att` as layers holding DSSE envelopes
(`application/vnd.dsse.envelope.v1+json`). The signature, certificate, chain and Rekor
bundle are layer annotations (sigstore/cosign specs/SIGNATURE_SPEC.md; mind the prefixes:
`dev.cosignproject.cosign/signature` but `dev.sigstore.cosign/...` for the rest).

A keyless signature's Rekor bundle holds a signed entry timestamp but no inclusion proof,
and early Fulcio certificates have no SCT: the SET gives the time at which the certificate
must have been valid and chained to a CA of the trusted root.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import replace

from cryptography import x509

from wasmctl import _json
from wasmctl.errors import InternalError, SignatureError
from wasmctl.sign.bundle import BundleError, Envelope, Statement, TlogEntry
from wasmctl.sign.keys import PublicKey, verify_signature
from wasmctl.sign.policy import IdentityPolicy, KeyPolicy, Policy, Signer, certificate_signer
from wasmctl.sign.policy import key_signer as signer_of_key
from wasmctl.sign.tlog import Verifier, verify_entry
from wasmctl.sign.verifier import (
    Check,
    Expectation,
    TrustSource,
    certificate_key,
    envelope_verifies,
    verify_certificate,
)

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
PREDICATE_ANNOTATION = "predicateType"


def signed_digest(payload: bytes) -> str:
    """The manifest digest a simple-signing payload names (either key casing cosign used)."""
    try:
        data = json.loads(payload)
        critical = data.get("critical") or data.get("Critical")
        image = critical.get("image") or critical.get("Image")
        digest = image.get("docker-manifest-digest") or image.get("Docker-manifest-digest")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, RecursionError):
        raise SignatureError("not a cosign simple-signing payload") from None
    if not isinstance(digest, str):
        raise SignatureError("the simple-signing payload names no manifest digest")
    return digest


def verify_simple_signing(
    payload: bytes,
    annotations: Mapping[str, str],
    expected: Expectation,
    policy: Policy,
    trust: TrustSource,
    *,
    source: str,
) -> Check:
    """One `.sig` layer: its payload, signature and (keyless) certificate and SET."""
    fmt = "cosign-simplesigning"
    try:
        certificate = certificate_annotation(annotations)
        claimed = certificate_signer(certificate) if certificate else None
        subject = signed_digest(payload)
    except (SignatureError, BundleError) as e:
        return Check(source, fmt, error=e.message)
    found = Check(source, fmt, claimed, (subject,), None, BUNDLE_ANNOTATION in annotations)
    try:
        if expected.predicate_type is not None:
            raise SignatureError(f"a signature, not an attestation of {expected.predicate_type}")
        if subject != expected.digest:
            raise SignatureError(f"the payload signs {subject}, not {expected.digest}")
        signature = _b64(annotations.get(SIGNATURE_ANNOTATION), "signature annotation")
        signer = _verify_signer(
            certificate,
            annotations,
            policy,
            trust,
            verifies=lambda key: verify_signature(key, signature, payload),
            signature=signature,
            digest=hashlib.sha256(payload).digest(),
            envelope=None,
        )
    except (SignatureError, BundleError) as e:
        return replace(found, error=e.message)
    return Check(source, fmt, signer, found.subjects, None, found.logged)


def verify_attestation_layer(
    raw_envelope: bytes,
    annotations: Mapping[str, str],
    expected: Expectation,
    policy: Policy,
    trust: TrustSource,
    *,
    source: str,
) -> Check:
    """One `.att` layer: a DSSE envelope holding an in-toto statement (v0.1 or v1)."""
    fmt = "cosign-attestation"
    try:
        certificate = certificate_annotation(annotations)
        claimed = certificate_signer(certificate) if certificate else None
        envelope = Envelope.from_json(
            _json.loads(raw_envelope, "attestation envelope", BundleError), "attestation envelope"
        )
        statement = Statement.from_bytes(envelope.payload)
    except (SignatureError, BundleError) as e:
        return Check(source, fmt, error=e.message)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return Check(source, fmt, error=f"not JSON ({e})")
    subjects = tuple(statement.digests())
    found = Check(
        source, fmt, claimed, subjects, statement.predicate_type, BUNDLE_ANNOTATION in annotations
    )
    try:
        if expected.digest not in subjects:
            raise SignatureError(f"the statement is about {', '.join(subjects)}")
        wanted = expected.predicate_type
        if wanted is not None and statement.predicate_type != wanted:
            raise SignatureError(f"predicate type {statement.predicate_type}, not {wanted}")
        signer = _verify_signer(
            certificate,
            annotations,
            policy,
            trust,
            verifies=lambda key: envelope_verifies(envelope, key),
            signature=envelope.signatures[0].sig,
            digest=None,
            envelope=envelope,
        )
    except (SignatureError, BundleError) as e:
        return replace(found, error=e.message)
    return Check(
        source,
        fmt,
        signer,
        subjects,
        statement.predicate_type,
        found.logged,
        statement=statement,
        certificate=certificate,
    )


def _verify_signer(
    certificate: x509.Certificate | None,
    annotations: Mapping[str, str],
    policy: Policy,
    trust: TrustSource,
    *,
    verifies: Callable[[PublicKey], bool],
    signature: bytes,
    digest: bytes | None,
    envelope: Envelope | None,
) -> Signer:
    """Check the signature with the policy's keys or the certificate, and the Rekor SET."""
    entry = _rekor_entry(annotations)
    verifier: Verifier
    if isinstance(policy, KeyPolicy):
        key = next((k for k in policy.keys if verifies(k)), None)
        if key is None:
            raise SignatureError(f"the signature does not verify with {policy.source}")
        verifier, signer = key, signer_of_key(key)
    elif isinstance(policy, IdentityPolicy):
        if certificate is None:
            raise SignatureError("signed with a key, but the policy trusts identities")
        if entry is None:
            raise SignatureError("a keyless signature without a Rekor bundle (no trusted time)")
        signer = certificate_signer(certificate)
        problems = policy.mismatches(signer)
        if problems:
            raise SignatureError("; ".join(problems))
        if not verifies(certificate_key(certificate)):
            raise SignatureError("the signature does not verify with the certificate's key")
        verifier = certificate
    else:
        raise InternalError(f"no verification for a {type(policy).__name__}")
    if entry is not None:
        logged = verify_entry(
            entry,
            trust.root(),
            signature=signature,
            verifier=verifier,
            digest=digest,
            envelope=envelope,
        )
        if certificate is not None and isinstance(policy, IdentityPolicy):
            if logged.integrated_time is None:
                # the certificate is valid for minutes: without the log's time, no time
                raise SignatureError("a keyless signature whose log entry has no integrated time")
            intermediates = [c for c in _chain(annotations) if c.issuer != c.subject]
            verify_certificate(
                certificate,
                intermediates,
                [logged.integrated_time],
                trust.root(),
                require_sct=False,
            )
    return signer


def _rekor_entry(annotations: Mapping[str, str]) -> TlogEntry | None:
    """The `dev.sigstore.cosign/bundle` annotation as a log entry with a SET."""
    text = annotations.get(BUNDLE_ANNOTATION)
    if not text:
        return None
    try:
        data = json.loads(text)
        payload = data["Payload"]
        body = base64.b64decode(payload["body"], validate=True)
        kind = json.loads(body)
        return TlogEntry(
            log_index=int(payload["logIndex"]),
            log_id=bytes.fromhex(payload["logID"]),
            kind=str(kind["kind"]),
            version=str(kind["apiVersion"]),
            integrated_time=int(payload["integratedTime"]),
            signed_entry_timestamp=base64.b64decode(data["SignedEntryTimestamp"], validate=True),
            inclusion_proof=None,
            body=body,
        )
    except (KeyError, TypeError, ValueError, binascii.Error, RecursionError):
        raise BundleError("malformed dev.sigstore.cosign/bundle annotation") from None


def certificate_annotation(annotations: Mapping[str, str]) -> x509.Certificate | None:
    pem = annotations.get(CERTIFICATE_ANNOTATION)
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise BundleError("malformed certificate annotation") from None


def _chain(annotations: Mapping[str, str]) -> list[x509.Certificate]:
    pem = annotations.get(CHAIN_ANNOTATION)
    if not pem:
        return []
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise BundleError("malformed certificate chain annotation") from None


def _b64(value: str | None, what: str) -> bytes:
    if not value:
        raise SignatureError(f"no {what}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise SignatureError(f"{what}: not base64") from None
