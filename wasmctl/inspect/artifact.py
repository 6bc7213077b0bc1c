"""`inspect REF`: an artifact's format, manifest, config and layers as data."""

from __future__ import annotations

import json
from typing import Any

from wasmctl.oci.artifact import Artifact, is_wasm_layer

SCHEMA = "wasmctl.inspect-artifact/v1"


def describe_artifact(artifact: Artifact) -> dict[str, Any]:
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
