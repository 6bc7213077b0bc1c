"""Referrers listed from a layout carry the digest of the bytes stored, not of a re-encoding."""

from __future__ import annotations

import json
from pathlib import Path

from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import sha256_digest
from wasmctl.oci.referrers import add_layout_referrer, list_layout_referrers

SUBJECT = "sha256:" + "ab" * 32
EMPTY = b"{}"


def test_a_referrer_with_unusual_spacing_keeps_its_stored_digest(tmp_path: Path) -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/vnd.example+json",
        "config": {"mediaType": mt.OCI_EMPTY, "digest": sha256_digest(EMPTY), "size": 2},
        "layers": [{"mediaType": mt.OCI_EMPTY, "digest": sha256_digest(EMPTY), "size": 2}],
        "subject": {"mediaType": mt.OCI_MANIFEST, "digest": SUBJECT, "size": 10},
    }
    raw = json.dumps(manifest, indent=3).encode()  # not the canonical encoding
    with OCILayout.writer(tmp_path / "lay") as writer:
        writer.add_bytes(mt.OCI_EMPTY, EMPTY)
        add_layout_referrer(writer, raw)
    [found] = list_layout_referrers(OCILayout.open(tmp_path / "lay"), SUBJECT)
    assert found.digest == sha256_digest(raw)
    assert found.size == len(raw)
