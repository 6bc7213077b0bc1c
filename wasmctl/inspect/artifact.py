"""`inspect REF`: an artifact's format, manifest, config and layers as data.

Any OCI image or index is described, Wasm or not: what it is (`summary`, and `wasm` for
whether wasmctl reads it as a Wasm artifact), the entries of an index (platforms, and the
attestation manifests Docker buildx adds), its referrers, the signatures and attestations
stored for it, and the entries a `cosign save` layout keeps beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wasmctl.oci import media_types as mt
from wasmctl.oci.artifact import (
    Artifact,
    ArtifactKind,
    IndexEntry,
    IndexKind,
    NoWasmManifestError,
    is_wasm_layer,
    resolve_artifact,
)
from wasmctl.oci.layout import CosignEntry, CosignKind
from wasmctl.oci.models import Descriptor, Index, Manifest, parse_manifest_or_index
from wasmctl.oci.reference import Reference
from wasmctl.oci.source import RegistryOptions, open_source
from wasmctl.sign.bundle import BUNDLE_V03
from wasmctl.sign.legacy import DSSE_LAYER, SIMPLE_SIGNING

if TYPE_CHECKING:
    from wasmctl.sign.targets import FoundSignature

SCHEMA = "wasmctl.inspect-artifact/v1"
MAX_SUMMARY_PLATFORMS = 8  # an index of many platforms names the first few in its summary
COSIGN_SAVED_NAMES = {CosignKind.SIGNATURES: "signatures", CosignKind.ATTESTATIONS: "attestations"}


def inspect_reference(ref: Reference, options: RegistryOptions | None = None) -> dict[str, Any]:
    """Resolve a layout or registry reference and describe it, referrers included: a Wasm
    artifact as such, and any other image or index as what it is."""
    from wasmctl.sign.targets import list_signatures

    with open_source(ref, options) as source:
        descriptor = source.subject()
        found: Artifact | tuple[Index, str]  # an artifact, or an index and why it is none
        try:
            found = resolve_artifact(source, descriptor, str(ref))
        except NoWasmManifestError as e:  # only an index resolves to no manifest
            raw = source.read_blob(descriptor, limit=4 << 20)
            index = parse_manifest_or_index(raw, descriptor.media_type)
            if not isinstance(index, Index):
                raise
            found = (index, e.message.removeprefix(f"{ref}: "))
        digest = descriptor.digest
        stored = (source.referrers(digest), list_signatures(source, digest))
        saved = source.cosign_stores(digest)
    if isinstance(found, Artifact):
        return describe_artifact(found, *stored, saved)
    return describe_index(str(ref), descriptor, *found, *stored, saved)


def describe_artifact(
    artifact: Artifact,
    referrers: list[Descriptor] | None = None,
    signatures: list[FoundSignature] | None = None,
    saved: Sequence[CosignEntry] = (),
) -> dict[str, Any]:
    """JSON-ready data: what `inspect --format json REF` prints."""
    manifest = artifact.manifest
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "reference": artifact.reference,
        "format": artifact.kind.value,
        "wasm": artifact.kind is not ArtifactKind.UNKNOWN,
        "summary": _artifact_summary(artifact),
        "digest": artifact.descriptor.digest,
        "mediaType": artifact.descriptor.media_type,
        "manifestDigest": artifact.manifest_descriptor.digest,
        "manifest": json.loads(manifest.to_bytes()),
        "config": artifact.config,
        "layers": [
            {
                "mediaType": layer.media_type,
                "digest": layer.digest,
                "size": layer.size,
                "annotations": dict(layer.annotations),
                "wasm": is_wasm_layer(layer, artifact.kind),
            }
            for layer in manifest.layers
        ],
        "index": None,
        **_stored_beside(referrers or [], signatures or [], saved),
    }
    if artifact.index is not None and artifact.index_kind is not None:
        selected = artifact.manifest_descriptor.digest
        out["index"] = _index_json(artifact.index_kind, artifact.index_entries, selected)
    return out


def describe_index(
    reference: str,
    descriptor: Descriptor,
    index: Index,
    reason: str,
    referrers: list[Descriptor] | None = None,
    signatures: list[FoundSignature] | None = None,
    saved: Sequence[CosignEntry] = (),
) -> dict[str, Any]:
    """The same data for an index wasmctl does not read as a Wasm artifact (an ordinary
    container image, or one that would run as Wasm but cannot be checked as one: `reason`
    says which): no manifest is picked, so `manifest`, `manifestDigest` and `config` are
    null and `layers` empty."""
    entries = tuple(IndexEntry(d, _is_attestation(d)) for d in index.manifests)
    kind = IndexKind.BUILDX if any(e.attestation for e in entries) else IndexKind.INDEX
    return {
        "schema": SCHEMA,
        "reference": reference,
        "format": ArtifactKind.UNKNOWN.value,
        "wasm": False,
        "summary": f"{_index_summary(descriptor, entries)}; {reason}",
        "digest": descriptor.digest,
        "mediaType": descriptor.media_type,
        "manifestDigest": None,
        "manifest": None,
        "config": None,
        "layers": [],
        "index": _index_json(kind, entries, None),
        **_stored_beside(referrers or [], signatures or [], saved),
    }


def _stored_beside(
    referrers: list[Descriptor], signatures: list[FoundSignature], saved: Sequence[CosignEntry]
) -> dict[str, Any]:
    return {
        "referrers": [
            {
                "digest": r.digest,
                "mediaType": r.media_type,
                "artifactType": r.artifact_type,
                "size": r.size,
                "annotations": dict(r.annotations),
            }
            for r in referrers
        ],
        "signatures": [s.to_json() for s in signatures],
        "sboms": [
            {"digest": r.digest, "artifactType": r.artifact_type}
            for r in referrers
            if r.artifact_type in mt.SBOM_TYPES  # attached; attested ones are signatures
        ],
        "cosignSaved": [
            {
                "kind": COSIGN_SAVED_NAMES[e.kind],
                "digest": e.descriptor.digest,
                "mediaType": e.descriptor.media_type,
                "size": e.descriptor.size,
            }
            for e in saved
            if e.kind in COSIGN_SAVED_NAMES
        ],
    }


def _index_json(
    kind: IndexKind, entries: Sequence[IndexEntry], selected: str | None
) -> dict[str, Any]:
    return {
        "kind": kind.value,
        "manifests": [
            {
                "digest": e.descriptor.digest,
                "mediaType": e.descriptor.media_type,
                "size": e.descriptor.size,
                "platform": e.descriptor.platform.to_json() if e.descriptor.platform else None,
                "attestation": e.attestation,
                "selected": e.descriptor.digest == selected,
                "annotations": dict(e.descriptor.annotations),
            }
            for e in entries
        ],
    }


def _is_attestation(entry: Descriptor) -> bool:
    """A Docker buildx attestation manifest (`vnd.docker.reference.type`)."""
    return entry.annotations.get(mt.DOCKER_REFERENCE_TYPE) == mt.DOCKER_ATTESTATION_MANIFEST


# -- what it is, in a sentence --------------------------------------------------------------

_WASM_NAMES = {
    ArtifactKind.WASM: "a Wasm artifact (CNCF TAG-Runtime format)",
    ArtifactKind.COMPAT: "a compat Wasm image (a wasi/wasm container image)",
    ArtifactKind.WASM_TO_OCI: "a wasm-to-oci Wasm artifact",
    ArtifactKind.SPIN: "a Spin application",
    ArtifactKind.WASMCLOUD_LEGACY: "a wasmCloud actor (pre-1.0 format)",
    ArtifactKind.WASMCLOUD_PROVIDER: "a wasmCloud provider archive",
}
_MANIFEST_NAMES = {
    mt.OCI_MANIFEST: "OCI image manifest",
    mt.DOCKER_MANIFEST: "Docker image manifest",
}
# what a manifest that stores statements or signatures holds (not a runnable image)
_SIGNATURE_LAYERS = {
    "application/vnd.in-toto+json": "in-toto statements (a buildx attestation manifest)",
    DSSE_LAYER: "cosign attestations (DSSE envelopes)",
    SIMPLE_SIGNING: "cosign signatures",
    BUNDLE_V03: "a Sigstore bundle",
}
_INDEX_NAMES = {mt.OCI_INDEX: "OCI image index", mt.DOCKER_MANIFEST_LIST: "Docker manifest list"}


def _artifact_summary(artifact: Artifact) -> str:
    if artifact.kind is not ArtifactKind.UNKNOWN:
        where = ", the Wasm manifest of an image index" if artifact.index is not None else ""
        return f"{_WASM_NAMES[artifact.kind]}{where}"
    return _manifest_summary(artifact.manifest_descriptor, artifact.manifest)


def _manifest_summary(descriptor: Descriptor, manifest: Manifest) -> str:
    name = _MANIFEST_NAMES.get(descriptor.media_type, descriptor.media_type)
    config = manifest.config.media_type
    if manifest.artifact_type:
        return f"{_a(name)} of artifact type {manifest.artifact_type}"
    layers = {layer.media_type for layer in manifest.layers}
    holds = [what for media_type, what in _SIGNATURE_LAYERS.items() if media_type in layers]
    if holds:
        return f"{_a(name)} holding {' and '.join(holds)}"
    if config in mt.IMAGE_CONFIG_TYPES:
        return f"{_a(name)} (a container image, {_count(len(manifest.layers), 'layer')})"
    return f"{_a(name)} with config {config}"


def _index_summary(descriptor: Descriptor, entries: Sequence[IndexEntry]) -> str:
    name = _INDEX_NAMES.get(descriptor.media_type, descriptor.media_type)
    images = [e.descriptor for e in entries if not e.attestation]
    platforms = [
        f"{d.platform.os}/{d.platform.architecture}"
        + (f"/{d.platform.variant}" if d.platform.variant else "")
        for d in images
        if d.platform is not None
    ]
    shown = ", ".join(platforms[:MAX_SUMMARY_PLATFORMS])
    if len(platforms) > MAX_SUMMARY_PLATFORMS:
        shown += f", and {len(platforms) - MAX_SUMMARY_PLATFORMS} more"
    parts = [_count(len(images), "manifest")]
    if shown:
        parts[0] += f" ({shown})"
    attestations = len(entries) - len(images)
    if attestations:
        parts.append(_count(attestations, "buildx attestation manifest"))
    return f"{_a(name)} of {' and '.join(parts)}"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
