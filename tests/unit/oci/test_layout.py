"""OCI image layouts and archives: resolving, verifying, and refusing hostile archives."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import LayoutError, OCILayout, extract_archive
from wasmctl.oci.models import Descriptor


def make_layout(root: Path, tags: dict[str, bytes]) -> dict[str, Descriptor]:
    out = {}
    with OCILayout.writer(root) as w:
        for tag, content in tags.items():
            d = w.add_bytes(mt.OCI_MANIFEST, content)
            w.tag(d, tag)
            out[tag] = d
    return out


def test_resolving_tags_digests_and_the_only_image(tmp_path: Path) -> None:
    one = make_layout(tmp_path / "one", {"v1": b'{"a":1}'})
    layout = OCILayout.open(tmp_path / "one")
    assert layout.resolve().digest == one["v1"].digest  # the only image
    assert layout.resolve(digest=one["v1"].digest).digest == one["v1"].digest
    two = make_layout(tmp_path / "two", {"v1": b'{"a":1}', "latest": b'{"a":2}'})
    layout = OCILayout.open(tmp_path / "two")
    assert layout.resolve().digest == two["latest"].digest
    assert sorted(layout.tags()) == ["latest", "v1"]
    with pytest.raises(LayoutError, match="no tag 'v9'"):
        layout.resolve("v9")


def test_retagging_replaces_the_entry(tmp_path: Path) -> None:
    make_layout(tmp_path, {"v1": b'{"a":1}'})
    second = make_layout(tmp_path, {"v1": b'{"a":2}'})
    layout = OCILayout.open(tmp_path)
    assert [d.digest for d in layout.index().manifests] == [second["v1"].digest]


def test_corrupt_blobs_are_detected(tmp_path: Path) -> None:
    d = make_layout(tmp_path, {"v1": b'{"a":1}'})["v1"]
    layout = OCILayout.open(tmp_path)
    layout.blob_path(d.digest).write_bytes(b'{"a":2}')
    with pytest.raises(LayoutError, match="does not match"):
        layout.read_blob(d)
    with pytest.raises(LayoutError, match="does not match"):
        layout.verify_blob(d)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not an OCI layout"),
        (b"{not json", "cannot read oci-layout"),
        (b'{"imageLayoutVersion": "2.0.0"}', "unsupported oci-layout"),
    ],
)
def test_opening_something_that_is_not_a_layout(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "oci-layout").write_bytes(content)
    with pytest.raises(LayoutError, match=message):
        OCILayout.open(tmp_path)


def hostile_tar(path: Path, name: str, kind: bytes = tarfile.REGTYPE) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    return path


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("../escape", tarfile.REGTYPE, "escape"),
        ("/etc/cron.d/x", tarfile.REGTYPE, "escape"),
        ("blobs/sha256/link", tarfile.SYMTYPE, "not a regular file"),
    ],
)
def test_hostile_archives_are_refused(tmp_path: Path, name: str, kind: bytes, message: str) -> None:
    archive = hostile_tar(tmp_path / "bad.tar", name, kind)
    with pytest.raises(LayoutError, match=message):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_a_truncated_archive_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"\0" * 100 + b"garbage")
    with pytest.raises(LayoutError):
        extract_archive(archive, tmp_path / "out")
