"""Checking one signature: a bundle, or a legacy cosign layer, against a digest and a policy.

Every check answers one question, "does this signature prove that a trusted signer signed
exactly this digest?", and returns a `Check` holding the answer and, either way, what was
found (who signed, which digests, which predicate), so a refusal can show it next to what
the policy asked for.

Certificate-signed bundles whose log entries sigstore-python knows (hashedrekord, dsse) are
verified by sigstore-python's `Verifier` with wasmctl's policy plugged in. The rest is
checked here, with the same steps in the same order: key-signed bundles (sigstore-python
refuses bundles without a certificate, sigstore-python#1244), `intoto` log entries (#1442),
and cosign's legacy simple-signing and attestation layers, which carry a Rekor SET but no
inclusion proof. In every case the signed subject must be the digest asked about:
sigstore-python's `verify_dsse` does not look at the statement, so this module does.
"""

from __future__ import annotations

import calendar
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from wasmctl.errors import InternalError, RemoteError, SignatureError
from wasmctl.sign.bundle import (
    COSIGN_SIGN_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    Bundle,
    BundleError,
    Envelope,
    Statement,
)
from wasmctl.sign.keys import PublicKey, spki_der, supported_public_key, verify_signature
from wasmctl.sign.policy import (
    IdentityPolicy,
    KeyPolicy,
    Policy,
    Signer,
    certificate_signer,
    key_signer,
)
from wasmctl.sign.tlog import verify_entry
from wasmctl.sign.trust import TrustedRoot

if TYPE_CHECKING:
    from wasmctl.sign.provenance import ConditionResult

SIGSTORE_PYTHON_KINDS = {("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2"), ("dsse", "0.0.1")}


@dataclass
class TrustSource:
    """Where the trusted root comes from, loaded on first use (key signatures without log
    entries need none): a file, the root embedded in sigstore-python, or TUF."""

    path: Path | None = None
    offline: bool = False
    _root: TrustedRoot | None = field(default=None, init=False, repr=False)

    def root(self) -> TrustedRoot:
        if self._root is None:
            if self.path is not None:
                self._root = TrustedRoot.from_file(self.path)
            elif self.offline:
                self._root = TrustedRoot.embedded()
            else:
                self._root = _tuf_production_root()
        return self._root


def _tuf_production_root() -> TrustedRoot:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    try:
        config = ClientTrustConfig.production()
    except (SigstoreError, OSError) as e:
        raise RemoteError(
            f"cannot refresh Sigstore's trusted root over TUF: {e}",
            hint="verify offline with --trusted-root FILE, or --offline for the root "
            "embedded in sigstore-python",
        ) from None
    raw = config.trusted_root._inner.to_json()
    return TrustedRoot.from_json(raw.encode(), "Sigstore's production root (TUF)")


@dataclass(frozen=True)
class Check:
    """One signature that was found, and what verifying it gave."""

    source: str
    format: str
    signer: Signer | None = None
    subjects: tuple[str, ...] = ()
    predicate_type: str | None = None
    logged: bool = False
    error: str | None = None
    # What a verified attestation says, and the certificate that signed it (keyless): for
    # conditions on the content (provenance, VEX). Set only when the check passed.
    statement: Statement | None = field(default=None, compare=False, repr=False)
    certificate: x509.Certificate | None = field(default=None, compare=False, repr=False)
    # The conditions on that content (`wasmctl.sign.provenance.judge`), passed or not.
    conditions: tuple[ConditionResult, ...] = field(default=(), compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "verified": self.ok,
            "error": self.error,
            "signer": self.signer.to_json() if self.signer else None,
            "subjects": list(self.subjects),
            "predicateType": self.predicate_type,
            "transparencyLog": self.logged,
            "conditions": [c.to_json() for c in self.conditions],
        }


@dataclass(frozen=True)
class Expectation:
    """What a signature must cover: this digest, and for DSSE this predicate type (None:
    any, as for a file's bundle; cosign's signature predicate for an image signature)."""

    digest: str
    predicate_type: str | None = None


def verify_bundle(
    bundle: Bundle,
    expected: Expectation,
    policy: Policy,
    trust: TrustSource,
    *,
    source: str,
) -> Check:
    """Verify one bundle; never raises for a bad signature, returns the failed `Check`."""
    certificate = bundle.certificate
    claimed = (
        certificate_signer(certificate)
        if certificate is not None
        else Signer(key_hint=bundle.public_key_hint or "(no hint)")
    )
    statement, predicate = None, None
    subjects: tuple[str, ...] = ()
    try:
        statement = bundle.statement()
    except BundleError as e:
        return Check(source, "sigstore-bundle", claimed, error=e.message)
    if statement is not None:
        predicate, subjects = statement.predicate_type, tuple(statement.digests())
    elif bundle.message_signature is not None:
        subjects = (f"sha256:{bundle.message_signature.digest.hex()}",)
    found = Check(
        source, "sigstore-bundle", claimed, subjects, predicate, bool(bundle.tlog_entries)
    )
    try:
        _check_content(bundle, statement, expected)
        if certificate is None:
            signer = _verify_key_bundle(bundle, expected, policy, trust)
        elif isinstance(policy, KeyPolicy):
            raise SignatureError("; ".join(policy.mismatches(claimed)))
        elif {(e.kind, e.version) for e in bundle.tlog_entries} <= SIGSTORE_PYTHON_KINDS and (
            bundle.tlog_entries
        ):
            _verify_with_sigstore_python(bundle, expected, policy, trust)
            signer = claimed
        else:
            _verify_certificate_bundle(bundle, expected, policy, trust.root())
            signer = claimed
    except (SignatureError, BundleError) as e:
        return replace(found, error=e.message)
    return Check(
        source,
        "sigstore-bundle",
        signer,
        subjects,
        predicate,
        found.logged,
        statement=statement,
        certificate=certificate,
    )


def _check_content(bundle: Bundle, statement: Statement | None, expected: Expectation) -> None:
    """The bundle is about the expected digest (and predicate), before any cryptography."""
    algorithm, _, hex_digest = expected.digest.partition(":")
    if bundle.message_signature is not None:
        ms = bundle.message_signature
        if ms.algorithm != "SHA2_256" or algorithm != "sha256":
            raise SignatureError(f"unsupported message digest algorithm {ms.algorithm}")
        if ms.digest.hex() != hex_digest:
            raise SignatureError(
                f"the bundle signs sha256:{ms.digest.hex()}, not {expected.digest}"
            )
        if expected.predicate_type not in (None, COSIGN_SIGN_PREDICATE):
            raise SignatureError(
                f"a plain signature, not an attestation of type {expected.predicate_type}"
            )
        return
    if statement is None:
        found = bundle.envelope.payload_type if bundle.envelope is not None else "none"
        raise SignatureError(f"DSSE payload type {found}, not {INTOTO_PAYLOAD_TYPE}")
    if expected.digest not in statement.digests(algorithm):
        found = ", ".join(statement.digests(algorithm)) or "no sha256 subject"
        raise SignatureError(f"the statement is about {found}, not {expected.digest}")
    if expected.predicate_type is not None and statement.predicate_type != expected.predicate_type:
        raise SignatureError(
            f"predicate type {statement.predicate_type}, not {expected.predicate_type}"
        )


# -- key-signed bundles --------------------------------------------------------------------


def _verify_key_bundle(
    bundle: Bundle, expected: Expectation, policy: Policy, trust: TrustSource
) -> Signer:
    if isinstance(policy, IdentityPolicy):
        hint = bundle.public_key_hint or "(no hint)"
        raise SignatureError(
            f"signed with key {hint}, but the policy trusts identities; verify with --key"
        )
    key = next((k for k in policy.keys if _signature_verifies(bundle, k, expected)), None)
    if key is None:
        raise SignatureError(
            f"the signature does not verify with {policy.source} "
            f"(the bundle names key {bundle.public_key_hint or '(no hint)'})"
        )
    for entry in bundle.tlog_entries:
        verify_entry(
            entry,
            trust.root(),
            signature=bundle.signature,
            verifier=key,
            digest=_message_digest(bundle),
            envelope=bundle.envelope,
        )
    return key_signer(key)


def _message_digest(bundle: Bundle) -> bytes | None:
    return bundle.message_signature.digest if bundle.message_signature else None


def _signature_verifies(bundle: Bundle, key: PublicKey, expected: Expectation) -> bool:
    if bundle.envelope is not None:
        return envelope_verifies(bundle.envelope, key)
    signed = bundle.signed_message()
    return digest_signature_verifies(key, signed.signature, signed.digest)


def envelope_verifies(envelope: Envelope, key: PublicKey) -> bool:
    """Any of the envelope's signatures verifies over its PAE with `key`."""
    signed = envelope.pae()
    return any(verify_signature(key, s.sig, signed) for s in envelope.signatures)


def digest_signature_verifies(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    """A signature over content known only by its sha256 (a file, a manifest)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:  # Ed25519 signs the message itself, never a digest of it
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


# -- certificate-signed bundles through sigstore-python ------------------------------------


class _SigstorePolicy:
    """wasmctl's policy in the shape sigstore-python's `Verifier` calls."""

    def __init__(self, policy: IdentityPolicy) -> None:
        self.policy = policy

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        problems = self.policy.mismatches(certificate_signer(cert))
        if problems:
            raise SigstoreVerificationError("; ".join(problems))


def _verify_with_sigstore_python(
    bundle: Bundle, expected: Expectation, policy: IdentityPolicy, trust: TrustSource
) -> None:
    from pydantic import ValidationError
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        parsed = SigstoreBundle.from_json(bundle.raw)
        verifier = Verifier(trusted_root=trust.root().to_sigstore())
        if bundle.message_signature is not None:
            digest = bytes.fromhex(expected.digest.partition(":")[2])
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
            verifier.verify_artifact(hashed, parsed, _SigstorePolicy(policy))
        else:
            payload_type, payload = verifier.verify_dsse(parsed, _SigstorePolicy(policy))
            # What was verified is what was checked before, byte for byte.
            envelope = bundle.envelope
            if (
                envelope is None
                or payload != envelope.payload
                or payload_type != INTOTO_PAYLOAD_TYPE
            ):
                raise SignatureError("the verified payload is not the bundle's statement")
    except (SigstoreError, ValidationError, ValueError) as e:
        raise SignatureError(_first_line(str(e))) from None


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:300] or "verification failed"


# -- certificate-signed bundles checked here -------------------------------------------------


def _verify_certificate_bundle(
    bundle: Bundle, expected: Expectation, policy: IdentityPolicy, root: TrustedRoot
) -> None:
    certificate = bundle.certificate
    if certificate is None:
        raise InternalError("a bundle without a certificate checked as certificate-signed")
    if not bundle.tlog_entries:
        raise SignatureError("a certificate signature that was never logged")
    times = []
    for entry in bundle.tlog_entries:
        logged = verify_entry(
            entry,
            root,
            signature=bundle.signature,
            verifier=certificate,
            digest=_message_digest(bundle),
            envelope=bundle.envelope,
        )
        if logged.integrated_time is not None:
            times.append(logged.integrated_time)
    times += verified_timestamps(bundle.timestamps, bundle.signature, root)
    if not times:
        raise SignatureError("no trusted time: no signed entry timestamp or timestamp verifies")
    verify_certificate(certificate, bundle.certificates[1:], times, root, require_sct=True)
    problems = policy.mismatches(certificate_signer(certificate))
    if problems:
        raise SignatureError("; ".join(problems))
    key = certificate_key(certificate)
    if bundle.envelope is not None:
        ok = envelope_verifies(bundle.envelope, key)
    else:
        signed = bundle.signed_message()
        ok = digest_signature_verifies(key, signed.signature, signed.digest)
    if not ok:
        raise SignatureError("the signature does not verify with the certificate's key")


def certificate_key(certificate: x509.Certificate) -> PublicKey:
    """The signing key of a certificate, if it is of a kind signatures are checked with."""
    key = supported_public_key(certificate.public_key())
    if key is None:
        raise SignatureError("the certificate's key type is not supported")
    return key


def verified_timestamps(
    timestamps: Sequence[bytes], signature: bytes, root: TrustedRoot
) -> list[datetime]:
    """Times from RFC 3161 timestamps over `signature` that a trusted TSA signed."""
    if not timestamps:
        return []
    from rfc3161_client import VerificationError as TimestampError
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    times = []
    for raw in timestamps:
        try:
            response = decode_timestamp_response(raw)
        except ValueError:
            continue
        for authority in root.timestamp_authorities:
            chain = authority.certificates
            if len(chain) < 2:
                continue
            builder = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1])
            for intermediate in chain[1:-1]:
                builder = builder.add_intermediate_certificate(intermediate)
            try:
                builder.build().verify_message(response, signature)
            except TimestampError:
                continue
            when = response.tst_info.gen_time
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            if authority.valid_for.contains(when):
                times.append(when)
                break
    return times


def verify_certificate(
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    times: Sequence[datetime],
    root: TrustedRoot,
    *,
    require_sct: bool,
) -> None:
    """A Fulcio certificate chains to a CA of the trusted root at every trusted time, the CA
    was issuing then, the certificate is for code signing, and its SCT verifies."""
    if not times:
        # with no time to check at, the loop below would check nothing
        raise SignatureError("no trusted time to check the certificate at")
    if any(c.issuer == c.subject for c in intermediates):
        raise SignatureError("the bundle's chain includes a root certificate")
    # Fulcio certificates use code signing, not client auth: allow any EKU in the path
    # check and test for code signing below (as sigstore-python does).
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    store = Store([c for a in root.certificate_authorities for c in a.certificates])
    issuer: x509.Certificate | None = None
    for when in times:
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(when)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            chain = verifier.verify(certificate, list(intermediates)).chain
        except (VerificationError, ValueError) as e:
            raise SignatureError(
                f"the certificate does not chain to the trusted root: {e}"
            ) from None
        issuer = chain[1]
        authority = next(
            (a for a in root.certificate_authorities if chain[-1] in a.certificates), None
        )
        if authority is None or not authority.valid_for.contains(when):
            raise SignatureError(
                f"the certificate authority was not issuing at {when:%Y-%m-%dT%H:%M:%SZ}"
            )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise SignatureError("the certificate lacks key usage extensions") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise SignatureError("the certificate is not for code signing")
    if issuer is None:
        raise InternalError("a certificate chain checked at no time")
    verify_sct(certificate, issuer, root, required=require_sct)


def verify_sct(
    certificate: x509.Certificate, issuer: x509.Certificate, root: TrustedRoot, *, required: bool
) -> None:
    """The embedded SCT (RFC 6962 §3.2, precertificate entry) is signed by a trusted CT log."""
    try:
        scts = certificate.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound:
        if required:
            raise SignatureError("the certificate has no SCT") from None
        return
    issuer_key_hash = hashlib.sha256(spki_der(issuer.public_key())).digest()
    tbs = certificate.tbs_precertificate_bytes
    for sct in scts:
        log = root.ctlog_key(sct.log_id)
        if log is None:
            continue
        when = sct.timestamp
        millis = calendar.timegm(when.timetuple()) * 1000 + when.microsecond // 1000
        signed = (
            struct.pack(">BBQH", 0, 0, millis, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack(">H", len(sct.extension_bytes))
            + sct.extension_bytes
        )
        if verify_signature(log.public_key, sct.signature, signed):
            return
    raise SignatureError("no SCT of the certificate verifies with a trusted CT log")
