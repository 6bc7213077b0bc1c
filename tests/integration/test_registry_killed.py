"""A registry killed in the middle of a push: exit 3, and a rerun sends only what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests import wasmbytes as wb
from tests.registry import run_registry
from wasmctl.cli import run
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.source import RegistryOptions
from wasmctl.oci.transfer import copy

BIG = 96 << 20


def big_module(path: Path) -> Path:
    """A valid module of ~96 MiB: a custom section of random bytes."""
    path.write_bytes(wb.core_module(wb.custom_section("payload", os.urandom(BIG))))
    return path


def upload_in_progress(storage: Path) -> bool:
    uploads = storage.glob("docker/registry/v2/repositories/*/*/_uploads/*/data")
    return any(p.stat().st_size > (4 << 20) for p in uploads)


def test_killed_registry_then_rerun(tmp_path: Path) -> None:
    layout = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["build", str(big_module(tmp_path / "big.wasm")), "-t", layout]) == 0
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    with run_registry(tmp_path / "registry") as server:
        target = f"{server.host}/killed/app:v1"
        push = subprocess.Popen(
            [sys.executable, "-m", "wasmctl", "push", "--plain-http", server.host, layout, target],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not upload_in_progress(server.storage):
            assert push.poll() is None, "the push finished before the registry could be killed"
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.005)
    # leaving the block killed the registry mid-upload
    _, err = push.communicate(timeout=120)
    assert push.returncode == 3, err.decode()
    with run_registry(tmp_path / "registry") as server:  # the same storage, a new port
        options = RegistryOptions(plain_http=frozenset({server.host}))
        _, stats = copy(parse_reference(layout), parse_reference(f"{server.host}/killed/app:v1"),
                        options)  # fmt: skip
        assert (stats.blobs_skipped, stats.blobs_sent) == (1, 1)  # the config was there already
        assert stats.bytes_sent > BIG
        out = tmp_path / "out"
        assert run(["pull", "--plain-http", server.host, f"{server.host}/killed/app:v1",
                    "-o", str(out)]) == 0  # fmt: skip
        assert (out / "big.wasm").read_bytes() == (tmp_path / "big.wasm").read_bytes()
