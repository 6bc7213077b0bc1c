"""Writers that meet at a new layout take turns; none takes it for a foreign directory
(issue 15, manner 5)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import LayoutError, OCILayout

HELLO = Path(__file__).parents[3] / "examples" / "modules" / "hello.wasm"
WRITERS = 8


def _tags(root: Path) -> set[str]:
    index = json.loads((root / "index.json").read_text())
    return {d["annotations"][mt.ANNOTATION_REF_NAME] for d in index["manifests"]}


def test_threads_building_into_one_new_layout_all_succeed(tmp_path: Path) -> None:
    from wasmctl.cli import run

    root = tmp_path / "new"
    start = threading.Barrier(WRITERS)
    codes: dict[int, int] = {}

    def build(n: int) -> None:
        start.wait()
        codes[n] = run(["-q", "build", str(HELLO), "-t", f"oci:{root}:v{n}"])

    threads = [threading.Thread(target=build, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == dict.fromkeys(range(WRITERS), 0)
    assert _tags(root) == {f"v{n}" for n in range(WRITERS)}
    assert not [p for p in root.iterdir() if p.name.startswith(".wasmctl-")]


def test_processes_building_into_one_new_layout_all_succeed(tmp_path: Path) -> None:
    root = tmp_path / "new"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wasmctl", "-q", "build", str(HELLO), "-t", f"oci:{root}:p{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert results == [(0, "")] * WRITERS
    assert _tags(root) == {f"p{n}" for n in range(WRITERS)}


def test_a_writer_waits_for_a_layout_being_made_instead_of_refusing_it(tmp_path: Path) -> None:
    root = tmp_path / "new"
    inside = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with OCILayout.writer(root) as writer:
            writer.add_bytes("application/octet-stream", b"first")  # its scratch dir is there
            inside.set()
            release.wait(timeout=60)

    def second() -> None:
        try:
            with OCILayout.writer(root) as writer:
                writer.add_bytes("application/octet-stream", b"second")
        except BaseException as e:
            errors.append(e)

    maker = threading.Thread(target=first)
    maker.start()
    assert inside.wait(timeout=60)
    assert [p.name[:9] for p in root.iterdir()] == [".wasmctl-"]  # half made: no oci-layout
    follower = threading.Thread(target=second)
    follower.start()
    follower.join(timeout=1)
    assert follower.is_alive()  # waiting for the lock, not refusing the directory
    release.set()
    maker.join()
    follower.join()
    assert errors == []
    OCILayout.open(root)


def test_a_failed_first_writer_leaves_the_layout_to_the_next(tmp_path: Path) -> None:
    root = tmp_path / "new"
    inside = threading.Event()
    release = threading.Event()
    follower_done: list[bool] = []

    def first() -> None:
        with pytest.raises(RuntimeError), OCILayout.writer(root) as writer:
            writer.add_bytes("application/octet-stream", b"first")
            inside.set()
            release.wait(timeout=60)
            raise RuntimeError("the first writer fails")

    def second() -> None:
        with OCILayout.writer(root) as writer:
            data = writer.add_bytes(mt.OCI_MANIFEST, b"{}")
            writer.tag(data, "second")
        follower_done.append(True)

    maker = threading.Thread(target=first)
    maker.start()
    assert inside.wait(timeout=60)
    follower = threading.Thread(target=second)
    follower.start()
    follower.join(timeout=1)
    assert follower.is_alive()  # waiting for the lock, not refusing the directory
    release.set()
    maker.join()
    follower.join()
    assert follower_done == [True]
    assert OCILayout.open(root).tags() == ["second"]


def test_a_foreign_directory_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LayoutError, match="not an OCI layout"), OCILayout.writer(tmp_path):
        pass
