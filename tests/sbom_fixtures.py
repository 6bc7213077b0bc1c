"""Modules that carry build data, for the SBOM tests.

- a Rust module: the example `hello.wasm` with a `.dep-v0` section appended, as
  cargo-auditable writes it (zlib JSON `VersionInfo`), holding a realistic dependency set of
  a small serde/anyhow program with a build-time `cc`;
- a component whose nested core module is that Rust module (`wasm-tools component new`
  with the jco preview1 adapter);
- a Go module: a data segment holding `runtime.modinfo` between the modload sentinels, with
  dependencies and a replacement, and the real `esbuild.wasm` from npm `esbuild-wasm`;
- a zlib bomb: a `.dep-v0` that inflates to 64 MiB.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from tests.corpus import Member, Package, fetch_package, wasm_tools
from tests.wasmbytes import custom_section, producers_payload

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "modules"
HELLO = EXAMPLES / "hello.wasm"

# cargo-auditable's VersionInfo for a small program (format 1: proc-macros marked build)
RUST_PACKAGES = [
    {"name": "edge-app", "version": "0.3.1", "source": "local", "dependencies": [1, 2, 3, 9],
     "root": True},
    {"name": "anyhow", "version": "1.0.93", "source": "crates.io"},
    {"name": "serde", "version": "1.0.215", "source": "crates.io", "dependencies": [4]},
    {"name": "serde_json", "version": "1.0.133", "source": "crates.io",
     "dependencies": [2, 5, 6, 7]},
    {"name": "serde_derive", "version": "1.0.215", "source": "crates.io", "kind": "build",
     "dependencies": [8]},
    {"name": "itoa", "version": "1.0.14", "source": "crates.io"},
    {"name": "memchr", "version": "2.7.4", "source": "crates.io"},
    {"name": "ryu", "version": "1.0.18", "source": "crates.io"},
    {"name": "proc-macro2", "version": "1.0.92", "source": "crates.io", "kind": "build"},
    {"name": "wit-bindgen", "version": "0.36.0", "source": "git"},
]  # fmt: skip
RUST_VERSION_INFO = {"format": 1, "packages": RUST_PACKAGES}
RUSTC = {"language": [("Rust", "")], "processed-by": [("rustc", "1.83.0 (90b35a623 2024-11-26)")]}

GO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
GO_END = bytes.fromhex("f932433186182072008242104116d8f2")
GO_MODINFO = (
    "path\texample.com/edge/cmd/edge\n"
    "mod\texample.com/edge\tv1.4.0\th1:mainsum=\n"
    "dep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n"
    "dep\tgolang.org/x/text\tv0.21.0\th1:4IBZu4ZyQ9Rz2Q9JSvaCMc0uGkYqx1d0uH8Jn9Xm8tM=\n"
    "=>\tgolang.org/x/text\tv0.20.0\th1:gK/Kv2otX8gz+wn7Rmb3vT96ZwuoxnQlY+HlJVj7Qug=\n"
    "build\t-trimpath=true\n"
    "build\tGOOS=wasip1\n"
    "build\tGOARCH=wasm\n"
    "build\tvcs.revision=0f3c1d2\n"
)
ESBUILD = Package(
    "npm",
    "esbuild-wasm@0.28.2",
    (
        Member(
            "esbuild",
            "package/esbuild.wasm",
            "b1831a5c0f6cf688034fb94d0419812f165ea316a3380d3fc00a151e562d2eaf",
        ),
    ),
)


def deflate(data: object) -> bytes:
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)


def rust_module(directory: Path, version_info: object = RUST_VERSION_INFO) -> Path:
    """hello.wasm with cargo-auditable's section and a rustc `producers` section."""
    path = directory / "edge-app.wasm"
    path.write_bytes(
        HELLO.read_bytes()
        + custom_section("producers", producers_payload(RUSTC))
        + custom_section(".dep-v0", deflate(version_info))
    )
    return path


def rust_component(directory: Path, adapter: Path) -> Path:
    """A component whose main core module carries `.dep-v0`."""
    core = rust_module(directory)
    out = directory / "edge-app.component.wasm"
    wasm_tools("component", "new", core, "-o", out, "--adapt",
               f"wasi_snapshot_preview1={adapter}")  # fmt: skip
    return out


def go_module(directory: Path, modinfo: str = GO_MODINFO) -> Path:
    """A module whose data segment holds Go `modinfo`, with a Go `producers` section."""
    data = b"\x00runtime\x00" + GO_START + modinfo.encode() + GO_END + b"\x00tail"
    escaped = "".join(f"\\{b:02x}" for b in data)
    source = directory / "edge-go.wat"
    source.write_text(
        '(module (memory 1) (export "memory" (memory 0)) (func (export "_start"))\n'
        f'  (data (i32.const 1024) "{escaped}"))\n'
    )
    path = directory / "edge-go.wasm"
    wasm_tools("parse", source, "-o", path)
    go = {"language": [("Go", "go1.23.4")], "processed-by": [("Go cmd/compile", "go1.23.4")]}
    path.write_bytes(path.read_bytes() + custom_section("producers", producers_payload(go)))
    return path


def zlib_bomb(directory: Path) -> Path:
    """A `.dep-v0` that inflates to 64 MiB of spaces (64 KiB compressed)."""
    path = directory / "bomb.wasm"
    payload = zlib.compress(b" " * (64 << 20), 9)
    path.write_bytes(HELLO.read_bytes() + custom_section(".dep-v0", payload))
    return path


def esbuild(cache: Path) -> Path:
    """The real esbuild.wasm (Go 1.26.5, js/wasm), pinned and cached like the corpus."""
    return fetch_package(ESBUILD, cache)["esbuild"]
