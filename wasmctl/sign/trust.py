"""Trust roots: the Sigstore keys and CAs that signatures are checked against.

A trusted root (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`) lists the
transparency logs (Rekor), the certificate transparency logs, the certificate authorities
(Fulcio) and the timestamp authorities of one Sigstore deployment, each with the window in
which it was valid. wasmctl reads one from a file (`--trusted-root`, a bare trusted root or
a client trust config that holds one) or takes the production root embedded in
sigstore-python (`--offline`): no TUF, no cache writes, no network.

Key IDs are computed as sha256(SPKI DER), as the clients do; the file's `logId` is a hint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wasmctl import _json
from wasmctl._files import read_limited
from wasmctl.errors import InputError
from wasmctl.sign.keys import PublicKey, spki_der

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
MAX_TRUST_FILE = 4 << 20


class TrustRootError(InputError):
    """A trusted root that cannot be read or does not fit the format."""


@dataclass(frozen=True)
class ValidFor:
    """A validity window; an open end means "still valid"."""

    start: datetime | None
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        """Whether `when` falls in the window (both ends inclusive, as sigstore-go does)."""
        if self.start is not None and when < self.start:
            return False
        return self.end is None or when <= self.end

    @classmethod
    def from_json(cls, data: Any) -> ValidFor:
        if not isinstance(data, Mapping):
            return cls(None, None)
        return cls(_time(data.get("start")), _time(data.get("end")))


@dataclass(frozen=True)
class LogKey:
    """The key of a transparency log (Rekor) or of a certificate transparency log."""

    key_id: bytes
    public_key: PublicKey
    valid_for: ValidFor
    base_url: str


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA chain (leaf or intermediate first, root last) and when it issued certificates."""

    certificates: tuple[x509.Certificate, ...]
    valid_for: ValidFor
    uri: str


@dataclass(frozen=True)
class TrustedRoot:
    """One Sigstore deployment's roots of trust, and the file they came from."""

    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...]
    source: str
    raw: bytes

    def tlog_key(self, key_id: bytes) -> LogKey | None:
        """The transparency log whose key has this ID."""
        return next((log for log in self.tlogs if log.key_id == key_id), None)

    def ctlog_key(self, key_id: bytes) -> LogKey | None:
        """The certificate transparency log whose key has this ID."""
        return next((log for log in self.ctlogs if log.key_id == key_id), None)

    @classmethod
    def from_json(cls, raw: bytes, source: str) -> TrustedRoot:
        """Parse a trusted root, or the trusted root inside a client trust config."""
        data = _json.loads(raw, source, TrustRootError)
        if isinstance(data, dict) and data.get("mediaType") == TRUST_CONFIG_MEDIA_TYPE:
            data = data.get("trustedRoot")
            raw = json.dumps(data).encode()
        if not isinstance(data, dict) or data.get("mediaType") != TRUSTED_ROOT_MEDIA_TYPE:
            raise TrustRootError(
                f"{source}: not a Sigstore trusted root (mediaType {TRUSTED_ROOT_MEDIA_TYPE})"
            )
        try:
            return cls(
                tlogs=tuple(_log_key(item) for item in data.get("tlogs") or ()),
                ctlogs=tuple(_log_key(item) for item in data.get("ctlogs") or ()),
                certificate_authorities=tuple(
                    _authority(item) for item in data.get("certificateAuthorities") or ()
                ),
                timestamp_authorities=tuple(
                    _authority(item) for item in data.get("timestampAuthorities") or ()
                ),
                source=source,
                raw=raw,
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise TrustRootError(f"{source}: malformed trusted root ({e})") from None

    @classmethod
    def from_file(cls, path: Path) -> TrustedRoot:
        """Read a trusted root (or client trust config) file."""
        raw = read_limited(path, MAX_TRUST_FILE, "trusted root", TrustRootError)
        return cls.from_json(raw, str(path))

    @classmethod
    def embedded(cls) -> TrustedRoot:
        """The public-good production root shipped inside sigstore-python (no TUF, no I/O
        beyond reading the installed package)."""
        store = importlib.resources.files("sigstore") / "_store"
        resource = store / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
        return cls.from_json(resource.read_bytes(), "sigstore-python's embedded production root")

    def to_sigstore(self) -> Any:
        """The same root as sigstore-python's `TrustedRoot`, for its `Verifier`."""
        from sigstore.models import TrustedRoot as SigstoreTrustedRoot
        from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootMessage

        return SigstoreTrustedRoot(TrustedRootMessage.from_json(self.raw))


def key_id(public_key: PublicKey) -> bytes:
    """A log's key ID: sha256 of the key's SubjectPublicKeyInfo DER."""
    return hashlib.sha256(spki_der(public_key)).digest()


def _log_key(item: Mapping[str, Any]) -> LogKey:
    key = item["publicKey"]
    public_key = serialization.load_der_public_key(base64.b64decode(key["rawBytes"]))
    if not isinstance(
        public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    ):
        raise ValueError(f"unsupported log key type {type(public_key).__name__}")
    return LogKey(
        key_id=key_id(public_key),
        public_key=public_key,
        valid_for=ValidFor.from_json(key.get("validFor")),
        base_url=str(item.get("baseUrl", "")),
    )


def _authority(item: Mapping[str, Any]) -> CertificateAuthority:
    chain = item["certChain"]["certificates"]
    certificates = tuple(
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])) for c in chain
    )
    if not certificates:
        raise ValueError("a certificate authority without certificates")
    return CertificateAuthority(
        certificates=certificates,
        valid_for=ValidFor.from_json(item.get("validFor")),
        uri=str(item.get("uri", "")),
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
