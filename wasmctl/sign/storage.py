"""Signatures as OCI artifacts: the referrer that stores one, and the candidates found.

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

from dataclasses import dataclass, field
from datetime import UTC, datetime

from wasmctl._epoch import rfc3339, source_date_epoch
from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, Manifest, ManifestError
from wasmctl.oci.registry import NotFoundError
from wasmctl.oci.source import Source
from wasmctl.sign.bundle import BUNDLE_V03
from wasmctl.sign.legacy import DSSE_LAYER, SIMPLE_SIGNING

CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
EMPTY_CONFIG = mt.EMPTY_JSON
MAX_SIGNATURE_BLOB = 16 << 20
MAX_CANDIDATES = 256


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


def find_candidates(store: Source, digest: str) -> tuple[list[Candidate], list[str]]:
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


def _layers(store: Source, manifest: Manifest, label: str) -> list[Candidate]:
    out = []
    for index, layer in enumerate(manifest.layers):
        if layer.media_type not in (BUNDLE_V03, SIMPLE_SIGNING, DSSE_LAYER):
            continue
        source = label if len(manifest.layers) == 1 else f"{label} layer {index}"
        annotations = dict(layer.annotations)
        predicate = manifest.annotations.get(PREDICATE_ANNOTATION) or annotations.get(
            "predicateType"
        )
        data = store.read_blob(layer, limit=MAX_SIGNATURE_BLOB)
        out.append(Candidate(source, layer.media_type, data, annotations, predicate))
    return out
