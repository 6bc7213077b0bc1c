"""Signatures as OCI artifacts: the referrer that stores one, and the candidates found.

Written as cosign v3 writes them (specs/BUNDLE_SPEC.md): a referrer manifest with
`artifactType` `application/vnd.dev.sigstore.bundle.v0.3+json`, the empty config, the bundle
as its one layer, the signed manifest as `subject`, and the annotations
`dev.sigstore.bundle.content` and `dev.sigstore.bundle.predicateType` that tell a signature
from an attestation without fetching it. Registries without the referrers API get the
`sha256-<hex>` fallback index (wasmctl.oci.referrers).

Read from there, and from cosign's older places: the `sha256-<hex>.sig` and `.att` tags,
referrers of artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`, and the
`sigs` / `atts` entries of a `cosign save` layout (`wasmctl.oci.layout.CosignKind`). Index
entries are not trusted to tell what a referrer is (GHCR lists some with the empty type,
kyverno PR #16754): each candidate manifest is read and judged by its own layers. Nothing
here decides what a candidate is about: the verifier holds each statement or payload to
the digest asked for, so an attestation stored beside the wrong image never counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from wasmctl._epoch import rfc3339, source_date_epoch
from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, Manifest, sha256_digest
from wasmctl.oci.source import Source
from wasmctl.sign.bundle import BUNDLE_MEDIA_TYPES, BUNDLE_V03
from wasmctl.sign.legacy import DSSE_LAYER, SIMPLE_SIGNING

CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
EMPTY_CONFIG = mt.EMPTY_JSON
MAX_SIGNATURE_BLOB = 16 << 20
MAX_CANDIDATES = 256  # signature layers read for one artifact
MAX_CANDIDATE_BYTES = 64 << 20  # their blobs, together
MAX_COSIGN_STORES = 16  # `cosign save` writes one signatures and one attestations entry


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
    """A signature-shaped thing found near an artifact: a bundle, or a legacy cosign layer.

    `media_type` says what the layer holds: `BUNDLE_V03` for a Sigstore bundle whatever the
    version and spelling of its layer type (the bundle's own `mediaType` says which), else
    the legacy cosign layer type."""

    source: str
    media_type: str
    data: bytes
    annotations: dict[str, str] = field(default_factory=dict)
    predicate_type: str | None = None


def find_candidates(store: Source, digest: str) -> tuple[list[Candidate], list[str]]:
    """Every bundle and legacy signature layer stored for `digest`, and the problems met on
    the way (an unreadable referrer is reported, not fatal: another may verify).

    Read from the referrers (the API, else the fallback tag), then cosign's `.sig` and
    `.att` tags, then the signature and attestation manifests a `cosign save` layout keeps
    beside the image. Each manifest is read once, however many of these name it; what is
    read is bounded (`MAX_CANDIDATES` layers, `MAX_CANDIDATE_BYTES` in all, and at most
    `MAX_COSIGN_STORES` cosign-save entries), the rest reported as a problem."""
    found = _Found(store)
    for descriptor in store.referrers(digest)[:MAX_CANDIDATES]:
        found.read(f"referrer {descriptor.digest}", descriptor.digest)
    for suffix in (".sig", ".att"):
        tag = digest.replace(":", "-") + suffix
        found.read(f"tag {tag}", tag)
    stores = store.cosign_stores(digest)
    for entry in stores[:MAX_COSIGN_STORES]:
        label = f"cosign-save {entry.kind.value.rpartition('/')[2]} {entry.descriptor.digest}"
        found.read(label, entry.descriptor.digest, entry.descriptor)
    if len(stores) > MAX_COSIGN_STORES:
        found.problems.append(
            f"cosign save: {len(stores)} signature entries beside the image; the first "
            f"{MAX_COSIGN_STORES} were read"
        )
    return found.candidates, found.problems


def candidate_type(media_type: str) -> str | None:
    """What a layer of this media type holds (`Candidate.media_type`), or None when it is no
    signature. Bundles come under two spellings: cosign v3's `...bundle.v0.3+json` and the
    parameter form GitHub's `actions/attest` (`@sigstore/oci`) has written,
    `...bundle+json;version=0.3`."""
    normal = ";".join(part.strip() for part in media_type.lower().split(";"))
    if normal in BUNDLE_MEDIA_TYPES:
        return BUNDLE_V03
    if normal in (SIMPLE_SIGNING, DSSE_LAYER):
        return normal
    return None


class _Found:
    """Candidates gathered from one store, each manifest once, within the bounds."""

    def __init__(self, store: Source) -> None:
        self.store = store
        self.candidates: list[Candidate] = []
        self.problems: list[str] = []
        self.manifests: set[str] = set()
        self.bytes = 0
        self.full = False

    def read(self, label: str, reference: str, descriptor: Descriptor | None = None) -> None:
        """The signature layers of the manifest at `reference` (a tag or digest; with
        `descriptor`, checked against it); a manifest that is not there is no problem
        unless something listed it."""
        try:
            if descriptor is not None:
                raw: bytes | None = self.store.child_manifest(descriptor)
            else:
                raw = self.store.manifest(reference)
            if raw is None:
                if reference.startswith("sha256:"):
                    self.problems.append(f"{label}: listed but missing")
                return
            digest = sha256_digest(raw)
            if digest in self.manifests:
                return
            self.manifests.add(digest)
            manifest = Manifest.from_bytes(raw)
        except InputError as e:  # malformed or missing; a registry failure is no such thing
            self.problems.append(f"{label}: {e.message}")
            return
        for index, layer in enumerate(manifest.layers):
            self._layer(
                manifest, layer, label if len(manifest.layers) == 1 else f"{label} layer {index}"
            )

    def _layer(self, manifest: Manifest, layer: Descriptor, source: str) -> None:
        kind = candidate_type(layer.media_type)
        if kind is None or self.full:
            return
        if len(self.candidates) >= MAX_CANDIDATES or self.bytes + layer.size > MAX_CANDIDATE_BYTES:
            self.full = True
            self.problems.append(
                f"{source}: not read; more signatures are stored than are read "
                f"({MAX_CANDIDATES} layers, {MAX_CANDIDATE_BYTES >> 20} MiB)"
            )
            return
        try:
            data = self.store.read_blob(layer, limit=MAX_SIGNATURE_BLOB)
        except InputError as e:
            self.problems.append(f"{source}: {e.message}")
            return
        self.bytes += len(data)
        annotations = dict(layer.annotations)
        predicate = manifest.annotations.get(PREDICATE_ANNOTATION) or annotations.get(
            "predicateType"
        )
        self.candidates.append(Candidate(source, kind, data, annotations, predicate))
