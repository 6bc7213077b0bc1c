"""Descriptors, manifests and indexes, and the exact bytes that get digested.

wasmctl writes JSON canonically (sorted keys, no spaces, UTF-8), so the same content always
has the same digest. What it reads keeps the bytes it came from: a digest is always of
those bytes, never of a re-serialisation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wasmctl import _json
from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution-spec: accept at least 4 MB


class ManifestError(InputError):
    """A manifest, index, config or descriptor that does not fit the OCI image spec."""


def canonical_json(value: Any) -> bytes:
    """The canonical bytes of a JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    """`sha256:<hex>` of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """`digest` if it is a well-formed sha256 digest; otherwise a ManifestError."""
    if not DIGEST_RE.match(digest):
        raise ManifestError(f"not a sha256 digest: {digest!r}")
    return digest


@dataclass(frozen=True, slots=True)
class Platform:
    """An image index entry's platform."""

    architecture: str
    os: str
    variant: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As JSON data."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, data: Any) -> Platform:
        """From JSON data."""
        if not isinstance(data, dict):
            raise ManifestError("platform must be an object")
        return cls(
            architecture=_str(data, "architecture", required=True),
            os=_str(data, "os", required=True),
            variant=_str(data, "variant"),
        )

    def is_wasm(self) -> bool:
        """`wasi/wasm` and the spellings seen in the wild (`wasip1`, `Wasip1`, `wasm32`)."""
        return self.architecture.lower().startswith("wasm") and (
            self.os.lower().startswith("wasi") or self.os.lower() == "wasm"
        )


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor: what a blob or manifest is, its digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As JSON data (only the fields that are set)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        """From JSON data, checking the fields the spec requires."""
        if not isinstance(data, dict):
            raise ManifestError("a descriptor must be an object")
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"descriptor size must be a non-negative integer, not {size!r}")
        digest = _str(data, "digest", required=True)
        if not ANY_DIGEST_RE.match(digest):
            raise ManifestError(f"descriptor digest is malformed: {digest!r}")
        platform = data.get("platform")
        urls = data.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ManifestError("descriptor urls must be a list of strings")
        return cls(
            media_type=_str(data, "mediaType", required=True),
            digest=digest,
            size=size,
            annotations=_annotations(data),
            artifact_type=_str(data, "artifactType"),
            platform=Platform.from_json(platform) if platform is not None else None,
            urls=tuple(urls),
        )

    @classmethod
    def of(
        cls,
        media_type: str,
        data: bytes,
        annotations: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Descriptor:
        """The descriptor of some bytes."""
        return cls(media_type, sha256_digest(data), len(data), dict(annotations or {}), **kw)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest (OCI, or Docker schema 2), with the bytes it was read from."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str | None = mt.OCI_MANIFEST
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    subject: Descriptor | None = None
    raw: bytes = b""

    def to_json(self) -> dict[str, Any]:
        """As JSON data."""
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return _with_common_fields(out, self)

    def to_bytes(self) -> bytes:
        """The bytes to store: as read, or canonical JSON for a manifest built here."""
        return self.raw or canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Parse a manifest, keeping its bytes."""
        data, layers = _document(raw, "manifest", mt.MANIFEST_TYPES, "layers")
        return cls(
            config=Descriptor.from_json(data.get("config")),
            layers=tuple(Descriptor.from_json(d) for d in layers),
            **_common_fields(data),
            raw=bytes(raw),
        )


@dataclass(frozen=True, slots=True)
class Index:
    """An image index (or Docker manifest list), with the bytes it was read from."""

    manifests: tuple[Descriptor, ...]
    media_type: str | None = mt.OCI_INDEX
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    subject: Descriptor | None = None
    raw: bytes = b""

    def to_json(self) -> dict[str, Any]:
        """As JSON data."""
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "manifests": [d.to_json() for d in self.manifests],
        }
        return _with_common_fields(out, self)

    def to_bytes(self) -> bytes:
        """The bytes to store: as read, or canonical JSON for an index built here."""
        return self.raw or canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Index:
        """Parse an index, keeping its bytes."""
        data, manifests = _document(raw, "index", mt.INDEX_TYPES, "manifests")
        return cls(
            manifests=tuple(Descriptor.from_json(d) for d in manifests),
            **_common_fields(data),
            raw=bytes(raw),
        )


def _document(
    raw: bytes, what: str, media_types: tuple[str, ...], list_key: str
) -> tuple[dict[str, Any], list[Any]]:
    """The JSON of a manifest or index, its media type and schema version checked, and the
    list of descriptors it holds (`layers` or `manifests`)."""
    data = _load(raw, what)
    media_type = _str(data, "mediaType")
    if media_type is not None and media_type not in media_types:
        raise ManifestError(f"not an image {what}: mediaType {media_type}")
    if data.get("schemaVersion") != 2:
        raise ManifestError(f"{what} schemaVersion must be 2")
    items = data.get(list_key)
    if not isinstance(items, list):
        raise ManifestError(f"{what} {list_key} must be a list")
    return data, items


def _with_common_fields(out: dict[str, Any], document: Manifest | Index) -> dict[str, Any]:
    """Add the optional fields manifests and indexes share to their JSON."""
    if document.media_type:
        out["mediaType"] = document.media_type
    if document.annotations:
        out["annotations"] = dict(document.annotations)
    if document.artifact_type:
        out["artifactType"] = document.artifact_type
    if document.subject:
        out["subject"] = document.subject.to_json()
    return out


def _common_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The optional fields manifests and indexes share, read from their JSON."""
    subject = data.get("subject")
    return {
        "media_type": _str(data, "mediaType"),
        "annotations": _annotations(data),
        "artifact_type": _str(data, "artifactType"),
        "subject": Descriptor.from_json(subject) if subject is not None else None,
    }


def parse_manifest_or_index(raw: bytes, media_type: str | None = None) -> Manifest | Index:
    """A manifest or an index, told apart by `media_type` or the document itself."""
    kind = media_type
    if kind is None:
        data = _load(raw, "manifest")
        kind = data.get("mediaType") if isinstance(data.get("mediaType"), str) else None
        if kind is None:
            kind = mt.OCI_INDEX if "manifests" in data else mt.OCI_MANIFEST
    if kind in mt.INDEX_TYPES:
        return Index.from_bytes(raw)
    if kind in mt.MANIFEST_TYPES:
        return Manifest.from_bytes(raw)
    raise ManifestError(f"unsupported manifest media type {kind}")


def load_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON object from bytes, or a ManifestError saying what was expected."""
    return _load(raw, what)


def _load(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{what} is larger than {MAX_MANIFEST_BYTES} bytes")
    data = _json.loads(raw, what, ManifestError)
    if not isinstance(data, dict):
        raise ManifestError(f"{what} must be a JSON object")
    return data


def _str(data: Mapping[str, Any], key: str, *, required: bool = False) -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise ManifestError(f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise ManifestError(f"field {key!r} must be a string")
    return value


def _annotations(data: Mapping[str, Any]) -> dict[str, str]:
    value = data.get("annotations") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestError("annotations must map strings to strings")
    return dict(value)
