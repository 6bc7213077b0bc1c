"""`copy` between layouts over hostile graphs: sizes that lie, deep and repetitive indexes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wasmctl.cli import run
from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import LayoutError, OCILayout
from wasmctl.oci.models import Descriptor, Index, Manifest, canonical_json
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.transfer import MAX_INDEX_DEPTH, copy

CONFIG = canonical_json({"architecture": "wasm", "os": "wasip1"})


def _artifact(root: Path, layer_size: int | None = None) -> Descriptor:
    """A one-layer Wasm artifact; `layer_size` makes its descriptor lie about the layer."""
    with OCILayout.writer(root) as writer:
        config = writer.add_bytes(mt.WASM_CONFIG, CONFIG)
        layer = writer.add_bytes(mt.WASM_LAYER, b"\0asm\1\0\0\0" + bytes(272))
        if layer_size is not None:
            layer = Descriptor(layer.media_type, layer.digest, layer_size)
        raw = Manifest(config=config, layers=(layer,), media_type=mt.OCI_MANIFEST).to_bytes()
        manifest = writer.add_bytes(mt.OCI_MANIFEST, raw)
        writer.tag(manifest, "v1")
    return manifest


def _index_over(root: Path, children: list[Descriptor], tag: str | None) -> Descriptor:
    with OCILayout.writer(root) as writer:
        raw = Index(tuple(children), media_type=mt.OCI_INDEX).to_bytes()
        index = writer.add_bytes(mt.OCI_INDEX, raw)
        if tag is not None:
            writer.tag(index, tag)
    return index


def test_a_layer_whose_descriptor_lies_about_its_size_is_not_copied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _artifact(tmp_path / "src", layer_size=10 << 30)
    assert run(["copy", f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'dst'}:v1"]) == 2
    err = capsys.readouterr().err
    assert "does not match its digest or size" in err
    assert "bytes sent" not in err
    assert not (tmp_path / "dst").exists()


def test_a_lying_size_is_refused_even_when_the_destination_has_the_blob(tmp_path: Path) -> None:
    _artifact(tmp_path / "dst")  # the same layer, honestly described
    _artifact(tmp_path / "src", layer_size=10 << 30)
    with pytest.raises(InputError, match="descriptor says"):
        copy(
            parse_reference(f"oci:{tmp_path / 'src'}:v1"),
            parse_reference(f"oci:{tmp_path / 'dst'}:v2"),
        )


def test_an_honest_copy_reports_the_bytes_it_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _artifact(tmp_path / "src")
    _, stats = copy(
        parse_reference(f"oci:{tmp_path / 'src'}:v1"), parse_reference(f"oci:{tmp_path / 'dst'}:v1")
    )
    assert stats.bytes_sent == 280 + len(CONFIG)


def test_reading_a_layout_blob_checks_its_size(tmp_path: Path) -> None:
    manifest = _artifact(tmp_path / "src", layer_size=10 << 30)
    layout = OCILayout.open(tmp_path / "src")
    layer = Manifest.from_bytes(layout.read_blob(manifest)).layers[0]
    with pytest.raises(LayoutError):
        layout.verify_blob(layer)
    with pytest.raises(LayoutError):
        layout.read_blob(Descriptor(layer.media_type, layer.digest, 279))


def test_a_chain_of_3000_indexes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    child = _artifact(tmp_path / "src")
    with OCILayout.writer(tmp_path / "src") as writer:
        for _ in range(3000):
            raw = Index((child,), media_type=mt.OCI_INDEX).to_bytes()
            child = writer.add_bytes(mt.OCI_INDEX, raw)
        writer.tag(child, "deep")
    assert run(["copy", f"oci:{tmp_path / 'src'}:deep", f"oci:{tmp_path / 'dst'}:v1"]) == 2
    assert f"more than {MAX_INDEX_DEPTH} deep" in capsys.readouterr().err
    assert not (tmp_path / "dst").exists()


def test_index_nesting_is_bounded(tmp_path: Path) -> None:
    child = _artifact(tmp_path / "src")
    for _ in range(MAX_INDEX_DEPTH):
        child = _index_over(tmp_path / "src", [child], None)
    _index_over(tmp_path / "src", [child], "top")  # one more: depth 16 below the root
    with pytest.raises(InputError):
        copy(
            parse_reference(f"oci:{tmp_path / 'src'}:top"), parse_reference(f"oci:{tmp_path}/d:v1")
        )
    root, _ = copy(
        parse_reference(f"oci:{tmp_path / 'src'}@{child.digest}"),
        parse_reference(f"oci:{tmp_path / 'dst'}:v1"),
    )
    assert root.digest == child.digest


def test_an_index_listing_children_many_times_copies_each_once(tmp_path: Path) -> None:
    # each level lists the one below twice: 2**15 paths to the same manifest, 16 digests
    child = _artifact(tmp_path / "src")
    for _ in range(MAX_INDEX_DEPTH - 1):
        child = _index_over(tmp_path / "src", [child, child], None)
    _index_over(tmp_path / "src", [child, child], "wide")
    started = time.monotonic()
    _, stats = copy(
        parse_reference(f"oci:{tmp_path / 'src'}:wide"),
        parse_reference(f"oci:{tmp_path / 'dst'}:v1"),
    )
    assert stats.manifests == MAX_INDEX_DEPTH + 1
    assert stats.blobs_sent == 2
    assert time.monotonic() - started < 30  # a safety net: the walk was 2**16 before
