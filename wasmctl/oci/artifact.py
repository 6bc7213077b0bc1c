"""Reading artifacts: resolve a reference, recognise its format, and get its Wasm out.

Formats (shared/reference/oci-formats.md §1-§3): the CNCF Wasm artifact, compat `wasi/wasm`
images, wasm-to-oci (and cosign `upload wasm`), Spin applications, wasmCloud's pre-1.0 actors
and provider archives, and image indexes, among them Docker buildx indexes that carry
attestation manifests beside the `wasi/wasm` image.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import LayoutError, OCILayout, layout_for_reading
from wasmctl.oci.models import (
    Descriptor,
    Index,
    Manifest,
    ManifestError,
    load_json_object,
    parse_manifest_or_index,
)
from wasmctl.oci.reference import LayoutReference

if TYPE_CHECKING:
    from wasmctl.oci.registry import RegistryClient

MAX_MODULE_BYTES = 1 << 30
CHUNK = 1 << 20


class NoWasmManifestError(LayoutError):
    """An index whose manifests are all for other platforms (an ordinary container image)."""


class ArtifactKind(enum.StrEnum):
    """The format `inspect` names."""

    WASM = "wasm"
    COMPAT = "compat"
    WASM_TO_OCI = "wasm-to-oci"
    SPIN = "spin"
    WASMCLOUD_LEGACY = "wasmcloud-legacy"
    WASMCLOUD_PROVIDER = "wasmcloud-provider"
    UNKNOWN = "unknown"


class IndexKind(enum.StrEnum):
    """What kind of index a reference points at."""

    INDEX = "index"
    BUILDX = "buildx-index"


@dataclass(frozen=True)
class IndexEntry:
    """One manifest of an index, as `inspect` shows it."""

    descriptor: Descriptor
    attestation: bool
    kind: ArtifactKind | None = None


@dataclass(frozen=True)
class Artifact:
    """A resolved artifact: the manifest wasmctl picked, its config and format."""

    reference: str
    descriptor: Descriptor
    manifest: Manifest
    manifest_descriptor: Descriptor
    config: dict[str, Any] | None
    kind: ArtifactKind
    index: Index | None = None
    index_kind: IndexKind | None = None
    index_entries: tuple[IndexEntry, ...] = field(default=())


def detect(manifest: Manifest, config: dict[str, Any] | None) -> ArtifactKind:
    """Name the format of a manifest from its config and layer media types."""
    config_type = manifest.config.media_type
    layer_types = {layer.media_type for layer in manifest.layers}
    labels = ((config or {}).get("config") or {}).get("Labels") or {}
    if (
        mt.SPIN_LOCKED_APP in layer_types
        or config_type == mt.SPIN_LOCKED_APP
        or (isinstance(labels, dict) and mt.SPIN_LOCKED_APP_LABEL in labels)
    ):
        return ArtifactKind.SPIN
    if config_type == mt.WASM_CONFIG:
        return ArtifactKind.WASM
    if config_type == mt.WASM_TO_OCI_CONFIG:
        return ArtifactKind.WASM_TO_OCI
    if config_type == mt.WASMCLOUD_ACTOR_CONFIG:
        return ArtifactKind.WASMCLOUD_LEGACY
    if config_type == mt.WASMCLOUD_PROVIDER_CONFIG:
        return ArtifactKind.WASMCLOUD_PROVIDER
    if config_type in mt.IMAGE_CONFIG_TYPES and config is not None:
        arch = str(config.get("architecture", "")).lower()
        os_name = str(config.get("os", "")).lower()
        if arch.startswith("wasm") and os_name.startswith("wasi"):
            if mt.WASM_CONTENT_LAYER in layer_types:
                return ArtifactKind.SPIN  # Spin: an image config with per-component layers
            if layer_types & set(mt.TAR_LAYER_TYPES):
                return ArtifactKind.COMPAT
    return ArtifactKind.UNKNOWN


@contextlib.contextmanager
def open_artifact(ref: LayoutReference) -> Iterator[tuple[OCILayout, Artifact]]:
    """Resolve a layout reference to an artifact (an index to its `wasi/wasm` manifest)."""
    with layout_for_reading(ref) as layout:
        descriptor = layout.resolve(ref.tag, ref.digest)
        yield layout, resolve_artifact(layout, descriptor, str(ref))


class BlobReader(Protocol):
    """Where manifests and configs are read from: a layout, or a registry repository."""

    def read_blob(self, descriptor: Descriptor, *, limit: int = ...) -> bytes: ...


class RepositoryReader:
    """Reads manifests and configs of one registry repository (a `BlobReader`)."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository

    def read_blob(self, descriptor: Descriptor, *, limit: int = 64 << 20) -> bytes:
        """A manifest or a small blob, verified."""
        return self.client.read_blob(self.repository, descriptor, limit=limit)


def resolve_artifact(layout: BlobReader, descriptor: Descriptor, shown: str) -> Artifact:
    """The artifact a descriptor points at."""
    try:
        document = parse_manifest_or_index(
            layout.read_blob(descriptor, limit=4 << 20), descriptor.media_type
        )
    except ManifestError as e:
        raise ManifestError(f"{shown}: {e.message}") from None
    if isinstance(document, Manifest):
        config = _config(layout, document)
        return Artifact(shown, descriptor, document, descriptor, config, detect(document, config))
    entries = []
    for entry in document.manifests:
        attestation = (
            entry.annotations.get(mt.DOCKER_REFERENCE_TYPE) == mt.DOCKER_ATTESTATION_MANIFEST
        )
        entries.append(IndexEntry(entry, attestation))
    candidates = [
        e.descriptor
        for e in entries
        if not e.attestation
        and e.descriptor.media_type in mt.MANIFEST_TYPES
        and (e.descriptor.platform is None or e.descriptor.platform.is_wasm())
    ]
    wasm_platform = [d for d in candidates if d.platform is not None]
    chosen = wasm_platform or candidates
    if not chosen:
        raise NoWasmManifestError(f"{shown}: the index has no wasi/wasm manifest")
    selected = chosen[0]
    manifest = Manifest.from_bytes(layout.read_blob(selected, limit=4 << 20))
    config = _config(layout, manifest)
    kind = detect(manifest, config)
    entries = [
        IndexEntry(e.descriptor, e.attestation, kind if e.descriptor == selected else None)
        for e in entries
    ]
    return Artifact(
        reference=shown,
        descriptor=descriptor,
        manifest=manifest,
        manifest_descriptor=selected,
        config=config,
        kind=kind,
        index=document,
        index_kind=IndexKind.BUILDX if any(e.attestation for e in entries) else IndexKind.INDEX,
        index_entries=tuple(entries),
    )


def _config(layout: BlobReader, manifest: Manifest) -> dict[str, Any] | None:
    """The config as JSON, or None when it is not a JSON object (some formats use blobs)."""
    if manifest.config.size > 4 << 20:
        return None
    raw = layout.read_blob(manifest.config, limit=4 << 20)
    try:
        return load_json_object(raw, "config")
    except ManifestError:
        return None


def is_wasm_layer(layer: Descriptor, kind: ArtifactKind) -> bool:
    """True for a layer that holds a module: raw Wasm types, or a compat image's tar."""
    if layer.media_type in mt.RAW_WASM_LAYER_TYPES:
        return True
    return kind is ArtifactKind.COMPAT and layer.media_type in mt.TAR_LAYER_TYPES


@dataclass(frozen=True)
class ExtractedModule:
    """A module taken out of a layer, with the name to report it by."""

    name: str
    path: Path
    layer: Descriptor


def extract_modules(layout: OCILayout, artifact: Artifact, workdir: Path) -> list[ExtractedModule]:
    """Every module of the artifact's Wasm layers, written under `workdir`, digests checked."""
    out: list[ExtractedModule] = []
    for i, layer in enumerate(artifact.manifest.layers):
        if not is_wasm_layer(layer, artifact.kind):
            continue
        label = layer.annotations.get(mt.ANNOTATION_TITLE) or f"layer{i}"
        if layer.media_type in mt.RAW_WASM_LAYER_TYPES:
            path = layout.verify_blob(layer)
            out.append(ExtractedModule(f"{artifact.reference}#{label}", path, layer))
            continue
        with layout.blob_path(layer.digest).open("rb") as blob:
            reader = _VerifyingReader(blob, layer)
            for name, data_path in tar_modules(reader, workdir / f"layer{i}", layer):
                out.append(ExtractedModule(f"{artifact.reference}#/{name}", data_path, layer))
            reader.finish()
    return out


class _VerifyingReader(io.RawIOBase):
    """Reads a blob, hashing it; `finish` drains the rest and compares with the descriptor."""

    def __init__(self, raw: io.BufferedReader, descriptor: Descriptor) -> None:
        self.raw = raw
        self.descriptor = descriptor
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.hash.update(memoryview(buffer)[:n])
            self.size += n
        return n or 0

    def finish(self) -> None:
        while self.read(CHUNK):
            pass
        digest = "sha256:" + self.hash.hexdigest()
        if digest != self.descriptor.digest or self.size != self.descriptor.size:
            raise LayoutError(f"layer {self.descriptor.digest} does not match its digest or size")


def tar_modules(stream: io.RawIOBase, workdir: Path, layer: Descriptor) -> list[tuple[str, Path]]:
    """The `*.wasm` regular files of a (gzipped) tar stream, copied out with a size cap."""
    workdir.mkdir(parents=True, exist_ok=True)
    found: list[tuple[str, Path]] = []
    try:
        with tarfile.open(
            fileobj=stream,
            mode="r|" if layer.media_type == mt.OCI_LAYER_TAR else "r|gz",
        ) as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                parts = [p for p in name.parts if p not in ("/", ".", "")]
                if not member.isfile() or not name.name.endswith(".wasm") or ".." in parts:
                    continue
                if member.size > MAX_MODULE_BYTES:
                    raise InputError(f"{member.name} in layer {layer.digest} is too large")
                source = tar.extractfile(member)
                if source is None:
                    continue
                target = workdir / f"{len(found)}.wasm"
                with source, target.open("wb") as out:
                    while chunk := source.read(CHUNK):
                        out.write(chunk)
                found.append(("/".join(parts), target))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise LayoutError(f"layer {layer.digest} is not a readable tar: {e}") from None
    return found
