"""skopeo (containers/image) reads what `wasmctl build` writes, field by field."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from wasmctl.cli import run
from wasmctl.oci.models import sha256_digest

EXAMPLES = Path(__file__).parents[2] / "examples" / "modules"


def skopeo(*args: str) -> str:
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed: scripts/setup --test installs it (apt)")
    proc = subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def build(tmp_path: Path, module: str, tag: str, *flags: str) -> str:
    ref = f"oci:{tmp_path / 'layout'}:{tag}"
    assert run(["build", str(EXAMPLES / module), "-t", ref, *flags]) == 0
    return ref


def test_skopeo_reads_the_wasm_artifact(tmp_path: Path) -> None:
    ref = build(tmp_path, "fetch.wasm", "wasm", "--version", "1.0.0")
    raw = skopeo("inspect", "--raw", ref)
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/wasm"
    assert layer["digest"] == sha256_digest((EXAMPLES / "fetch.wasm").read_bytes())
    assert layer["annotations"] == {"org.opencontainers.image.title": "fetch.wasm"}
    assert manifest["annotations"]["org.opencontainers.image.version"] == "1.0.0"
    config = json.loads(skopeo("inspect", "--config", "--raw", ref))
    assert config["architecture"] == "wasm" and config["os"] == "wasip2"
    assert config["layerDigests"] == [layer["digest"]]
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert "author" in config
    assert config["component"]["imports"] == sorted(config["component"]["imports"])
    assert "wasi:http/outgoing-handler@0.2.0" in config["component"]["imports"]


def test_skopeo_reads_the_compat_image_and_its_index(tmp_path: Path) -> None:
    ref = build(tmp_path, "hello.wasm", "compat", "--format", "compat")
    manifest = json.loads(skopeo("inspect", "--raw", ref))
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat-smart"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    config = json.loads(skopeo("inspect", "--config", "--raw", ref))
    assert (config["architecture"], config["os"]) == ("wasm", "wasi")
    assert config["config"]["Entrypoint"] == ["/hello.wasm"]
    assert config["rootfs"]["type"] == "layers" and len(config["rootfs"]["diff_ids"]) == 1
    indexed = build(tmp_path, "hello.wasm", "indexed", "--format", "compat", "--index")
    index = json.loads(skopeo("inspect", "--raw", indexed))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert index["manifests"][0]["platform"] == {"architecture": "wasm", "os": "wasi"}
    # skopeo resolves the index to the wasi/wasm image when asked for that platform
    chosen = json.loads(
        skopeo("--override-os", "wasi", "--override-arch", "wasm", "inspect", "--config",
               "--raw", indexed)
    )  # fmt: skip
    assert chosen == config


@pytest.mark.parametrize("fmt", ["wasm", "compat"])
def test_skopeo_copy_round_trips_with_the_same_digest(tmp_path: Path, fmt: str) -> None:
    ref = build(tmp_path, "echo_server.wasm", fmt, "--format", fmt)
    original = sha256_digest(skopeo("inspect", "--raw", ref).encode())
    copy = f"oci:{tmp_path / 'copy'}:{fmt}"
    skopeo("copy", "--preserve-digests", ref, copy)
    assert sha256_digest(skopeo("inspect", "--raw", copy).encode()) == original
    # and wasmctl reads skopeo's layout back
    assert run(["scan", "--preset", "no-network", copy]) == 1
