"""What `pull` writes: Wasm modules only, under plain names, never over an existing file, and
nothing at all when it refuses; and a SIGTERM partway leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.loopback import QuietHandler, ServerThread
from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Manifest, canonical_json

MODULE = b"\0asm\1\0\0\0"
CONFIG = canonical_json({"architecture": "wasm", "os": "wasip1", "layerDigests": []})


def hostile_layout(root: Path, layers: list[tuple[str, bytes, str | None]], tag: str = "v1") -> str:
    """A Wasm artifact in a layout whose layers are (media type, bytes, title)."""
    with OCILayout.writer(root) as writer:
        config = writer.add_bytes(mt.WASM_CONFIG, CONFIG)
        descriptors = []
        for media_type, data, title in layers:
            stored = writer.add_bytes(media_type, data)
            annotations = {mt.ANNOTATION_TITLE: title} if title is not None else {}
            descriptors.append(Descriptor(media_type, stored.digest, stored.size, annotations))
        manifest = Manifest(config=config, layers=tuple(descriptors), media_type=mt.OCI_MANIFEST)
        raw = manifest.to_bytes()
        writer.tag(writer.add_bytes(mt.OCI_MANIFEST, raw), tag)
    return f"oci:{root}:{tag}"


def _pull(ref: str, out: Path, *flags: str) -> int:
    return run(["pull", ref, "-o", str(out), *flags])


def test_a_module_is_written_under_its_title(tmp_path: Path) -> None:
    ref = hostile_layout(tmp_path / "l", [(mt.WASM_LAYER, MODULE, "app.wasm")])
    assert _pull(ref, tmp_path / "out") == 0
    assert (tmp_path / "out" / "app.wasm").read_bytes() == MODULE
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["app.wasm"]


@pytest.mark.parametrize("title", ["conftest.py", ".bashrc", "Makefile"])
def test_a_wasm_layer_not_titled_wasm_is_refused(
    tmp_path: Path, title: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = hostile_layout(tmp_path / "l", [(mt.WASM_LAYER, MODULE, title)])
    assert _pull(ref, tmp_path / "out") == 2
    assert "--all-layers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_all_layers_writes_what_was_asked_for(tmp_path: Path) -> None:
    ref = hostile_layout(
        tmp_path / "l",
        [(mt.WASM_LAYER, MODULE, "app.wasm"), ("text/plain", b"hello", "README")],
    )
    assert _pull(ref, tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["app.wasm"]
    assert _pull(ref, tmp_path / "all", "--all-layers") == 0
    assert (tmp_path / "all" / "README").read_bytes() == b"hello"


def test_a_wasm_layer_that_is_not_a_module_is_refused(tmp_path: Path) -> None:
    ref = hostile_layout(tmp_path / "l", [(mt.WASM_LAYER, b"#!/bin/sh\nrm -rf ~\n", "a.wasm")])
    assert _pull(ref, tmp_path / "out") == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "title",
    [
        "/etc/app.wasm",
        "/tmp/x/app.wasm",
        "a\nb.wasm",
        "a\rb.wasm",
        "\x1b[2Japp.wasm",
        "evil\u202egnp.wasm",
        "a" * 251 + ".wasm",
        "é" * 126 + ".wasm",
        "../app.wasm",
        "dir/app.wasm",
        "..",
    ],
)
def test_a_hostile_title_is_refused_and_nothing_is_written(tmp_path: Path, title: str) -> None:
    ref = hostile_layout(
        tmp_path / "l",
        [(mt.WASM_LAYER, MODULE, "first.wasm"), (mt.WASM_LAYER, MODULE + b"\0", title)],
    )
    assert _pull(ref, tmp_path / "out") == 2
    assert not (tmp_path / "out").exists()


def test_a_title_of_255_bytes_is_accepted(tmp_path: Path) -> None:
    title = "a" * 250 + ".wasm"
    ref = hostile_layout(tmp_path / "l", [(mt.WASM_LAYER, MODULE, title)])
    assert _pull(ref, tmp_path / "out") == 0
    assert (tmp_path / "out" / title).exists()


def test_an_existing_file_is_not_overwritten_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = hostile_layout(
        tmp_path / "l",
        [(mt.WASM_LAYER, MODULE, "new.wasm"), (mt.WASM_LAYER, MODULE + b"\0", "old.wasm")],
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.wasm").write_bytes(b"mine")
    assert _pull(ref, out) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["old.wasm"]
    assert (out / "old.wasm").read_bytes() == b"mine"
    assert _pull(ref, out, "--force") == 0
    assert (out / "old.wasm").read_bytes() == MODULE + b"\0"


def test_an_existing_symlink_is_not_followed_or_replaced(tmp_path: Path) -> None:
    ref = hostile_layout(tmp_path / "l", [(mt.WASM_LAYER, MODULE, "app.wasm")])
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (out / "app.wasm").symlink_to(victim)
    assert _pull(ref, out) == 2
    assert victim.read_bytes() == b"precious"


def test_output_naming_an_existing_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = hostile_layout(tmp_path / "l", [(mt.WASM_LAYER, MODULE, "app.wasm")])
    target = tmp_path / "file"
    target.write_bytes(b"mine")
    assert _pull(ref, target) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert target.read_bytes() == b"mine"


def test_two_layers_with_one_name_are_refused(tmp_path: Path) -> None:
    ref = hostile_layout(
        tmp_path / "l",
        [(mt.WASM_LAYER, MODULE, "a.wasm"), (mt.WASM_LAYER, MODULE + b"\0", "a.wasm")],
    )
    assert _pull(ref, tmp_path / "out") == 2
    assert not (tmp_path / "out").exists()


# -- SIGTERM partway ------------------------------------------------------------------------


class _TricklingRegistry:
    """Serves one artifact; its layer's first bytes, then nothing until the client leaves."""

    def __init__(self, layer: bytes) -> None:
        self.layer = layer
        self.config_digest = Descriptor.of(mt.WASM_CONFIG, CONFIG).digest
        layer_descriptor = Descriptor.of(mt.WASM_LAYER, layer, {mt.ANNOTATION_TITLE: "app.wasm"})
        config = Descriptor.of(mt.WASM_CONFIG, CONFIG)
        self.manifest = Manifest(
            config=config, layers=(layer_descriptor,), media_type=mt.OCI_MANIFEST
        ).to_bytes()
        self.layer_digest = layer_descriptor.digest
        self.stop = threading.Event()

    def handler(self) -> type[QuietHandler]:
        registry = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path == "/v2/":
                    self._send(b"{}", "application/json")
                elif self.path.startswith("/v2/app/manifests/"):
                    self._send(registry.manifest, mt.OCI_MANIFEST)
                elif self.path == f"/v2/app/blobs/{registry.config_digest}":
                    self._send(CONFIG, "application/octet-stream")
                elif self.path == f"/v2/app/blobs/{registry.layer_digest}":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(registry.layer)))
                    self.end_headers()
                    self.wfile.write(registry.layer[:1024])
                    self.wfile.flush()
                    registry.stop.wait(30)  # trickle: the rest never comes in time
                else:
                    self.send_error(404)

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def trickling() -> Iterator[str]:
    registry = _TricklingRegistry(MODULE + bytes(1 << 20))
    server = ThreadingHTTPServer(("127.0.0.1", 0), registry.handler())
    thread = ServerThread(server, "trickling-registry")
    try:
        yield thread.host
    finally:
        registry.stop.set()
        thread.stop()


def test_sigterm_partway_through_a_pull_leaves_nothing_behind(
    tmp_path: Path, trickling: str
) -> None:
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "NO_COLOR": "1"}
    argv = ["pull", "--plain-http", trickling, f"{trickling}/app:v1", "-o", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wasmctl", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(out.rglob("*.part")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no .part file appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert not out.exists() or list(out.rglob("*")) == []
    assert list(tmp.iterdir()) == []


def test_the_layout_helper_makes_a_readable_artifact(tmp_path: Path) -> None:
    ref = hostile_layout(tmp_path / "l", [(mt.WASM_LAYER, MODULE, "app.wasm")])
    assert run(["inspect", "--format", "json", ref]) == 0
    index = json.loads((tmp_path / "l" / "index.json").read_bytes())
    assert len(index["manifests"]) == 1
