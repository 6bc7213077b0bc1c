"""Recognising every Wasm artifact format in the wild, and scanning their Wasm layers.

The samples are built here from the field lists in shared/reference/oci-formats.md §1-§3.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.artifact import ArtifactKind, IndexKind
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Index, Manifest, Platform, canonical_json
from wasmctl.oci.reference import LayoutReference, parse_reference
from wasmctl.oci.source import open_artifact
from wasmctl.oci.transfer import reference_modules
from wasmctl.scan import Verdict, load_preset, scan_paths

EXAMPLES = Path(__file__).parents[3] / "examples" / "modules"
SERVER = (EXAMPLES / "echo_server.wasm").read_bytes()


def tar_gz(name: str, data: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def write_sample(
    root: Path, config_type: str, config: bytes, layers: list[tuple[str, bytes]], tag: str = "t"
) -> Descriptor:
    with OCILayout.writer(root) as w:
        config_d = w.add_bytes(config_type, config)
        layer_ds = tuple(
            w.add_bytes(media_type, data, annotations={mt.ANNOTATION_TITLE: f"l{i}"})
            for i, (media_type, data) in enumerate(layers)
        )
        manifest = Manifest(config_d, layer_ds)
        descriptor = w.add_bytes(mt.OCI_MANIFEST, manifest.to_bytes())
        w.tag(descriptor, tag)
    return descriptor


SAMPLES = {
    ArtifactKind.WASM: (
        mt.WASM_CONFIG,
        canonical_json({"architecture": "wasm", "os": "wasip1", "layerDigests": []}),
        [(mt.WASM_LAYER, SERVER)],
    ),
    ArtifactKind.COMPAT: (
        mt.OCI_CONFIG,
        canonical_json({"architecture": "wasm", "os": "wasi", "rootfs": {"type": "layers"}}),
        [(mt.OCI_LAYER_TAR_GZIP, tar_gz("server.wasm", SERVER))],
    ),
    ArtifactKind.WASM_TO_OCI: (
        mt.WASM_TO_OCI_CONFIG,
        mt.EMPTY_JSON,
        [(mt.WASM_CONTENT_LAYER, SERVER)],
    ),
    ArtifactKind.SPIN: (
        mt.OCI_CONFIG,
        canonical_json(
            {"architecture": "wasm", "os": "Wasip1",
             "config": {"Labels": {mt.SPIN_LOCKED_APP_LABEL: "sha256:" + "1" * 64}}}
        ),
        [(mt.WASM_CONTENT_LAYER, SERVER), (mt.SPIN_DATA_LAYER, b"static"),
         (mt.SPIN_LOCKED_APP, b'{"spin_lock_version": 1}')],
    ),
    ArtifactKind.WASMCLOUD_LEGACY: (
        mt.WASMCLOUD_ACTOR_CONFIG,
        b"{}",
        [(mt.MODULE_WASM_LAYER, SERVER)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(SAMPLES), ids=str)
def test_each_format_is_named_and_its_wasm_scanned(tmp_path: Path, kind: ArtifactKind) -> None:
    config_type, config, layers = SAMPLES[kind]
    write_sample(tmp_path / "layout", config_type, config, layers)
    ref = parse_reference(f"oci:{tmp_path / 'layout'}:t")
    assert isinstance(ref, LayoutReference)
    with open_artifact(ref) as (_, artifact):
        assert artifact.kind is kind
    report = scan_paths([str(ref)], [load_preset("no-network")], reference_modules)
    (target,) = report.targets
    assert target.verdict is Verdict.DENY
    assert {f.name for f in target.findings} == {"sock_accept", "sock_recv", "sock_send",
                                                  "sock_shutdown"}  # fmt: skip


def test_buildx_index_with_attestations(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    config_type, config, layers = SAMPLES[ArtifactKind.COMPAT]
    image = write_sample(root, config_type, config, layers, tag="image")
    attestation = write_sample(
        root, mt.OCI_CONFIG, b'{"architecture":"unknown","os":"unknown"}',
        [("application/vnd.in-toto+json", b'{"_type": "https://in-toto.io/Statement/v1"}')],
        tag="att",
    )  # fmt: skip
    index = Index(
        (
            Descriptor(attestation.media_type, attestation.digest, attestation.size,
                       {mt.DOCKER_REFERENCE_TYPE: mt.DOCKER_ATTESTATION_MANIFEST,
                        "vnd.docker.reference.digest": image.digest},
                       platform=Platform("unknown", "unknown")),
            Descriptor(image.media_type, image.digest, image.size,
                       platform=Platform("wasm", "wasi")),
        )
    )  # fmt: skip
    with OCILayout.writer(root) as w:
        w.tag(w.add_bytes(mt.OCI_INDEX, index.to_bytes()), "buildx")
    ref = parse_reference(f"oci:{root}:buildx")
    assert isinstance(ref, LayoutReference)
    with open_artifact(ref) as (_, artifact):
        assert artifact.index_kind is IndexKind.BUILDX
        assert artifact.kind is ArtifactKind.COMPAT
        assert artifact.manifest_descriptor.digest == image.digest
        assert [e.attestation for e in artifact.index_entries] == [True, False]
    report = scan_paths([str(ref)], [load_preset("no-network")], reference_modules)
    assert report.verdict is Verdict.DENY


def test_unknown_artifacts_are_named_and_not_scanned(tmp_path: Path) -> None:
    write_sample(tmp_path / "l", "application/vnd.example.config", b"{}", [("text/plain", b"hi")])
    ref = f"oci:{tmp_path / 'l'}:t"
    (target,) = scan_paths([ref], [load_preset("no-network")], reference_modules).targets
    assert target.verdict is Verdict.ERROR and "no Wasm layer" in (target.error or "")


def test_a_tampered_layer_is_caught(tmp_path: Path) -> None:
    config_type, config, layers = SAMPLES[ArtifactKind.COMPAT]
    descriptor = write_sample(tmp_path / "l", config_type, config, layers)
    layout = OCILayout.open(tmp_path / "l")
    manifest = Manifest.from_bytes(layout.read_blob(descriptor))
    blob = layout.blob_path(manifest.layers[0].digest)
    blob.chmod(0o644)
    blob.write_bytes(tar_gz("server.wasm", SERVER.replace(b"sock_accept", b"sock_accepu")))
    report = scan_paths([f"oci:{tmp_path / 'l'}:t"], [load_preset("no-network")], reference_modules)
    (target,) = report.targets
    assert target.verdict is Verdict.ERROR and "does not match" in (target.error or "")


def test_inspect_json_of_an_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_type, config, layers = SAMPLES[ArtifactKind.WASM_TO_OCI]
    write_sample(tmp_path / "l", config_type, config, layers)
    assert run(["inspect", "--format", "json", f"oci:{tmp_path / 'l'}:t"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "wasm-to-oci"
    assert data["config"] == {}
    assert [layer["wasm"] for layer in data["layers"]] == [True]
    assert run(["inspect", f"oci:{tmp_path / 'l'}:t"]) == 0
    assert "wasm-to-oci artifact" in capsys.readouterr().out


def test_missing_tags_and_layouts_are_input_errors(tmp_path: Path) -> None:
    config_type, config, layers = SAMPLES[ArtifactKind.WASM]
    write_sample(tmp_path / "l", config_type, config, layers)
    assert run(["inspect", f"oci:{tmp_path / 'l'}:nope"]) == 2
    assert run(["inspect", f"oci:{tmp_path / 'missing'}:t"]) == 2
    assert run(["scan", f"oci:{tmp_path / 'l'}:nope"]) == 2


@pytest.mark.parametrize("kind", list(SAMPLES), ids=str)
def test_inspect_json_fits_its_schema(
    tmp_path: Path, kind: ArtifactKind, capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema

    from tests.schemas import doc_schema

    config_type, config, layers = SAMPLES[kind]
    write_sample(tmp_path / "l", config_type, config, layers)
    assert run(["inspect", "--format", "json", f"oci:{tmp_path / 'l'}:t"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, doc_schema("inspect-artifact.schema.json"))
    assert data["format"] == kind.value
    assert data["wasm"] is True and data["cosignSaved"] == []


# -- any image or index, Wasm or not (issue 16) ---------------------------------------------

PROVENANCE = Path(__file__).parents[4] / "shared" / "testdata" / "provenance"
SAVED_LAYOUTS = sorted(PROVENANCE.glob("gha-container-*/container_workflow_dispatch"))


def write_index(root: Path, entries: list[Descriptor], tag: str = "index") -> Descriptor:
    with OCILayout.writer(root) as w:
        descriptor = w.add_bytes(mt.OCI_INDEX, Index(tuple(entries)).to_bytes())
        w.tag(descriptor, tag)
    return descriptor


def container_index(root: Path, configs: dict[str, bytes]) -> Descriptor:
    """An index of container images (one per `os/arch` of `configs`, a tar layer each) and a
    buildx attestation manifest for the first."""
    entries = []
    for platform, config in configs.items():
        os_name, arch = platform.split("/")
        layers = [(mt.OCI_LAYER_TAR_GZIP, tar_gz("app", b"\x7fELF"))]
        image = write_sample(root, mt.OCI_CONFIG, config, layers, tag=platform)
        entries.append(Descriptor(image.media_type, image.digest, image.size,
                                  platform=Platform(arch, os_name)))  # fmt: skip
    attestation = write_sample(
        root, mt.OCI_CONFIG, b'{"architecture":"unknown","os":"unknown"}',
        [("application/vnd.in-toto+json", b'{"_type": "https://in-toto.io/Statement/v1"}')],
        tag="att",
    )  # fmt: skip
    entries.append(
        Descriptor(attestation.media_type, attestation.digest, attestation.size,
                   {mt.DOCKER_REFERENCE_TYPE: mt.DOCKER_ATTESTATION_MANIFEST,
                    "vnd.docker.reference.digest": entries[0].digest},
                   platform=Platform("unknown", "unknown"))
    )  # fmt: skip
    return write_index(root, entries)


def inspect_json(ref: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    import jsonschema

    from tests.schemas import doc_schema

    capsys.readouterr()
    assert run(["inspect", "--format", "json", ref]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, doc_schema("inspect-artifact.schema.json"))
    return data


def test_a_container_index_is_described_as_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    linux = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}'
    index = container_index(tmp_path / "l", {"linux/amd64": linux, "linux/arm64": linux})
    ref = f"oci:{tmp_path / 'l'}:index"
    data = inspect_json(ref, capsys)
    assert (data["wasm"], data["format"], data["digest"]) == (False, "unknown", index.digest)
    assert data["manifest"] is None and data["manifestDigest"] is None and data["layers"] == []
    assert data["summary"] == (
        "an OCI image index of 2 manifests (linux/amd64, linux/arm64) and 1 buildx attestation "
        "manifest; the index has no wasi/wasm manifest"
    )
    assert data["index"]["kind"] == "buildx-index"
    entries = data["index"]["manifests"]
    assert [e["attestation"] for e in entries] == [False, False, True]
    assert not any(e["selected"] for e in entries)
    assert run(["inspect", ref]) == 0
    table = capsys.readouterr().out
    assert f"{ref}  not a Wasm artifact" in table
    assert "linux/arm64" in table and "attestation" in table


def test_an_index_that_would_run_as_wasm_but_cannot_be_checked_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def relabelled(name: str) -> bytes:  # a Wasm image under another platform's label
        return canonical_json({"architecture": "wasm", "os": "wasi", "author": name})

    configs = {"linux/amd64": relabelled("a"), "linux/arm64": relabelled("b")}
    container_index(tmp_path / "l", configs)
    data = inspect_json(f"oci:{tmp_path / 'l'}:index", capsys)
    assert data["wasm"] is False
    assert (
        "2 platform manifests of the index (linux/amd64, linux/arm64) would run as Wasm"
        in (data["summary"])
    )


def test_a_container_image_manifest_is_described_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}'
    write_sample(tmp_path / "l", mt.OCI_CONFIG, config, [(mt.OCI_LAYER_TAR_GZIP, b"tar")])
    data = inspect_json(f"oci:{tmp_path / 'l'}:t", capsys)
    assert (data["wasm"], data["format"]) == (False, "unknown")
    assert data["summary"] == "an OCI image manifest (a container image, 1 layer)"
    assert [layer["wasm"] for layer in data["layers"]] == [False]


@pytest.mark.parametrize("saved", SAVED_LAYOUTS, ids=lambda p: p.parent.name)
def test_a_cosign_save_layout_shows_its_image_and_saved_attestation(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = saved.with_suffix(".digest").read_text().strip()
    data = inspect_json(f"oci:{saved}@{digest}", capsys)
    assert (data["wasm"], data["digest"]) == (False, digest)
    assert data["summary"].startswith(
        "an OCI image index of 1 manifest (linux/amd64) and 1 buildx attestation manifest"
    )
    (saved_entry,) = data["cosignSaved"]
    assert saved_entry["kind"] == "attestations"
    (signature,) = data["signatures"]
    assert signature["source"] == f"cosign-save atts {saved_entry['digest']}"
    assert (signature["format"], signature["kind"]) == ("cosign-attestation", "attestation")
    assert signature["predicateType"] == "https://slsa.dev/provenance/v0.2"
    assert run(["inspect", f"oci:{saved}@{digest}"]) == 0
    table = capsys.readouterr().out
    assert "not a Wasm artifact" in table and "cosign save entry" in table
    assert "attestation slsa.dev/provenance/v0.2" in table


def test_an_attestation_store_is_named_for_what_it_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved = SAVED_LAYOUTS[0]
    (atts,) = [e for e in json.loads((saved / "index.json").read_bytes())["manifests"]
               if e["annotations"]["kind"].endswith("/atts")]  # fmt: skip
    data = inspect_json(f"oci:{saved}@{atts['digest']}", capsys)
    assert data["summary"] == "an OCI image manifest holding cosign attestations (DSSE envelopes)"


def test_every_wasm_format_has_a_summary() -> None:
    from wasmctl.inspect.artifact import _WASM_NAMES

    assert set(_WASM_NAMES) == set(ArtifactKind) - {ArtifactKind.UNKNOWN}
