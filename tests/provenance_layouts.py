"""The real SLSA provenance of `../shared/testdata/provenance/` (its README): two images built
by GitHub's SLSA generator (v1.10.0, v2.0.0) and saved with `cosign save`, with keyless
legacy attestations that verify offline against the public-good trusted root."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from wasmctl.sign.bundle import Statement

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"
PROVENANCE = SHARED / "provenance"
TRUSTED_ROOT = SHARED / "sigstore" / "trust" / "trusted_root.production.json"

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml"
)
GENERATOR_PATTERN = (
    r"https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/"
    r"generator_container_slsa3\.yml@refs/tags/v.*"
)
BUILD_TYPE = "https://github.com/slsa-framework/slsa-github-generator/container@v1"
SOURCE = "github.com/slsa-framework/example-package"
SOURCE_REF = "refs/tags/v13.0.30"
ENTRY_POINT = ".github/workflows/verifier-e2e.all.workflow_dispatch.main.all.slsa3.yml"
ATTS_KIND = "dev.cosignproject.cosign/atts"


@dataclass(frozen=True)
class ProvenanceImage:
    """One saved image: its layout, digest, the generator version that built it, and the
    commit of example-package it was built from."""

    version: str
    commit: str

    @property
    def layout(self) -> Path:
        return PROVENANCE / f"gha-container-{self.version}" / "container_workflow_dispatch"

    @property
    def digest(self) -> str:
        path = PROVENANCE / f"gha-container-{self.version}" / "container_workflow_dispatch.digest"
        return path.read_text().strip()

    @property
    def builder_id(self) -> str:
        return f"{GENERATOR}@refs/tags/{self.version}"

    def index(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.layout / "index.json").read_text())
        return loaded

    def blob(self, digest: str) -> bytes:
        return (self.layout / "blobs" / "sha256" / digest.partition(":")[2]).read_bytes()

    def attestation_layer(self) -> dict[str, Any]:
        """The DSSE envelope layer of the manifest `index.json` marks as cosign's atts."""
        [entry] = [
            m
            for m in self.index()["manifests"]
            if m.get("annotations", {}).get("kind") == ATTS_KIND
        ]
        manifest = json.loads(self.blob(entry["digest"]))
        [layer] = manifest["layers"]
        loaded: dict[str, Any] = layer
        return loaded

    def statement(self) -> Statement:
        """The in-toto statement: the DSSE payload of the atts layer's envelope."""
        envelope = json.loads(self.blob(self.attestation_layer()["digest"]))
        return Statement.from_bytes(base64.b64decode(envelope["payload"]))

    def certificate(self) -> x509.Certificate:
        pem = self.attestation_layer()["annotations"]["dev.sigstore.cosign/certificate"]
        return x509.load_pem_x509_certificate(pem.encode())

    def tagged_copy(self, dest: Path) -> Path:
        """A copy of the layout whose atts manifest is also listed under cosign's legacy tag
        (`sha256-<hex>.att`), where discovery reads attestations of a layout today."""
        shutil.copytree(self.layout, dest)
        index = self.index()
        [entry] = [
            m for m in index["manifests"] if m.get("annotations", {}).get("kind") == ATTS_KIND
        ]
        tag = self.digest.replace(":", "-") + ".att"
        tagged = {**entry, "annotations": {"org.opencontainers.image.ref.name": tag}}
        index["manifests"].append(tagged)
        (dest / "index.json").write_text(json.dumps(index))
        return dest


IMAGES = (
    ProvenanceImage("v1.10.0", "d37a7f740ee7404914456f24dcd90e865a0509e8"),
    ProvenanceImage("v2.0.0", "693130cb6cb840a7bc9cb18c6510d536a95dc7e6"),
)
