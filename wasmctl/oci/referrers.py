"""Referrers: artifacts that point at another with `subject` (signatures, SBOMs, attestations).

distribution-spec v1.1: a registry that indexes referrers answers a manifest PUT with
`OCI-Subject` and serves `GET /v2/<name>/referrers/<digest>`. Most registries do neither
(CNCF distribution, GHCR; shared/reference/oci-formats.md §4); for them the client keeps the
fallback: an image index tagged `sha256-<hex>` listing every referrer, each with its
`artifactType` (else its config media type) and the referrer's annotations. In an OCI image
layout, referrers are listed in `index.json` untagged, and found by reading the manifests.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import LayoutError, LayoutWriter, OCILayout
from wasmctl.oci.models import Descriptor, Index, Manifest, ManifestError, parse_manifest_or_index
from wasmctl.oci.registry import NotFoundError, RegistryClient


def fallback_tag(digest: str) -> str:
    """`sha256-<hex>`: the tag of the referrers index of `digest`."""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}-{hex_part}"


def referrer_descriptor(manifest: Manifest, raw: bytes) -> Descriptor:
    """How a referrer is listed: its artifact type (or config type) and annotations."""
    media_type = manifest.media_type or mt.OCI_MANIFEST
    return Descriptor.of(
        media_type,
        raw,
        dict(manifest.annotations),
        artifact_type=manifest.artifact_type or manifest.config.media_type,
    )


@dataclass(frozen=True)
class PushedReferrer:
    """What pushing a referrer did: its descriptor, and whether the fallback was updated."""

    descriptor: Descriptor
    fallback_updated: bool


def push_referrer(client: RegistryClient, repository: str, raw: bytes) -> PushedReferrer:
    """Push a manifest that has a `subject`; maintain the fallback index if needed."""
    manifest = Manifest.from_bytes(raw)
    if manifest.subject is None:
        raise ManifestError("a referrer needs a subject")
    descriptor = referrer_descriptor(manifest, raw)
    headers = client.put_manifest(repository, descriptor.digest, descriptor.media_type, raw)
    if headers.get("OCI-Subject"):
        return PushedReferrer(descriptor, False)
    tag = fallback_tag(manifest.subject.digest)
    current = _fallback_index(client, repository, tag)
    if any(d.digest == descriptor.digest for d in current):
        return PushedReferrer(descriptor, False)
    index = Index((*current, descriptor), media_type=mt.OCI_INDEX)
    client.put_manifest(repository, tag, mt.OCI_INDEX, index.to_bytes())
    return PushedReferrer(descriptor, True)


def _fallback_index(client: RegistryClient, repository: str, tag: str) -> tuple[Descriptor, ...]:
    try:
        raw, media_type, _ = client.get_manifest(repository, tag)
    except NotFoundError:
        return ()
    document = parse_manifest_or_index(raw, media_type or None)
    if not isinstance(document, Index):
        raise ManifestError(f"{repository}:{tag} is not an index; cannot list referrers in it")
    return document.manifests


def list_referrers(
    client: RegistryClient, repository: str, digest: str, artifact_type: str | None = None
) -> list[Descriptor]:
    """Referrers of `digest`: by the API where the registry has it, else by the fallback tag."""
    found = client.referrers(repository, digest, artifact_type)
    if found is None:
        found = list(_fallback_index(client, repository, fallback_tag(digest)))
    if artifact_type:
        found = [d for d in found if d.artifact_type == artifact_type]
    return found


def list_layout_referrers(
    layout: OCILayout, digest: str, artifact_type: str | None = None
) -> list[Descriptor]:
    """Referrers of `digest` listed in a layout's `index.json`."""
    found = []
    for entry in layout.index().manifests:
        if entry.media_type not in mt.MANIFEST_TYPES:
            continue
        try:
            raw = layout.read_blob(entry, limit=4 << 20)
            manifest = Manifest.from_bytes(raw)
        except (ManifestError, LayoutError):  # not a readable manifest: no referrer of ours
            continue
        if manifest.subject is not None and manifest.subject.digest == digest:
            # the stored bytes, not a re-serialisation: their digest is the referrer's
            descriptor = referrer_descriptor(manifest, raw)
            if artifact_type is None or descriptor.artifact_type == artifact_type:
                found.append(descriptor)
    return found


def add_layout_referrer(writer: LayoutWriter, raw: bytes) -> Descriptor:
    """Stage a referrer manifest in a layout and list it (untagged) in `index.json`."""
    manifest = Manifest.from_bytes(raw)
    descriptor = referrer_descriptor(manifest, raw)
    writer.add_bytes(descriptor.media_type, raw)
    writer.tag(descriptor, None)
    return descriptor
