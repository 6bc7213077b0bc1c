"""The source layer: one session per registry for a block, a transport of the caller's, and
content read once by digest."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, Manifest, canonical_json
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.source import RegistryOptions, open_artifact, open_source

CONFIG = canonical_json({"architecture": "wasm", "os": "wasip1"})
MODULE = b"\0asm\1\0\0\0"


def registry(seen: Counter[str]) -> httpx.MockTransport:
    """A registry of one artifact, `example.test/app:v1`, counting what is asked of it."""
    config = Descriptor.of(mt.WASM_CONFIG, CONFIG)
    layer = Descriptor.of(mt.WASM_LAYER, MODULE)
    manifest = Manifest(config=config, layers=(layer,), media_type=mt.OCI_MANIFEST).to_bytes()
    digest = Descriptor.of(mt.OCI_MANIFEST, manifest).digest
    blobs = {config.digest: CONFIG, layer.digest: MODULE}

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen[f"{request.method} {path}"] += 1
        if path.endswith(("/manifests/v1", f"/manifests/{digest}")):
            headers = {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": digest}
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(manifest))
        name = path.rsplit("/", 1)[-1]
        if "/blobs/" in path and name in blobs:
            return httpx.Response(200, stream=httpx.ByteStream(blobs[name]))
        return httpx.Response(404)

    return httpx.MockTransport(answer)


def test_a_block_shares_one_session_and_reads_each_digest_once() -> None:
    seen: Counter[str] = Counter()
    options = RegistryOptions(transport=registry(seen))
    ref = parse_reference("example.test/app:v1")
    with options:
        with open_artifact(ref, options=options) as (_, first):
            pass
        pinned = parse_reference(f"example.test/app@{first.descriptor.digest}")
        with open_artifact(pinned, options=options) as (_, again):
            pass
        assert len(options.sessions._open) == 1
    assert again.descriptor == first.descriptor and again.config == first.config
    config = first.manifest.config.digest
    assert seen["GET /v2/app/manifests/v1"] == 1
    assert seen[f"GET /v2/app/manifests/{first.descriptor.digest}"] == 0
    assert seen[f"GET /v2/app/blobs/{config}"] == 1
    assert options.sessions._open == {}  # closed when the block ended


def test_a_call_outside_any_block_closes_what_it_opened() -> None:
    seen: Counter[str] = Counter()
    options = RegistryOptions(transport=registry(seen))
    with open_source(parse_reference("example.test/app:v1"), options) as source:
        assert source.subject().media_type == mt.OCI_MANIFEST
        assert len(options.sessions._open) == 1
    assert options.sessions._open == {}


def test_an_sbom_is_attached_without_loading_the_signing_room(tmp_path: Path) -> None:
    module = tmp_path / "app.wasm"
    module.write_bytes(MODULE)
    program = f"""
import sys
from pathlib import Path
from wasmctl.oci.build import BuildOptions, build_artifact
from wasmctl.oci.reference import parse_reference
from wasmctl.sbom import SbomFormat, attach, sbom_for_reference

ref = parse_reference("oci:{tmp_path / "out"}:v1")
build_artifact(Path("{module}"), ref, BuildOptions())
stored = attach(sbom_for_reference(ref, SbomFormat.CYCLONEDX_JSON), ref)
assert stored.artifact_type == "application/vnd.cyclonedx+json", stored
loaded = sorted(m for m in sys.modules if m.startswith("wasmctl.sign"))
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", program], check=True)
