"""Manifests, indexes and descriptors: canonical bytes, parsing, and refusing bad documents."""

from __future__ import annotations

import json

import pytest

from wasmctl.oci import media_types as mt
from wasmctl.oci.models import (
    Descriptor,
    Index,
    Manifest,
    ManifestError,
    Platform,
    canonical_json,
    parse_manifest_or_index,
    sha256_digest,
)


def test_canonical_json_sorts_keys_and_has_no_spaces() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == (
        '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )


def test_the_empty_descriptor_digest() -> None:
    assert sha256_digest(mt.EMPTY_JSON) == mt.EMPTY_DIGEST


def test_manifest_round_trip_keeps_bytes() -> None:
    layer = Descriptor.of(mt.WASM_LAYER, b"\0asm", {mt.ANNOTATION_TITLE: "x.wasm"})
    config = Descriptor.of(mt.WASM_CONFIG, b"{}")
    built = Manifest(config, (layer,), annotations={"k": "v"})
    raw = built.to_bytes()
    assert json.loads(raw)["layers"][0]["annotations"] == {mt.ANNOTATION_TITLE: "x.wasm"}
    # bytes read elsewhere (spaces, other key order) are kept exactly
    spaced = json.dumps(json.loads(raw), indent=3).encode()
    parsed = Manifest.from_bytes(spaced)
    assert parsed.to_bytes() == spaced
    assert parsed.layers == built.layers


def test_index_with_platforms() -> None:
    entry = Descriptor(mt.OCI_MANIFEST, "sha256:" + "0" * 64, 10, platform=Platform("wasm", "wasi"))
    index = parse_manifest_or_index(Index((entry,)).to_bytes())
    assert isinstance(index, Index)
    assert index.manifests[0].platform == Platform("wasm", "wasi")
    assert index.manifests[0].platform.is_wasm()
    assert Platform("wasm", "Wasip1").is_wasm()
    assert not Platform("amd64", "linux").is_wasm()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 1, "config": {}, "layers": []}',
        b'{"schemaVersion": 2, "layers": []}',
        b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:00", "size": -1},'
        b' "layers": []}',
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",'
        b' "config": {}, "layers": []}',
        b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "nope", "size": 1},'
        b' "layers": []}',
        b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:00", "size": 1},'
        b' "layers": {}, "annotations": {"a": 1}}',
        b"{" + b" " * (5 << 20) + b"}",
    ],
)
def test_malformed_manifests_are_refused(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        Manifest.from_bytes(raw)
