"""build: both formats field by field, reproducibility, and failures that leave nothing behind."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from wasmctl.errors import InputError, WasmParseError
from wasmctl.oci import media_types as mt
from wasmctl.oci.build import (
    ArtifactFormat,
    BuildOptions,
    build_artifact,
    created_from_environment,
)
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Index, Manifest, sha256_digest
from wasmctl.oci.reference import parse_reference

Wat = Callable[[str], Path]
EXAMPLES = Path(__file__).parents[3] / "examples" / "modules"
HELLO = EXAMPLES / "hello.wasm"
FETCH = EXAMPLES / "fetch.wasm"

# The digests of fixed examples: a change here is a change of the artifact format.
GOLDEN = {
    (
        "hello.wasm",
        "wasm",
    ): "sha256:fbf971b6d102c9f0d87dcf9a09d261eee62efb009af5796ad7d28a62ca199f45",
    (
        "hello.wasm",
        "compat",
    ): "sha256:8341a807860d12662bb9e15fac4ff9ba7c8234b4e35994119ece2aa8fc4aab98",
}


def build(source: Path, ref: str, **options: object) -> tuple[OCILayout, Manifest, dict]:  # type: ignore[type-arg]
    result = build_artifact(source, parse_reference(ref), BuildOptions(**options))  # type: ignore[arg-type]
    layout = OCILayout.open(result.reference.path)
    assert layout.resolve(result.reference.tag).digest == result.descriptor.digest
    manifest = result.manifest
    config = json.loads(layout.read_blob(manifest.config))
    return layout, manifest, config


def test_wasm_artifact_of_a_module(tmp_path: Path) -> None:
    layout, manifest, config = build(HELLO, f"oci:{tmp_path}/out:v1")
    assert manifest.media_type == mt.OCI_MANIFEST
    assert manifest.config.media_type == mt.WASM_CONFIG
    (layer,) = manifest.layers
    assert layer.media_type == mt.WASM_LAYER
    assert layer.annotations == {mt.ANNOTATION_TITLE: "hello.wasm"}
    assert layout.read_blob(layer) == HELLO.read_bytes()  # the module's exact bytes
    assert config == {
        "architecture": "wasm",
        "author": None,
        "component": None,
        "created": "1970-01-01T00:00:00Z",
        "layerDigests": [sha256_digest(HELLO.read_bytes())],
        "os": "wasip1",
    }
    assert manifest.annotations["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"


def test_wasm_artifact_of_a_component_lists_its_world(tmp_path: Path) -> None:
    _, _, config = build(FETCH, f"oci:{tmp_path}/out", target="wasi:http/proxy@0.2.0")
    assert config["os"] == "wasip2"
    assert config["component"] == {
        "exports": [],
        "imports": sorted(
            ["wasi:http/types@0.2.0", "wasi:http/outgoing-handler@0.2.0", "wasi:cli/stdout@0.2.0"]
        ),
        "target": "wasi:http/proxy@0.2.0",
    }


def test_compat_image(tmp_path: Path) -> None:
    layout, manifest, config = build(HELLO, f"oci:{tmp_path}/out:c", format=ArtifactFormat.COMPAT)
    assert manifest.config.media_type == mt.OCI_CONFIG
    assert manifest.annotations[mt.ANNOTATION_COMPAT_VARIANT] == "compat-smart"
    assert config["architecture"] == "wasm" and config["os"] == "wasi"
    assert config["config"]["Entrypoint"] == ["/hello.wasm"]
    (layer,) = manifest.layers
    assert layer.media_type == mt.OCI_LAYER_TAR_GZIP
    compressed = layout.read_blob(layer)
    assert compressed[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    tar_bytes = gzip.decompress(compressed)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256_digest(tar_bytes)]}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, member.uid, member.gid, member.mtime) == (
            "hello.wasm",
            0o755,
            0,
            0,
            0,
        )
        body = tar.extractfile(member)
        assert body is not None and body.read() == HELLO.read_bytes()


def test_compat_index_has_the_wasi_wasm_platform(tmp_path: Path) -> None:
    result = build_artifact(
        HELLO,
        parse_reference(f"oci:{tmp_path}/out"),
        BuildOptions(format=ArtifactFormat.COMPAT, index=True),
    )
    layout = OCILayout.open(tmp_path / "out")
    assert result.descriptor.media_type == mt.OCI_INDEX
    index = Index.from_bytes(layout.read_blob(result.descriptor))
    (entry,) = index.manifests
    assert entry.platform is not None and entry.platform.to_json() == {
        "architecture": "wasm",
        "os": "wasi",
    }
    assert entry.digest == sha256_digest(result.manifest.to_bytes())


@pytest.mark.parametrize("fmt", ["wasm", "compat"])
def test_the_same_input_gives_the_same_digest_anywhere(tmp_path: Path, fmt: str) -> None:
    digests = {
        build_artifact(
            HELLO,
            parse_reference(f"oci:{tmp_path}/{where}:t"),
            BuildOptions(format=ArtifactFormat(fmt)),
        ).descriptor.digest
        for where in ("a", "b", "a", "nested/c")
    }
    assert digests == {GOLDEN[("hello.wasm", fmt)]}


def test_annotations_and_created_change_the_digest(tmp_path: Path) -> None:
    created, epoch = created_from_environment({"SOURCE_DATE_EPOCH": "1700000000"})
    assert created == "2023-11-14T22:13:20Z"
    ref = parse_reference(f"oci:{tmp_path}/o")
    plain = build_artifact(HELLO, ref, BuildOptions()).descriptor.digest
    dated = build_artifact(HELLO, ref, BuildOptions(created=created, epoch=epoch))
    labelled = build_artifact(
        HELLO, ref, BuildOptions(annotations={"org.opencontainers.image.version": "1.2.3"})
    )
    assert len({plain, dated.descriptor.digest, labelled.descriptor.digest}) == 3
    assert labelled.manifest.annotations["org.opencontainers.image.version"] == "1.2.3"


def test_bad_source_date_epoch_is_refused() -> None:
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        created_from_environment({"SOURCE_DATE_EPOCH": "yesterday"})


def test_module_metadata_becomes_annotations(tmp_path: Path) -> None:
    from tests import wasmbytes as wb

    module = tmp_path / "meta.wasm"
    module.write_bytes(
        HELLO.read_bytes()
        + wb.custom_section("version", b"2.0.1")
        + wb.custom_section("licenses", b"Apache-2.0")
    )
    _, manifest, _ = build(
        module, f"oci:{tmp_path}/out", annotations={"org.opencontainers.image.licenses": "MIT"}
    )
    assert manifest.annotations["org.opencontainers.image.version"] == "2.0.1"
    assert manifest.annotations["org.opencontainers.image.licenses"] == "MIT"  # flags win


def test_a_malformed_module_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x02\x07")
    with pytest.raises(WasmParseError, match=r"bad\.wasm"):
        build_artifact(bad, parse_reference(f"oci:{tmp_path}/new"), BuildOptions())
    assert not (tmp_path / "new").exists()


def test_a_failed_build_leaves_an_existing_layout_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = parse_reference(f"oci:{tmp_path}/out:v1")
    build_artifact(HELLO, ref, BuildOptions())
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def fail(*_args: object, **_kw: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("wasmctl.oci.layout.LayoutWriter.tag", fail)
    with pytest.raises(OSError, match="disk full"):
        build_artifact(FETCH, parse_reference(f"oci:{tmp_path}/out:v2"), BuildOptions())
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_building_into_a_non_layout_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not an OCI layout"):
        build_artifact(HELLO, parse_reference(f"oci:{tmp_path}"), BuildOptions())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_options_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--index"):
        build_artifact(HELLO, parse_reference(f"oci:{tmp_path}/o"), BuildOptions(index=True))
    with pytest.raises(InputError, match="components only"):
        build_artifact(HELLO, parse_reference(f"oci:{tmp_path}/o"), BuildOptions(target="w"))
    with pytest.raises(InputError, match="not a digest"):
        build_artifact(
            HELLO, parse_reference(f"oci:{tmp_path}/o@sha256:{'0' * 64}"), BuildOptions()
        )


def test_archives_are_written_reproducibly(tmp_path: Path) -> None:
    build_artifact(HELLO, parse_reference(f"oci-archive:{tmp_path}/a.tar:v1"), BuildOptions())
    build_artifact(HELLO, parse_reference(f"oci-archive:{tmp_path}/b.tar:v1"), BuildOptions())
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    build_artifact(FETCH, parse_reference(f"oci-archive:{tmp_path}/a.tar:v2"), BuildOptions())
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.loads(member.read())
    assert "index.json" in names and "oci-layout" in names
    assert not any(".wasmctl" in n for n in names)
    assert sorted(m["annotations"][mt.ANNOTATION_REF_NAME] for m in index["manifests"]) == [
        "v1",
        "v2",
    ]


def test_the_compat_tar_is_what_tarfile_writes(tmp_path: Path) -> None:
    layout, manifest, _ = build(HELLO, f"oci:{tmp_path}/out", format=ArtifactFormat.COMPAT)
    ours = gzip.decompress(layout.read_blob(manifest.layers[0]))
    info = tarfile.TarInfo("hello.wasm")
    info.size, info.mode, info.mtime = HELLO.stat().st_size, 0o755, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(HELLO.read_bytes()))
    assert ours == reference.getvalue()
