"""OCI image layouts and archives: resolving, verifying, and refusing hostile archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import CHUNK, LayoutError, LayoutWriter, OCILayout, extract_archive
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


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 7])
def test_a_file_blob_is_hashed_whole_across_reads(tmp_path: Path, size: int) -> None:
    content = os.urandom(size)
    source = tmp_path / "module.wasm"
    source.write_bytes(content)
    expected = "sha256:" + hashlib.sha256(content).hexdigest()
    with OCILayout.writer(tmp_path / "layout") as w:
        added = w.add_file(mt.WASM_LAYER, source)
    assert (added.digest, added.size) == (expected, size)
    layout = OCILayout.open(tmp_path / "layout")
    assert layout.verify_blob(added).read_bytes() == content


def _special(path: Path, kind: str) -> Path:
    """`path` made a FIFO, or a link to /dev/zero (endless, and 0 bytes by its size)."""
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    return path


def _refused_without_hanging(path: Path, call: Callable[[], object]) -> LayoutError:
    """What `call` raised; a call stuck opening the FIFO at `path` is let go and failed."""
    raised: list[BaseException] = []

    def attempt() -> None:
        try:
            call()
        except BaseException as e:
            raised.append(e)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # the reader's open returns
        worker.join(timeout=60)
        pytest.fail(f"{path} was opened as a blob and waited on")
    assert len(raised) == 1 and isinstance(raised[0], LayoutError), raised
    return raised[0]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_special_file_in_place_of_a_blob_is_refused(tmp_path: Path, kind: str) -> None:
    d = make_layout(tmp_path, {"v1": b'{"a":1}'})["v1"]
    layout = OCILayout.open(tmp_path)
    blob = _special(layout.blob_path(d.digest), kind)
    error = _refused_without_hanging(blob, lambda: layout.verify_blob(d))
    assert "is not a regular file" in error.message


@pytest.mark.parametrize(("kind", "what"), [("fifo", "a FIFO"), ("device", "a device")])
def test_a_special_file_is_never_hashed_as_a_blob(tmp_path: Path, kind: str, what: str) -> None:
    staged = _special(tmp_path / "0.blob", kind)
    writer = LayoutWriter(OCILayout(tmp_path / "layout"))
    error = _refused_without_hanging(staged, lambda: writer.adopt(mt.WASM_LAYER, staged))
    assert f"is {what}, not a regular file" in error.message
