"""`inspect REF`: an artifact's format, manifest, config and layers as data."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wasmctl.oci import media_types as mt
from wasmctl.oci.artifact import Artifact, is_wasm_layer
from wasmctl.oci.models import Descriptor
from wasmctl.oci.reference import Reference
from wasmctl.oci.source import RegistryOptions, open_artifact

if TYPE_CHECKING:
    from wasmctl.sign.targets import FoundSignature

SCHEMA = "wasmctl.inspect-artifact/v1"


def inspect_reference(ref: Reference, options: RegistryOptions | None = None) -> dict[str, Any]:
    """Resolve a layout or registry reference and describe it, referrers included."""
    from wasmctl.sign.targets import list_signatures

    with open_artifact(ref, options=options) as (source, artifact):
        digest = artifact.descriptor.digest
        referrers = source.referrers(digest)
        signatures = list_signatures(source, digest)
    return describe_artifact(artifact, referrers, signatures)


def describe_artifact(
    artifact: Artifact,
    referrers: list[Descriptor] | None = None,
    signatures: list[FoundSignature] | None = None,
) -> dict[str, Any]:
    """JSON-ready data: what `inspect --format json REF` prints."""
    manifest = artifact.manifest
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "reference": artifact.reference,
        "format": artifact.kind.value,
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
        "referrers": [
            {
                "digest": r.digest,
                "mediaType": r.media_type,
                "artifactType": r.artifact_type,
                "size": r.size,
                "annotations": dict(r.annotations),
            }
            for r in referrers or ()
        ],
        "signatures": [s.to_json() for s in signatures or ()],
        "sboms": [
            {"digest": r.digest, "artifactType": r.artifact_type}
            for r in referrers or ()
            if r.artifact_type in mt.SBOM_TYPES  # attached; attested ones are signatures
        ],
    }
    if artifact.index is not None and artifact.index_kind is not None:
        out["index"] = {
            "kind": artifact.index_kind.value,
            "manifests": [
                {
                    "digest": e.descriptor.digest,
                    "mediaType": e.descriptor.media_type,
                    "size": e.descriptor.size,
                    "platform": e.descriptor.platform.to_json() if e.descriptor.platform else None,
                    "attestation": e.attestation,
                    "selected": e.descriptor.digest == artifact.manifest_descriptor.digest,
                    "annotations": dict(e.descriptor.annotations),
                }
                for e in artifact.index_entries
            ],
        }
    return out
