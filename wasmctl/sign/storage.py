"""Where signatures of an OCI artifact live, in a registry or an OCI layout.

Written as cosign v3 writes them (specs/BUNDLE_SPEC.md): a referrer manifest with
`artifactType` `application/vnd.dev.sigstore.bundle.v0.3+json`, the empty config, the bundle
as its one layer, the signed manifest as `subject`, and the annotations
`dev.sigstore.bundle.content` and `dev.sigstore.bundle.predicateType` that tell a signature
from an attestation without fetching it. Registries without the referrers API get the
`sha256-<hex>` fallback index (wasmctl.oci.referrers).

Read from there, and from cosign's older places: the `sha256-<hex>.sig` and `.att` tags, and
referrers of artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`. Index entries
are not trusted to tell what a referrer is (GHCR lists some with the empty type, kyverno
PR #16754): each candidate manifest is read and judged by its own layers.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from wasmctl._epoch import rfc3339, source_date_epoch
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import (
    LayoutError,
    LayoutWriter,
    OCILayout,
    layout_for_reading,
    layout_for_writing,
)
from wasmctl.oci.models import Descriptor, Manifest, ManifestError
from wasmctl.oci.reference import DEFAULT_TAG, LayoutReference, Reference, RegistryReference
from wasmctl.oci.registry import NotFoundError, RegistryClient
from wasmctl.oci.transfer import RegistryOptions
from wasmctl.sign.bundle import BUNDLE_V03
from wasmctl.sign.legacy import DSSE_LAYER, SIMPLE_SIGNING

CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
EMPTY_CONFIG = mt.EMPTY_JSON
MAX_SIGNATURE_BLOB = 16 << 20
MAX_CANDIDATES = 256


class ArtifactStore(Protocol):
    """The few operations signing and verifying need, on a registry or a layout."""

    @property
    def reference(self) -> Reference: ...

    def subject(self) -> Descriptor: ...

    def referrers(self, digest: str) -> list[Descriptor]: ...

    def manifest(self, reference: str) -> bytes | None: ...

    def blob(self, descriptor: Descriptor) -> bytes: ...

    def attach(self, blobs: list[tuple[Descriptor, bytes]], manifest: bytes) -> Descriptor: ...


class RegistryStore:
    def __init__(self, client: RegistryClient, reference: RegistryReference) -> None:
        self.client = client
        self.reference = reference

    def subject(self) -> Descriptor:
        ref = self.reference
        raw, media_type, digest = self.client.get_manifest(
            ref.repository, ref.digest or ref.tag or DEFAULT_TAG
        )
        return Descriptor(media_type or _sniff(raw), digest, len(raw))

    def referrers(self, digest: str) -> list[Descriptor]:
        from wasmctl.oci.referrers import list_referrers

        return list_referrers(self.client, self.reference.repository, digest)

    def manifest(self, reference: str) -> bytes | None:
        try:
            raw, _, _ = self.client.get_manifest(self.reference.repository, reference)
        except NotFoundError:
            return None
        return raw

    def blob(self, descriptor: Descriptor) -> bytes:
        return self.client.read_blob(
            self.reference.repository, descriptor, limit=MAX_SIGNATURE_BLOB
        )

    def attach(self, blobs: list[tuple[Descriptor, bytes]], manifest: bytes) -> Descriptor:
        from wasmctl.oci.referrers import push_referrer

        repository = self.reference.repository
        with tempfile.TemporaryDirectory(prefix="wasmctl-sign-") as scratch:
            for descriptor, data in blobs:
                staged = Path(scratch) / descriptor.digest.replace(":", "-")
                staged.write_bytes(data)
                self.client.push_blob(repository, descriptor, staged)
        return push_referrer(self.client, repository, manifest).descriptor


class LayoutStore:
    def __init__(
        self, layout: OCILayout, reference: LayoutReference, writer: LayoutWriter | None
    ) -> None:
        self.layout = layout
        self.reference = reference
        self.writer = writer

    def subject(self) -> Descriptor:
        return self.layout.resolve(self.reference.tag, self.reference.digest)

    def referrers(self, digest: str) -> list[Descriptor]:
        from wasmctl.oci.referrers import list_layout_referrers

        return list_layout_referrers(self.layout, digest)

    def manifest(self, reference: str) -> bytes | None:
        try:
            if reference.startswith("sha256:"):
                descriptor = self.layout.resolve(digest=reference)
            else:
                descriptor = self.layout.resolve(tag=reference)
        except LayoutError:
            return None
        return self.layout.read_blob(descriptor, limit=4 << 20)

    def blob(self, descriptor: Descriptor) -> bytes:
        return self.layout.read_blob(descriptor, limit=MAX_SIGNATURE_BLOB)

    def attach(self, blobs: list[tuple[Descriptor, bytes]], manifest: bytes) -> Descriptor:
        from wasmctl.oci.referrers import add_layout_referrer

        assert self.writer is not None, "the layout was opened read-only"
        for descriptor, data in blobs:
            self.writer.add_bytes(descriptor.media_type, data)
        return add_layout_referrer(self.writer, manifest)


def _sniff(raw: bytes) -> str:
    from wasmctl.oci.models import Index, parse_manifest_or_index

    document = parse_manifest_or_index(raw)
    if isinstance(document, Index):
        return document.media_type or mt.OCI_INDEX
    return document.media_type or mt.OCI_MANIFEST


@contextlib.contextmanager
def open_store(
    ref: Reference, options: RegistryOptions | None = None, *, write: bool = False
) -> Iterator[ArtifactStore]:
    """The artifact under `ref`, opened to read signatures (and to add them, with `write`:
    a layout change is one transaction, an archive is rewritten when it succeeds)."""
    if isinstance(ref, RegistryReference):
        with (options or RegistryOptions()).client(ref.registry) as client:
            yield RegistryStore(client, ref)
    elif write:
        with layout_for_writing(ref) as writer:
            yield LayoutStore(writer.layout, ref, writer)
    else:
        with layout_for_reading(ref) as layout:
            yield LayoutStore(layout, ref, None)


# -- writing ------------------------------------------------------------------------------


def bundle_referrer(
    subject: Descriptor, bundle: bytes, predicate_type: str, *, dsse: bool = True
) -> tuple[list[tuple[Descriptor, bytes]], bytes]:
    """The blobs and manifest of a bundle stored as a referrer of `subject`."""
    config = Descriptor.of(mt.OCI_EMPTY, EMPTY_CONFIG)
    layer = Descriptor.of(BUNDLE_V03, bundle)
    manifest = Manifest(
        config=config,
        layers=(layer,),
        media_type=mt.OCI_MANIFEST,
        artifact_type=BUNDLE_V03,
        subject=Descriptor(subject.media_type, subject.digest, subject.size),
        annotations={
            CONTENT_ANNOTATION: "dsse-envelope" if dsse else "message-signature",
            PREDICATE_ANNOTATION: predicate_type,
            "org.opencontainers.image.created": _created(),
        },
    )
    return [(config, EMPTY_CONFIG), (layer, bundle)], manifest.to_bytes()


def _created() -> str:
    """Now, or `SOURCE_DATE_EPOCH` for a reproducible signature manifest."""
    return rfc3339(source_date_epoch() or datetime.now(UTC))


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A signature-shaped thing found near an artifact: a bundle, or a legacy cosign layer."""

    source: str
    media_type: str
    data: bytes
    annotations: dict[str, str] = field(default_factory=dict)
    predicate_type: str | None = None


def find_candidates(store: ArtifactStore, digest: str) -> tuple[list[Candidate], list[str]]:
    """Every bundle and legacy signature layer stored for `digest`, and the problems met on
    the way (an unreadable referrer is reported, not fatal: another may verify)."""
    found: list[Candidate] = []
    problems: list[str] = []
    for descriptor in store.referrers(digest)[:MAX_CANDIDATES]:
        label = f"referrer {descriptor.digest}"
        try:
            raw = store.manifest(descriptor.digest)
            if raw is None:
                raise ManifestError("listed but missing")
            manifest = Manifest.from_bytes(raw)
            found += _layers(store, manifest, label)
        except (ManifestError, NotFoundError) as e:
            problems.append(f"{label}: {e}")
    for suffix in (".sig", ".att"):
        tag = digest.replace(":", "-") + suffix
        try:
            raw = store.manifest(tag)
            if raw is not None:
                found += _layers(store, Manifest.from_bytes(raw), f"tag {tag}")
        except (ManifestError, NotFoundError) as e:
            problems.append(f"tag {tag}: {e}")
    return found, problems


def _layers(store: ArtifactStore, manifest: Manifest, label: str) -> list[Candidate]:
    out = []
    for index, layer in enumerate(manifest.layers):
        if layer.media_type not in (BUNDLE_V03, SIMPLE_SIGNING, DSSE_LAYER):
            continue
        source = label if len(manifest.layers) == 1 else f"{label} layer {index}"
        annotations = dict(layer.annotations)
        predicate = manifest.annotations.get(PREDICATE_ANNOTATION) or annotations.get(
            "predicateType"
        )
        out.append(Candidate(source, layer.media_type, store.blob(layer), annotations, predicate))
    return out
