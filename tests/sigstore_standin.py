"""Loopback stand-ins for a private Sigstore deployment, for tests of keyless signing.

A :class:`SigstoreStandin` is one small Sigstore instance of its own. Constructing it generates
a CA (ECDSA P-256), a CT log key, a Rekor key and an HS256 secret for identity tokens; starting
it serves three services from one ``ThreadingHTTPServer`` on 127.0.0.1 (``url``):

- **Fulcio** ``POST /api/v2/signingCert``: checks the bearer identity token (HS256 with this
  instance's secret, ``aud`` ``sigstore``, not expired) and the CSR's signature, then issues a
  short-lived leaf certificate with one embedded SCT. 401 for a bad token, 400 for a bad request,
  as ``{"code", "message"}`` JSON like real Fulcio (sigstore-python 4.5.1 means to show the
  ``message`` but never does: it tests the truth of a ``requests.Response``, false for 4xx).
- **Rekor v1** ``POST /api/v1/log/entries`` for ``hashedrekord`` and ``dsse`` 0.0.1: checks the
  signature(s) like real Rekor, appends the canonical body to one append-only RFC 6962 Merkle
  tree kept for the instance's lifetime, and answers with an inclusion proof against the tree as
  it is after the append, a signed checkpoint and a signed entry timestamp (SET).
- **GitHub Actions' token endpoint** ``GET /github/token?audience=A`` (what
  ``ACTIONS_ID_TOKEN_REQUEST_URL`` points at): with ``Authorization: Bearer <request token>``
  from :meth:`SigstoreStandin.github_actions_env` it answers ``{"value": "<JWT>"}``, so the PyPA
  ``id`` package (``id.detect_credential``) and the ``sigstore`` CLI find an ambient credential.

:meth:`SigstoreStandin.trust_config_json` describes the instance as a client trust config that
sigstore-python takes with ``ClientTrustConfig.from_json`` (Rekor v1, no TSA). Another
``SigstoreStandin()`` is a foreign instance: different keys, so its trusted root rejects this
one's bundles and its tokens are refused by this one's Fulcio.

Not emulated: OIDC discovery and interactive login (``oidcUrls`` points here, but nothing
answers ``/.well-known/openid-configuration``), TSAs, Rekor v2, reading entries back
(``GET /api/v1/log/entries/...``), detached SCTs, intermediate CAs.

The recipe, with the reasons for every odd detail, is ``keyless-standin.md`` (the project's
shared reference on keyless signing with sigstore-python 4.5.1); the ``§`` numbers below are
its sections. Helpers only; the session fixture lives in ``tests/conftest.py``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import secrets
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import jwt
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from tests.loopback import LoopbackService, QuietHandler, ServerThread

AUDIENCE: Final = "sigstore"
GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"
DEFAULT_IDENTITY: Final = (
    "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
)
# Issuers whose certificate identity is the ``email`` claim (as in sigstore-python's oidc.py).
EMAIL_ISSUERS: Final = frozenset(
    {
        "https://accounts.google.com",
        "https://oauth2.sigstore.dev/auth",
        "https://oauth2.sigstage.dev/auth",
    }
)
TOKEN_LIFETIME: Final = 600  # seconds
CERTIFICATE_LIFETIME: Final = datetime.timedelta(minutes=10)
# notBefore lies a little in the past so the Rekor integratedTime (whole seconds) is inside.
CERTIFICATE_BACKDATE: Final = datetime.timedelta(seconds=5)
LOG_NAME: Final = "standin.rekor.local"
OPERATOR: Final = "wasmctl-tests"
GITHUB_TOKEN_PATH: Final = "/github/token"

TRUST_CONFIG_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
# v0.1 also passes the schema, but sigstore-python 4.5 rejects it (§2).
SIGNING_CONFIG_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
KEY_DETAILS: Final = "PKIX_ECDSA_P256_SHA_256"

# Fulcio's certificate extensions (github.com/sigstore/fulcio docs/oid-info.md).
_FULCIO_OID: Final = "1.3.6.1.4.1.57264.1"
OIDC_ISSUER_OID: Final = x509.ObjectIdentifier(f"{_FULCIO_OID}.1")  # raw UTF-8
OIDC_ISSUER_V2_OID: Final = x509.ObjectIdentifier(f"{_FULCIO_OID}.8")  # DER UTF8String
# Claims that make a token "GitHub-style": with all of them present, the certificate also
# carries the GitHub workflow extensions (see _github_extensions).
GITHUB_WORKFLOW_CLAIMS: Final = (
    "repository", "ref", "workflow", "sha", "event_name", "job_workflow_ref",
)  # fmt: skip


# -- Encodings ----------------------------------------------------------------------


def _b64(data: bytes) -> str:
    """Standard, padded base64: what protobuf JSON and Rekor use (§2, §4)."""
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """sha256(SPKI DER): how Sigstore names a Rekor or CT log key (§2)."""
    return hashlib.sha256(_spki(key)).digest()


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV (definite length)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_utf8(text: str) -> bytes:
    return _der(0x0C, text.encode())


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def no_proxy_with_loopback(current: str | None) -> str:
    """``current`` (a ``NO_PROXY`` value) plus ``127.0.0.1`` and ``localhost`` (§0: the client
    uses ``requests``, which would send loopback traffic to an ``HTTP(S)_PROXY``)."""
    hosts = [host.strip() for host in (current or "").split(",") if host.strip()]
    hosts += [host for host in ("127.0.0.1", "localhost") if host not in hosts]
    return ",".join(hosts)


def _key_usage(*granted: str) -> x509.KeyUsage:
    """A KeyUsage with only ``granted`` set (cryptography wants all nine flags spelled out)."""
    flags = (
        "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
        "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
    )  # fmt: skip
    return x509.KeyUsage(**{flag: flag in granted for flag in flags})


class ServiceRefusal(Exception):
    """A service's answer to a request it will not honour (a 4xx status and a message)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- Identity tokens -----------------------------------------------------------------

_WORKFLOW_IDENTITY: Final = re.compile(
    r"https://github\.com/(?P<repository>[^/@]+/[^/@]+)/(?P<path>[^@]+)@(?P<ref>.+)"
)


def github_workflow_claims(identity: str) -> dict[str, str]:
    """The GitHub Actions claims consistent with a workflow identity, or ``{}``.

    ``https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0`` gives
    ``repository=acme/app``, ``ref=refs/tags/v1.0.0``, ``workflow=release`` (the file's stem
    stands in for the workflow's ``name:``), ``job_workflow_ref`` (the identity without
    ``https://github.com/``, so Fulcio's build signer URI equals the identity), a ``sha``
    derived from the identity and ``event_name=push``.
    """
    match = _WORKFLOW_IDENTITY.fullmatch(identity)
    if match is None:
        return {}
    repository, path, ref = match["repository"], match["path"], match["ref"]
    return {
        "repository": repository,
        "repository_owner": repository.split("/")[0],
        "ref": ref,
        "workflow": PurePosixPath(path).stem,
        "sha": hashlib.sha1(identity.encode()).hexdigest(),
        "event_name": "push",
        "job_workflow_ref": f"{repository}/{path}@{ref}",
    }


# -- Fulcio: the certificate authority (§3) --------------------------------------------


class CertificateAuthority:
    """A root CA plus the CT log key whose SCT every leaf embeds.

    The root has BasicConstraints CA critical and KeyUsage keyCertSign: without keyCertSign the
    client's sign-time SCT check fails with "issuer ... not a CA" (§3). Leaves are issued by the
    root directly, so Fulcio's chain is ``[leaf, root]`` and the trusted root holds ``[root]``.
    """

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, OPERATOR),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self, public_key: Any, claims: Mapping[str, Any], now: datetime.datetime
    ) -> x509.Certificate:
        """A leaf for ``public_key`` carrying the identity in ``claims`` (§3 "Leaf certificate").

        Empty subject, so the SAN must be critical; KeyUsage digitalSignature, EKU codeSigning
        and AKI are all checked by the verifier. The SCT signs the TBS *without* the SCT
        extension, so the leaf is built twice from one builder: once with a placeholder SCT
        list, whose ``tbs_precertificate_bytes`` get signed, then with the real one.
        """
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CERTIFICATE_BACKDATE)
            .not_valid_after(now + CERTIFICATE_LIFETIME)
            .add_extension(_key_usage("digital_signature"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .add_extension(x509.SubjectAlternativeName([_identity_name(claims)]), critical=True)
        )
        for oid, value in _identity_extensions(claims):
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), False)

        timestamp_ms = int(now.timestamp()) * 1000  # whole seconds: the client rebuilds it (§3)
        placeholder = self._with_scts(builder, b"").sign(self.key, hashes.SHA256())
        tbs = placeholder.tbs_precertificate_bytes
        leaf = self._with_scts(builder, self._sct(tbs, timestamp_ms)).sign(
            self.key, hashes.SHA256()
        )
        assert leaf.tbs_precertificate_bytes == tbs, "the SCT would not verify"
        return leaf

    @staticmethod
    def _with_scts(builder: x509.CertificateBuilder, sct: bytes) -> x509.CertificateBuilder:
        """Add the SCT list extension: an OCTET STRING around ``u16 len || (u16 len || SCT)*``
        (RFC 6962 §3.3); an empty ``sct`` gives an empty list (the placeholder)."""
        listed = struct.pack(">H", len(sct)) + sct if sct else b""
        value = _der(0x04, struct.pack(">H", len(listed)) + listed)
        oid = ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS
        return builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)

    def _sct(self, tbs: bytes, timestamp_ms: int) -> bytes:
        """One v1 SCT over a precert entry (RFC 6962 §3.2), signed by the CT key (§3)."""
        issuer_key_hash = _key_id(self.key.public_key())
        signed = (
            struct.pack(">BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack(">H", 0)  # no extensions
        )
        signature = _sign(self.ct_key, signed)
        return (
            struct.pack(">B", 0)
            + _key_id(self.ct_key.public_key())
            + struct.pack(">QH", timestamp_ms, 0)
            + struct.pack(">BBH", 4, 3, len(signature))  # SHA-256, ECDSA
            + signature
        )


def _identity_name(claims: Mapping[str, Any]) -> x509.GeneralName:
    """The SAN entry: ``email`` for the e-mail issuers, else ``sub`` (a URI if it has a scheme
    and a host, else an e-mail name)."""
    if claims["iss"] in EMAIL_ISSUERS:
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise ServiceRefusal(
                HTTPStatus.BAD_REQUEST, f"tokens from {claims['iss']} need an email claim"
            )
        return x509.RFC822Name(email)
    subject = str(claims["sub"])
    parts = urlsplit(subject)
    if parts.scheme and parts.netloc:
        return x509.UniformResourceIdentifier(subject)
    return x509.RFC822Name(subject)


def _identity_extensions(claims: Mapping[str, Any]) -> list[tuple[x509.ObjectIdentifier, bytes]]:
    """Fulcio's issuer extension twice (§3: ``.1.1`` is raw bytes and is what
    ``policy.Identity`` checks; ``.1.8`` is DER, checked by ``OIDCIssuerV2``), then the GitHub
    workflow extensions for GitHub-style tokens."""
    issuer = str(claims["iss"])
    return [
        (OIDC_ISSUER_OID, issuer.encode()),
        (OIDC_ISSUER_V2_OID, _der_utf8(issuer)),
        *_github_extensions(claims),
    ]


def _github_extensions(claims: Mapping[str, Any]) -> list[tuple[x509.ObjectIdentifier, bytes]]:
    """For tokens with every claim of :data:`GITHUB_WORKFLOW_CLAIMS`: the deprecated v1
    extensions ``.1.2``-``.1.6`` (raw bytes, like ``.1.1``) and their v2 successors ``.1.9``,
    ``.1.12``-``.1.14`` (DER UTF8String), as Fulcio fills them from GitHub's token."""
    if not all(isinstance(claims.get(name), str) for name in GITHUB_WORKFLOW_CLAIMS):
        return []
    raw = {2: "event_name", 3: "sha", 4: "workflow", 5: "repository", 6: "ref"}
    der = {
        9: f"https://github.com/{claims['job_workflow_ref']}",  # build signer URI
        12: f"https://github.com/{claims['repository']}",  # source repository URI
        13: claims["sha"],  # source repository digest
        14: claims["ref"],  # source repository ref
    }
    return [
        (x509.ObjectIdentifier(f"{_FULCIO_OID}.{arc}"), str(claims[name]).encode())
        for arc, name in raw.items()
    ] + [(x509.ObjectIdentifier(f"{_FULCIO_OID}.{arc}"), _der_utf8(v)) for arc, v in der.items()]


# -- Rekor v1: the transparency log (§4) ------------------------------------------------


class MerkleTree:
    """An append-only RFC 6962 Merkle tree over leaf data (only the hashes are kept).

    ``leaf = sha256(0x00 || data)``, ``node = sha256(0x01 || left || right)``. Ranges of leaves
    never change once appended, so every subtree hash is computed once and remembered.
    """

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._nodes: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, data: bytes) -> int:
        """Add a leaf; its index."""
        self._leaves.append(hashlib.sha256(b"\x00" + data).digest())
        return len(self._leaves) - 1

    def leaf_hash(self, index: int) -> bytes:
        return self._leaves[index]

    def root(self, size: int) -> bytes:
        """MTH of the first ``size`` leaves (RFC 6962 §2.1)."""
        if size == 0:
            return hashlib.sha256(b"").digest()
        return self._hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 6962 §2.1.1): sibling hashes, leaf to root."""
        if not 0 <= index < size <= len(self._leaves):
            raise ValueError(f"no leaf {index} in a tree of {size}")
        return self._path(index, 0, size)

    def _path(self, index: int, low: int, high: int) -> list[bytes]:
        if high - low == 1:
            return []
        middle = low + _split(high - low)
        if index < middle:
            return [*self._path(index, low, middle), self._hash(middle, high)]
        return [*self._path(index, middle, high), self._hash(low, middle)]

    def _hash(self, low: int, high: int) -> bytes:
        if high - low == 1:
            return self._leaves[low]
        cached = self._nodes.get((low, high))
        if cached is None:
            middle = low + _split(high - low)
            cached = hashlib.sha256(
                b"\x01" + self._hash(low, middle) + self._hash(middle, high)
            ).digest()
            self._nodes[low, high] = cached
        return cached


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


@dataclass(frozen=True)
class LogEntry:
    """One entry the Rekor stand-in logged.

    ``body`` is the canonical body (RFC 8785 JSON) whose leaf hash is in the tree;
    ``uuid`` is Rekor's entry ID (tree ID in 16 hex digits, then the leaf hash).
    """

    uuid: str
    log_index: int
    integrated_time: int
    kind: str
    body: bytes

    @property
    def body_json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class TransparencyLog:
    """Rekor v1's ``POST /api/v1/log/entries`` over one :class:`MerkleTree` (§4)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.log_id = _key_id(self.key.public_key())
        self.tree_id = secrets.randbits(63)
        # Real Rekor's origin looks like "rekor.sigstore.dev - 1193050959916656506".
        self.origin = f"{LOG_NAME} - {self.tree_id}"
        self._tree = MerkleTree()
        self._entries: list[LogEntry] = []
        self._lock = threading.Lock()

    @property
    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    def submit(self, proposed: Any) -> dict[str, Any]:
        """Log a proposed entry; Rekor's response body (``{uuid: entry}``)."""
        kind, body = _canonical_body(proposed)
        with self._lock:
            # Append, prove and sign under one lock, so treeSize is the size right after this
            # append and the proof is for exactly that tree.
            index = self._tree.append(body)
            size = len(self._tree)
            root = self._tree.root(size)
            proof = self._tree.inclusion_proof(index, size)
            entry = LogEntry(
                uuid=f"{self.tree_id:016x}{self._tree.leaf_hash(index).hex()}",
                log_index=index,
                integrated_time=int(time.time()),
                kind=kind,
                body=body,
            )
            self._entries.append(entry)
        encoded_body = _b64(body)
        promise: dict[str, Any] = {
            "body": encoded_body,
            "integratedTime": entry.integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": index,
        }
        return {
            entry.uuid: {
                **promise,
                "verification": {
                    # The SET signs the RFC 8785 form of exactly these four fields (§4).
                    "signedEntryTimestamp": _b64(_sign(self.key, rfc8785.dumps(promise))),
                    "inclusionProof": {
                        "logIndex": index,
                        "treeSize": size,
                        "rootHash": root.hex(),
                        "hashes": [node.hex() for node in proof],
                        "checkpoint": self.checkpoint(size, root),
                    },
                },
            }
        }

    def checkpoint(self, size: int, root: bytes) -> str:
        """A signed note (§4 "Checkpoint"): three body lines, one blank line, and one
        signature line ``— <name> base64(key hint || signature)``. The key hint is the first
        4 bytes of the log ID, else the client reports "Signature not found for log ID"."""
        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        signature = _sign(self.key, note.encode())
        return f"{note}\n\u2014 {LOG_NAME} {_b64(self.log_id[:4] + signature)}\n"


def _canonical_body(proposed: Any) -> tuple[str, bytes]:
    """(kind, canonical body) for a proposed entry; refuses what Rekor would refuse."""
    try:
        kind, version, spec = proposed["kind"], proposed["apiVersion"], proposed["spec"]
        if version != "0.0.1" or kind not in ("hashedrekord", "dsse"):
            raise ServiceRefusal(
                HTTPStatus.BAD_REQUEST, f"this stand-in logs hashedrekord/dsse 0.0.1, not "
                f"{kind} {version}",
            )  # fmt: skip
        body = _hashedrekord_body(spec) if kind == "hashedrekord" else _dsse_body(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise ServiceRefusal(HTTPStatus.BAD_REQUEST, f"malformed entry: {e!r}") from e
    return kind, rfc8785.dumps(body)


def _hashedrekord_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The entry as proposed, reduced to its schema's fields; its signature must verify over the
    digest with the given certificate's key (real Rekor checks that too)."""
    signature_b64 = spec["signature"]["content"]
    verifier_b64 = spec["signature"]["publicKey"]["content"]
    algorithm, digest_hex = spec["data"]["hash"]["algorithm"], spec["data"]["hash"]["value"]
    if algorithm != "sha256":
        raise ServiceRefusal(HTTPStatus.BAD_REQUEST, f"unsupported digest {algorithm}")
    digest = bytes.fromhex(digest_hex)
    if len(digest) != 32:
        raise ServiceRefusal(HTTPStatus.BAD_REQUEST, "a sha256 digest has 32 bytes")
    key = _verifier_key(verifier_b64)
    try:
        key.verify(
            base64.b64decode(signature_b64, validate=True),
            digest,
            ec.ECDSA(Prehashed(hashes.SHA256())),
        )
    except InvalidSignature:
        raise ServiceRefusal(HTTPStatus.BAD_REQUEST, "signature does not verify") from None
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": signature_b64, "publicKey": {"content": verifier_b64}},
        },
    }


def _dsse_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Rekor's transformation of a proposed DSSE entry (§4 "The body"): hashes of the envelope
    and payload plus each signature with the verifier it verified with. Logging
    ``proposedContent`` as-is makes ``verify_dsse`` crash."""
    content = spec["proposedContent"]
    envelope_text: str = content["envelope"]
    verifiers: list[str] = list(content["verifiers"])
    envelope = json.loads(envelope_text)
    payload = base64.b64decode(envelope["payload"], validate=True)
    payload_type: str = envelope["payloadType"]
    # DSSE's pre-authentication encoding (DSSE v1.0 envelope.md).
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    signatures = []
    for signature in envelope["signatures"]:
        raw = base64.b64decode(signature["sig"], validate=True)
        verifier = next((v for v in verifiers if _verifies(v, raw, pae)), None)
        if verifier is None:
            raise ServiceRefusal(HTTPStatus.BAD_REQUEST, "DSSE signature does not verify")
        signatures.append({"signature": _b64(raw), "verifier": verifier})
    if not signatures:
        raise ServiceRefusal(HTTPStatus.BAD_REQUEST, "DSSE envelope without signatures")
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(envelope_text.encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": signatures,
        },
    }


def _verifier_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """The EC public key of a base64 PEM certificate or public key."""
    pem = base64.b64decode(encoded, validate=True)
    key = (
        x509.load_pem_x509_certificate(pem).public_key()
        if b"CERTIFICATE" in pem
        else serialization.load_pem_public_key(pem)
    )
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ServiceRefusal(HTTPStatus.BAD_REQUEST, "this stand-in verifies ECDSA keys only")
    return key


def _verifies(verifier: str, signature: bytes, data: bytes) -> bool:
    try:
        _verifier_key(verifier).verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# -- The stand-in -------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceCall:
    """One request the stand-in answered: ``service`` is ``fulcio``, ``rekor``,
    ``github-token`` or ``unknown`` (404)."""

    service: str
    method: str
    path: str
    status: int


_ROUTES: Final = {
    ("POST", "/api/v2/signingCert"): "fulcio",
    ("POST", "/api/v1/log/entries"): "rekor",
    ("GET", GITHUB_TOKEN_PATH): "github-token",
}


class SigstoreStandin(LoopbackService):
    """Fulcio, Rekor v1 and a GitHub Actions token endpoint on one loopback port.

    Keys are generated by the constructor, so every instance is an independent Sigstore
    deployment; ``start``/``stop`` (or ``with``) serve it. The log is append-only for the
    instance's lifetime: with a shared instance, compare ``entries``/``requests`` before and
    after rather than expecting them empty.
    """

    def __init__(self, name: str = "sigstore-standin") -> None:
        self.name = name
        self.created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.authority = CertificateAuthority(f"{name} CA")
        self.log = TransparencyLog()
        # 32 bytes or more, or PyJWT warns about a short HMAC key (§1).
        self.token_secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._calls: list[ServiceCall] = []
        self._certificates: list[x509.Certificate] = []
        # GitHub Actions request token -> (identity, extra claims) of the tokens it yields.
        self._actions_grants: dict[str, tuple[str, dict[str, Any]]] = {}
        self._serving: ServerThread | None = None

    # lifecycle

    # lifecycle (LoopbackService: start, stop, with, url). Fulcio must live at the host
    # root (keyless-standin.md §2: its path is joined as an absolute path), so Fulcio, Rekor
    # and the OIDC URL all share `url`.

    @property
    def service_name(self) -> str:
        return self.name

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    # key material

    @property
    def ca_certificate(self) -> x509.Certificate:
        return self.authority.certificate

    @property
    def ctlog_public_key(self) -> ec.EllipticCurvePublicKey:
        return self.authority.ct_key.public_key()

    @property
    def rekor_public_key(self) -> ec.EllipticCurvePublicKey:
        return self.log.key.public_key()

    @property
    def log_id(self) -> str:
        """The Rekor log ID as bundles carry it (hex sha256 of the key's SPKI)."""
        return self.log.log_id.hex()

    # what happened

    @property
    def entries(self) -> list[LogEntry]:
        """Every entry Rekor logged, in log order (a copy)."""
        return self.log.entries

    @property
    def certificates(self) -> list[x509.Certificate]:
        """Every leaf Fulcio issued, oldest first (a copy)."""
        with self._lock:
            return list(self._certificates)

    @property
    def calls(self) -> list[ServiceCall]:
        """Every request answered, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def requests(self) -> Counter[str]:
        """How many requests each service answered, whatever the status."""
        return Counter(call.service for call in self.calls)

    # trust configuration (§2)

    def trusted_root(self) -> dict[str, Any]:
        """The ``trustedRoot`` document: this Rekor key, CT log key and CA.

        ``validFor.start`` lies before any certificate or SCT this instance makes; no ``end``,
        so the keys stay valid for signing (the ctlogs key must be current at sign time).
        """
        valid_for = {"start": _rfc3339(self.created - datetime.timedelta(minutes=1))}

        def log_key(key: ec.EllipticCurvePublicKey, base_url: str) -> dict[str, Any]:
            return {
                "baseUrl": base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(key)),
                    "keyDetails": KEY_DETAILS,
                    "validFor": valid_for,
                },
                "logId": {"keyId": _b64(_key_id(key))},
            }

        ca_der = self.ca_certificate.public_bytes(serialization.Encoding.DER)
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [log_key(self.rekor_public_key, self.url)],
            # There is no CT log to talk to: Fulcio signs the SCTs itself.
            "ctlogs": [log_key(self.ctlog_public_key, self.url)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": OPERATOR, "commonName": f"{self.name} CA"},
                    "uri": self.url,
                    "certChain": {"certificates": [{"rawBytes": _b64(ca_der)}]},
                    "validFor": valid_for,
                }
            ],
            "timestampAuthorities": [],
        }

    def signing_config(self) -> dict[str, Any]:
        """The ``signingConfig`` v0.2 document: Fulcio, Rekor v1 and OIDC here, no TSA (Rekor
        v1's SET gives verification its time, §4)."""
        valid_for = {"start": _rfc3339(self.created - datetime.timedelta(minutes=1))}

        def service(url: str) -> dict[str, Any]:
            return {"url": url, "majorApiVersion": 1, "operator": OPERATOR, "validFor": valid_for}

        return {
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": [service(self.url)],
            "oidcUrls": [service(self.url)],
            "rekorTlogUrls": [service(self.url)],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }

    def trust_config(self) -> dict[str, Any]:
        return {
            "mediaType": TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": self.trusted_root(),
            "signingConfig": self.signing_config(),
        }

    def trust_config_json(self) -> str:
        """For ``ClientTrustConfig.from_json`` (no TUF involved, §0)."""
        return json.dumps(self.trust_config(), indent=2)

    def write_trust_config(self, path: Path) -> Path:
        """Write the trust config (for ``sigstore --trust-config PATH``); ``path``."""
        path.write_text(self.trust_config_json(), encoding="utf-8")
        return path

    def write_trusted_root(self, path: Path) -> Path:
        """Write the trusted root alone (for ``TrustedRoot.from_file``); ``path``."""
        path.write_text(json.dumps(self.trusted_root(), indent=2), encoding="utf-8")
        return path

    # identity tokens (§1)

    def identity_token(
        self, identity: str = DEFAULT_IDENTITY, issuer: str = GITHUB_ISSUER, **claims: Any
    ) -> str:
        """An HS256 JWT from ``issuer`` for ``identity``, valid for :data:`TOKEN_LIFETIME`.

        ``sub`` is ``identity``; ``aud`` is ``sigstore``. For :data:`EMAIL_ISSUERS` it also has
        ``email`` (= ``identity``); for GitHub's issuer the :func:`github_workflow_claims`
        of ``identity``. ``claims`` are added last and win; a claim given as ``None`` is left
        out (``exp=0`` gives an expired token, ``email=None`` one without ``email``).
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer,
            "sub": identity,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
        }
        if issuer in EMAIL_ISSUERS:
            payload |= {"email": identity, "email_verified": True}
        if issuer == GITHUB_ISSUER:
            payload |= github_workflow_claims(identity)
        payload |= claims
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, self.token_secret, algorithm="HS256")

    def verify_identity_token(self, token: str) -> dict[str, Any]:
        """The claims of a token this instance issued (what Fulcio checks); raises
        ``jwt.InvalidTokenError`` otherwise."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self.token_secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["iss", "sub", "aud", "iat", "exp"]},
        )
        return claims

    def github_actions_env(self, identity: str = DEFAULT_IDENTITY, **claims: Any) -> dict[str, str]:
        """The environment of a GitHub Actions job with ``id-token: write`` whose tokens are
        :meth:`identity_token` ``(identity, GITHUB_ISSUER, **claims)`` with the ``aud`` asked for.

        Each call grants a fresh request token. The request URL carries ``api-version`` like
        GitHub's does; clients add ``audience`` to its query (PyPA ``id``'s ``detect_github``
        needs ``GITHUB_ACTIONS`` and both ``ACTIONS_ID_TOKEN_REQUEST_*`` variables).
        """
        request_token = secrets.token_urlsafe(24)
        with self._lock:
            self._actions_grants[request_token] = (identity, dict(claims))
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}{GITHUB_TOKEN_PATH}?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": request_token,
        }

    # the services

    def serve(
        self, service: str, headers: Message, query: str, body: bytes
    ) -> tuple[HTTPStatus, dict[str, Any]]:
        """Answer one request to ``service``; raises :class:`ServiceRefusal`."""
        if service == "fulcio":
            return HTTPStatus.CREATED, self._signing_certificate(headers, _json(body))
        if service == "rekor":
            return HTTPStatus.CREATED, self.log.submit(_json(body))
        if service == "github-token":
            return HTTPStatus.OK, self._github_token(headers, query)
        raise ServiceRefusal(HTTPStatus.NOT_FOUND, f"no service {service}")

    def _signing_certificate(self, headers: Message, request: Any) -> dict[str, Any]:
        """Fulcio v2 (§3): a token-bound leaf for the CSR's key, answered as
        ``signedCertificateEmbeddedSct`` (the detached-SCT form is not supported by the
        client) with the chain ``[leaf, root]`` (it needs at least two certificates)."""
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ServiceRefusal(HTTPStatus.UNAUTHORIZED, "a bearer identity token is required")
        try:
            claims = self.verify_identity_token(token.strip())
        except jwt.InvalidTokenError as e:
            raise ServiceRefusal(HTTPStatus.UNAUTHORIZED, f"invalid identity token: {e}") from e
        try:
            pem = base64.b64decode(request["certificateSigningRequest"], validate=True)
            csr = x509.load_pem_x509_csr(pem)
        except (KeyError, TypeError, ValueError) as e:
            raise ServiceRefusal(HTTPStatus.BAD_REQUEST, f"no usable CSR: {e!r}") from e
        # The CSR's signature is the proof of possession of the key (§3).
        if not csr.is_signature_valid:
            raise ServiceRefusal(HTTPStatus.BAD_REQUEST, "the CSR's signature does not verify")
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        leaf = self.authority.issue(csr.public_key(), claims, now)
        with self._lock:
            self._certificates.append(leaf)
        chain = [_pem(leaf), _pem(self.ca_certificate)]
        return {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

    def _github_token(self, headers: Message, query: str) -> dict[str, Any]:
        """GitHub Actions' OIDC token request: ``{"value": JWT}`` for a granted request
        token (``id`` sends the scheme as ``bearer``)."""
        scheme, _, presented = headers.get("Authorization", "").partition(" ")
        with self._lock:
            grant = self._actions_grants.get(presented.strip())
        if scheme.lower() != "bearer" or grant is None:
            raise ServiceRefusal(HTTPStatus.UNAUTHORIZED, "unknown request token")
        audience = parse_qs(query).get("audience")
        if not audience:
            # GitHub would default to the repository owner's URL; nobody here relies on that.
            raise ServiceRefusal(HTTPStatus.BAD_REQUEST, "this stand-in needs ?audience=")
        identity, claims = grant
        return {
            "value": self.identity_token(identity, GITHUB_ISSUER, **{"aud": audience[0]} | claims)
        }

    def record(self, call: ServiceCall) -> None:
        with self._lock:
            self._calls.append(call)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise ServiceRefusal(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {e}") from e


# -- HTTP ---------------------------------------------------------------------------


def _handler(standin: SigstoreStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        server_version = "wasmctl-sigstore-standin"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            service = _ROUTES.get((method, url.path), "unknown")
            extra: dict[str, str] = {}
            try:
                if service == "unknown":
                    raise ServiceRefusal(HTTPStatus.NOT_FOUND, f"no {method} {url.path} here")
                status, payload = standin.serve(service, self.headers, url.query, body)
                if service == "rekor":
                    (uuid,) = payload
                    extra["Location"] = f"/api/v1/log/entries/{uuid}"
            except ServiceRefusal as refusal:
                status = refusal.status
                payload = {"code": int(status), "message": refusal.message}
            except Exception as e:  # a stand-in bug: say so rather than drop the connection
                status = HTTPStatus.INTERNAL_SERVER_ERROR
                payload = {"code": int(status), "message": f"stand-in failure: {e!r}"}
            standin.record(ServiceCall(service, method, url.path, int(status)))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
