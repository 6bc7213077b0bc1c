"""Hostile tars are bounded: what they inflate to, how many entries, how large a header
(`wasmctl.oci.bounded_tar`), in `oci-archive:` files, compat layers and OPA bundles."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.bombs import MIB, gzip_bomb, tar_of
from wasmctl.errors import ExitCode, InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.artifact import tar_modules
from wasmctl.oci.bounded_tar import (
    ENV_MAX_INFLATED,
    InflateLimitError,
    InflateLimits,
    open_bounded_tar,
)
from wasmctl.oci.layout import extract_archive, layout_for_reading
from wasmctl.oci.models import Descriptor
from wasmctl.oci.opa_bundle import read_bundle
from wasmctl.oci.reference import LayoutReference

BLOB = "blobs/sha256/" + "0" * 64


def _layer(path: Path, media_type: str = mt.OCI_LAYER_TAR_GZIP) -> Descriptor:
    data = path.read_bytes()
    return Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def test_a_gzip_bomb_archive_stops_before_its_member_is_written(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", BLOB, 1 << 30)
    assert bomb.stat().st_size < 2 * MIB
    with pytest.raises(InflateLimitError, match="inflates beyond") as caught:
        extract_archive(bomb, tmp_path / "out")
    assert caught.value.exit_code == ExitCode.INPUT
    assert not (tmp_path / "out" / BLOB).exists()


def test_a_gzip_bomb_archive_leaves_no_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", BLOB, 1 << 30)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(InflateLimitError), layout_for_reading(LayoutReference(bomb, archive=True)):
        pass
    assert list(scratch.iterdir()) == []


def test_a_bomb_is_stopped_while_it_streams_when_no_header_declares_it(tmp_path: Path) -> None:
    # a GNU long name is read by tarfile itself, before any member is seen
    info = tarfile.TarInfo("a" * (900 << 10))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(info, io.BytesIO())
    limits = InflateLimits(total=512 << 10, member=512 << 10, members=10)
    buffer.seek(0)
    with (
        pytest.raises(InflateLimitError, match="inflates beyond"),
        open_bounded_tar(buffer, None, limits, "test") as tar,
    ):
        list(tar)


def test_a_huge_pax_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    info = tarfile.TarInfo("x")
    info.pax_headers = {"comment": "x" * (2 * MIB)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO())
    buffer.seek(0)
    limits = InflateLimits.for_compressed(len(buffer.getvalue()), members=10)
    with (
        pytest.raises(InflateLimitError, match="header"),
        open_bounded_tar(buffer, None, limits, "test") as tar,
    ):
        list(tar)


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    data = tar_of({f"f{i}": b"" for i in range(11)})
    limits = InflateLimits(total=MIB, member=MIB, members=10)
    with (
        pytest.raises(InflateLimitError, match="more than 10 entries"),
        open_bounded_tar(io.BytesIO(data), None, limits, "test") as tar,
    ):
        list(tar)


def test_a_flat_bound_from_the_environment_replaces_the_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(tar_of({"oci-layout": b"x" * (2 * MIB)}))
    extract_archive(archive, tmp_path / "ok")
    monkeypatch.setenv(ENV_MAX_INFLATED, str(MIB))
    with pytest.raises(InflateLimitError, match="inflates beyond 1,048,576 bytes") as caught:
        extract_archive(archive, tmp_path / "refused")
    assert ENV_MAX_INFLATED in caught.value.diagnostics()


def test_a_bad_bound_in_the_environment_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(tar_of({"oci-layout": b"{}"}))
    monkeypatch.setenv(ENV_MAX_INFLATED, "lots")
    with pytest.raises(InputError, match=ENV_MAX_INFLATED):
        extract_archive(archive, tmp_path / "out")


def test_a_gzipped_archive_within_its_bounds_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_of({"oci-layout": b"{}", BLOB: b"blob"}, gz=True))
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / BLOB).read_bytes() == b"blob"


def test_a_compat_layer_inflating_to_gigabytes_of_padding_is_refused(tmp_path: Path) -> None:
    layer_file = gzip_bomb(tmp_path / "layer", "padding", 1 << 30)
    with (
        layer_file.open("rb", buffering=0) as stream,
        pytest.raises(InflateLimitError, match="inflates beyond"),
    ):
        tar_modules(stream, tmp_path / "work", _layer(layer_file))
    assert not any((tmp_path / "work").iterdir())


def test_a_compat_layer_with_too_many_members_is_refused(tmp_path: Path) -> None:
    layer_file = tmp_path / "layer"
    layer_file.write_bytes(tar_of({f"d/{i}": b"" for i in range(10_001)}, gz=True))
    with (
        layer_file.open("rb", buffering=0) as stream,
        pytest.raises(InflateLimitError, match="entries"),
    ):
        tar_modules(stream, tmp_path / "work", _layer(layer_file))


def test_a_compat_layer_within_its_bounds_gives_its_modules(tmp_path: Path) -> None:
    layer_file = tmp_path / "layer"
    layer_file.write_bytes(tar_of({"/app.wasm": b"\0asm\1\0\0\0", "etc/x": b"x"}, gz=True))
    with layer_file.open("rb", buffering=0) as stream:
        found = tar_modules(stream, tmp_path / "work", _layer(layer_file))
    assert [(name, path.read_bytes()) for name, path in found] == [("app.wasm", b"\0asm\1\0\0\0")]


def test_an_opa_bundle_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    bundle = gzip_bomb(tmp_path / "bundle.tar.gz", "/padding.bin", 1 << 30)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(InflateLimitError, match="inflates beyond"):
        read_bundle(bundle, work)
    assert list(work.iterdir()) == []


def test_an_opa_bundle_that_is_not_gzip_says_so(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(gzip.compress(b"not a tar at all" * 100))
    with pytest.raises(InputError, match="not a readable OPA bundle"):
        read_bundle(bundle, tmp_path)
