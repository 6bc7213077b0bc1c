"""Sigstore bundles, DSSE envelopes and in-toto statements, read and written as data.

A bundle (sigstore/protobuf-specs `Bundle`, JSON in protobuf's camelCase form) carries a
signature over an artifact digest (`messageSignature`) or a DSSE envelope, the material to
check it with (a certificate, a chain, or only the hint of a public key), and the evidence
that it was logged and when (transparency log entries, RFC 3161 timestamps).

sigstore-python's own `Bundle` refuses bundles without a certificate (key-signed ones) and
log entries of kinds it does not check; this reader takes every bundle the specification
allows, so the verifier can decide what it can check and say why when it cannot.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from wasmctl import _json
from wasmctl.errors import InputError, SignatureError

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": (0, 1),
    "application/vnd.dev.sigstore.bundle+json;version=0.2": (0, 2),
    "application/vnd.dev.sigstore.bundle+json;version=0.3": (0, 3),
    BUNDLE_V03: (0, 3),
}
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MAX_BUNDLE = 16 << 20


class BundleError(InputError):
    """A bundle, envelope or statement that does not fit its format."""


@dataclass(frozen=True)
class InclusionProof:
    """A Merkle audit path from an entry to a tree head, and the signed checkpoint."""

    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None


@dataclass(frozen=True)
class TlogEntry:
    """One transparency log entry of a bundle."""

    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int | None
    signed_entry_timestamp: bytes | None
    inclusion_proof: InclusionProof | None
    body: bytes


@dataclass(frozen=True)
class MessageSignature:
    """A signature over an artifact, with the artifact's digest."""

    algorithm: str
    digest: bytes
    signature: bytes


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: a typed payload and signatures over its PAE encoding."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def pae(self) -> bytes:
        """DSSE v1 pre-authentication encoding: what the signatures cover."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                {"sig": base64.b64encode(s.sig).decode(), **({"keyid": s.keyid} if s.keyid else {})}
                for s in self.signatures
            ],
        }

    @classmethod
    def from_json(cls, data: Any, what: str = "DSSE envelope") -> Envelope:
        if not isinstance(data, Mapping):
            raise BundleError(f"{what}: not a JSON object")
        signatures = data.get("signatures")
        if not isinstance(signatures, list) or not signatures:
            raise BundleError(f"{what}: no signatures")
        try:
            return cls(
                payload_type=_string(data, "payloadType", what),
                payload=_b64(data.get("payload"), f"{what} payload"),
                signatures=tuple(
                    EnvelopeSignature(
                        str(s.get("keyid") or ""), _b64(s.get("sig"), f"{what} signature")
                    )
                    for s in signatures
                    if isinstance(s, Mapping)
                ),
            )
        except AttributeError:
            raise BundleError(f"{what}: malformed signatures") from None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 SP len(type) SP type SP len(body) SP body (the DSSE protocol, v1.0)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Subject:
    name: str
    digest: Mapping[str, str]


@dataclass(frozen=True)
class Statement:
    """An in-toto statement (v1, or v0.1 as legacy cosign attestations write)."""

    type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Any

    def digests(self, algorithm: str = "sha256") -> list[str]:
        """Subject digests as `algorithm:hex`."""
        return [
            f"{algorithm}:{s.digest[algorithm].lower()}"
            for s in self.subjects
            if algorithm in s.digest
        ]

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "_type": self.type,
            "subject": [
                {**({"name": s.name} if s.name else {}), "digest": dict(s.digest)}
                for s in self.subjects
            ],
            "predicateType": self.predicate_type,
        }
        if self.predicate is not None:
            data["predicate"] = self.predicate
        return json.dumps(data, separators=(",", ":"), sort_keys=False).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Statement:
        data = _json.loads(raw, "in-toto statement", BundleError)
        if not isinstance(data, Mapping) or data.get("_type") not in (STATEMENT_V1, STATEMENT_V01):
            raise BundleError("not an in-toto statement (v1 or v0.1)")
        subjects = data.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise BundleError("in-toto statement without subjects")
        parsed = []
        for item in subjects:
            digest = item.get("digest") if isinstance(item, Mapping) else None
            if not isinstance(digest, Mapping) or not all(
                isinstance(v, str) for v in digest.values()
            ):
                raise BundleError("in-toto statement: a subject without a digest map")
            parsed.append(Subject(str(item.get("name") or ""), dict(digest)))
        return cls(
            type=str(data["_type"]),
            subjects=tuple(parsed),
            predicate_type=_string(data, "predicateType", "in-toto statement"),
            predicate=data.get("predicate"),
        )


def statement_for(name: str, digest: str, predicate_type: str, predicate: Any = None) -> Statement:
    """An in-toto v1 statement about one artifact digest (`sha256:hex`), named `name`
    (in-toto makes the name optional, but sigstore-python requires one)."""
    algorithm, _, hex_digest = digest.partition(":")
    subject = Subject(name, {algorithm: hex_digest})
    return Statement(STATEMENT_V1, (subject,), predicate_type, predicate)


@dataclass(frozen=True)
class Bundle:
    """A Sigstore bundle of any released version, key-signed or certificate-signed."""

    media_type: str
    certificates: tuple[x509.Certificate, ...]
    public_key_hint: str | None
    tlog_entries: tuple[TlogEntry, ...]
    timestamps: tuple[bytes, ...]
    message_signature: MessageSignature | None
    envelope: Envelope | None
    raw: bytes = field(repr=False)

    @property
    def version(self) -> tuple[int, int]:
        return BUNDLE_MEDIA_TYPES[self.media_type]

    @property
    def certificate(self) -> x509.Certificate | None:
        """The signing (leaf) certificate, if the bundle was signed with one."""
        return self.certificates[0] if self.certificates else None

    @property
    def signature(self) -> bytes:
        """The signature bytes timestamps are taken over."""
        if self.envelope is not None:
            return self.envelope.signatures[0].sig
        return self.signed_message().signature

    def signed_message(self) -> MessageSignature:
        """The message signature of a bundle without a DSSE envelope. A parsed bundle has one
        or the other; one made by hand with neither is refused, never read as signed."""
        if self.message_signature is None:
            raise SignatureError("the bundle has neither a message signature nor a DSSE envelope")
        return self.message_signature

    def statement(self) -> Statement | None:
        """The in-toto statement of a DSSE bundle."""
        if self.envelope is None or self.envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            return None
        return Statement.from_bytes(self.envelope.payload)

    @classmethod
    def from_bytes(cls, raw: bytes, source: str = "bundle") -> Bundle:
        """Parse a bundle; anything that does not fit raises `BundleError` naming `source`."""
        if len(raw) > MAX_BUNDLE:
            raise BundleError(f"{source}: larger than {MAX_BUNDLE} bytes")
        data = _json.loads(raw, source, BundleError)
        if not isinstance(data, Mapping):
            raise BundleError(f"{source}: not a JSON object")
        media_type = data.get("mediaType")
        if media_type not in BUNDLE_MEDIA_TYPES:
            raise BundleError(f"{source}: unknown bundle media type {media_type!r}")
        try:
            return _parse(data, str(media_type), raw, source)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as e:
            raise BundleError(f"{source}: malformed bundle ({type(e).__name__}: {e})") from None


def _parse(data: Mapping[str, Any], media_type: str, raw: bytes, source: str) -> Bundle:
    material = data["verificationMaterial"]
    certificates: list[x509.Certificate] = []
    hint = None
    if "certificate" in material:
        certificates.append(_certificate(material["certificate"]))
    elif "x509CertificateChain" in material:
        chain = material["x509CertificateChain"].get("certificates") or []
        certificates.extend(_certificate(c) for c in chain)
        if not certificates:
            raise BundleError(f"{source}: empty certificate chain")
    elif "publicKey" in material:
        hint = str(material["publicKey"].get("hint") or "")
    else:
        raise BundleError(f"{source}: no certificate or public key in verificationMaterial")
    if BUNDLE_MEDIA_TYPES[media_type] >= (0, 3) and "x509CertificateChain" in material:
        raise BundleError(f"{source}: v0.3 bundles carry one certificate, not a chain")
    entries = tuple(_tlog_entry(e) for e in material.get("tlogEntries") or ())
    stamps = material.get("timestampVerificationData") or {}
    timestamps = tuple(
        base64.b64decode(t["signedTimestamp"], validate=True)
        for t in stamps.get("rfc3161Timestamps") or ()
    )
    message = envelope = None
    if "messageSignature" in data:
        ms = data["messageSignature"]
        digest = ms.get("messageDigest") or {}
        message = MessageSignature(
            algorithm=str(digest.get("algorithm") or "SHA2_256"),
            digest=base64.b64decode(digest.get("digest", ""), validate=True),
            signature=_b64(ms.get("signature"), "message signature"),
        )
    elif "dsseEnvelope" in data:
        envelope = Envelope.from_json(data["dsseEnvelope"], f"{source} DSSE envelope")
    else:
        raise BundleError(f"{source}: neither a message signature nor a DSSE envelope")
    return Bundle(
        media_type=media_type,
        certificates=tuple(certificates),
        public_key_hint=hint,
        tlog_entries=entries,
        timestamps=timestamps,
        message_signature=message,
        envelope=envelope,
        raw=raw,
    )


def _certificate(item: Mapping[str, Any]) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(item["rawBytes"], validate=True))


def _tlog_entry(item: Mapping[str, Any]) -> TlogEntry:
    kind = item["kindVersion"]
    proof = None
    if item.get("inclusionProof"):
        p = item["inclusionProof"]
        checkpoint = (p.get("checkpoint") or {}).get("envelope")
        proof = InclusionProof(
            log_index=int(p["logIndex"]),
            tree_size=int(p["treeSize"]),
            root_hash=base64.b64decode(p["rootHash"], validate=True),
            hashes=tuple(base64.b64decode(h, validate=True) for h in p.get("hashes") or ()),
            checkpoint=str(checkpoint) if checkpoint else None,
        )
    promise = (item.get("inclusionPromise") or {}).get("signedEntryTimestamp")
    integrated = item.get("integratedTime")
    return TlogEntry(
        log_index=int(item["logIndex"]),
        log_id=base64.b64decode(item["logId"]["keyId"], validate=True),
        kind=str(kind["kind"]),
        version=str(kind["version"]),
        integrated_time=int(integrated) if integrated not in (None, "", "0", 0) else None,
        signed_entry_timestamp=base64.b64decode(promise, validate=True) if promise else None,
        inclusion_proof=proof,
        body=base64.b64decode(item["canonicalizedBody"], validate=True),
    )


def key_bundle(
    hint: str, *, envelope: Envelope | None = None, message: MessageSignature | None = None
) -> bytes:
    """A v0.3 bundle signed with a key and not logged (as `cosign --tlog-upload=false`)."""
    data: dict[str, Any] = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": hint}},
    }
    if envelope is not None:
        data["dsseEnvelope"] = envelope.to_json()
    elif message is not None:
        data["messageSignature"] = {
            "messageDigest": {
                "algorithm": message.algorithm,
                "digest": base64.b64encode(message.digest).decode(),
            },
            "signature": base64.b64encode(message.signature).decode(),
        }
    else:
        raise ValueError("a bundle needs an envelope or a message signature")
    return json.dumps(data, separators=(",", ":")).encode()


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{what}: missing")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise BundleError(f"{what}: not base64") from None


def _string(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BundleError(f"{what}: missing {key}")
    return value
