"""Writers that meet at one `oci-archive:` file take turns: each reads the archive as the one
before left it, so none loses another's manifest or tag (the layout side: issue 15, and
test_layout_concurrency.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from wasmctl.oci import media_types as mt
from wasmctl.oci.build import BuildOptions, build_artifact
from wasmctl.oci.layout import LayoutError, layout_for_reading, layout_for_writing
from wasmctl.oci.reference import LayoutReference

HELLO = Path(__file__).parents[3] / "examples" / "modules" / "hello.wasm"
WRITERS = 8
WAIT = 120  # seconds: a bound for a hung test, never a measurement


def _archive(path: Path, tag: str | None = None) -> LayoutReference:
    return LayoutReference(path, tag, archive=True)


def _tags(path: Path) -> list[str]:
    with layout_for_reading(_archive(path)) as layout:
        return sorted(layout.tags())


def _add_manifest(
    path: Path,
    tag: str,
    *,
    inside: threading.Event | None = None,
    release: threading.Event | None = None,
) -> None:
    with layout_for_writing(_archive(path)) as writer:
        writer.tag(writer.add_bytes(mt.OCI_MANIFEST, f'{{"tag":"{tag}"}}'.encode()), tag)
        if inside is not None and release is not None:
            inside.set()
            release.wait(timeout=WAIT)


def _run_threads(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)
    assert not [t for t in threads if t.is_alive()], "a writer never finished"


def test_threads_building_into_one_new_archive_all_keep_their_tags(tmp_path: Path) -> None:
    archive = tmp_path / "out" / "new.tar"
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def build(n: int) -> None:
        start.wait(timeout=WAIT)
        try:
            build_artifact(HELLO, _archive(archive, f"v{n}"), BuildOptions())
        except BaseException as e:
            errors.append(e)

    _run_threads([threading.Thread(target=build, args=(n,)) for n in range(WRITERS)])
    assert errors == []
    assert _tags(archive) == sorted(f"v{n}" for n in range(WRITERS))
    assert [p.name for p in archive.parent.iterdir()] == ["new.tar"]  # no lock or temp left


def test_processes_building_into_one_new_archive_all_keep_their_tags(tmp_path: Path) -> None:
    archive = tmp_path / "out" / "new.tar"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wasmctl",
                "-q",
                "build",
                str(HELLO),
                "-t",
                f"oci-archive:{archive}:p{n}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    try:
        results = [(p.wait(timeout=WAIT), p.stderr.read() if p.stderr else "") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()
    assert results == [(0, "")] * WRITERS
    assert _tags(archive) == sorted(f"p{n}" for n in range(WRITERS))
    assert [p.name for p in archive.parent.iterdir()] == ["new.tar"]


def test_a_writer_waits_for_the_archive_another_is_writing(tmp_path: Path) -> None:
    archive = tmp_path / "new.tar"
    inside, release = threading.Event(), threading.Event()
    first = threading.Thread(
        target=_add_manifest, args=(archive, "first"), kwargs={"inside": inside, "release": release}
    )
    second = threading.Thread(target=_add_manifest, args=(archive, "second"))
    first.start()
    assert inside.wait(timeout=WAIT)
    second.start()
    second.join(timeout=1)
    assert second.is_alive()  # waiting its turn, not reading the archive before `first` writes
    release.set()
    first.join(timeout=WAIT)
    second.join(timeout=WAIT)
    assert not first.is_alive() and not second.is_alive()
    assert _tags(archive) == ["first", "second"]


def test_a_failed_writer_leaves_the_archive_as_it_was_and_unlocked(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    _add_manifest(archive, "kept")
    before = archive.read_bytes()
    with pytest.raises(RuntimeError), layout_for_writing(_archive(archive)) as writer:
        writer.tag(writer.add_bytes(mt.OCI_MANIFEST, b'{"lost":1}'), "lost")
        raise RuntimeError("the writer fails")
    assert archive.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar"]
    _add_manifest(archive, "next")  # would block for ever if the lock were still held
    assert _tags(archive) == ["kept", "next"]


def test_a_lock_file_left_by_a_killed_writer_does_not_block(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    (tmp_path / ".wasmctl-a.tar.lock").touch()  # flock died with its process; the file stayed
    _add_manifest(archive, "v1")
    assert _tags(archive) == ["v1"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar"]


def test_reading_an_archive_takes_no_lock(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    _add_manifest(archive, "v1")
    inside, release = threading.Event(), threading.Event()
    writer = threading.Thread(
        target=_add_manifest, args=(archive, "v2"), kwargs={"inside": inside, "release": release}
    )
    writer.start()
    try:
        assert inside.wait(timeout=WAIT)
        assert _tags(archive) == ["v1"]  # the archive as it was, while a writer holds the lock
    finally:
        release.set()
        writer.join(timeout=WAIT)
    assert _tags(archive) == ["v1", "v2"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_writing_into_a_read_only_directory_is_refused_and_reading_still_works(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "ro" / "a.tar"
    _add_manifest(archive, "v1")
    archive.parent.chmod(0o555)
    try:
        assert _tags(archive) == ["v1"]
        with pytest.raises(LayoutError, match=r"cannot write .*a\.tar: Permission denied"):
            _add_manifest(archive, "v2")
        assert [p.name for p in archive.parent.iterdir()] == ["a.tar"]
    finally:
        archive.parent.chmod(0o755)
