"""OPA bundles as build input: what is taken from them, and hostile bundles refused."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from wasmctl.oci.build import BuildOptions, build_artifact
from wasmctl.oci.opa_bundle import BundleError
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.transfer import reference_modules
from wasmctl.scan import Verdict, load_preset, scan_paths

Wat = Callable[[str], Path]

POLICY = """(module
  (import "env" "memory" (memory 2))
  (import "env" "opa_abort" (func (param i32)))
  (import "env" "opa_builtin0" (func (param i32 i32) (result i32)))
  (global (export "opa_wasm_abi_version") i32 (i32.const 1))
  (global (export "opa_wasm_abi_minor_version") i32 (i32.const 3))
  (func (export "opa_eval_ctx_new") (result i32) (i32.const 0))
  (func (export "eval") (param i32) (result i32) (i32.const 0))
  (func (export "entrypoints") (result i32) (i32.const 0))
  (func (export "builtins") (result i32) (i32.const 0))
  (func (export "opa_malloc") (param i32) (result i32) (i32.const 0))
  (func (export "opa_json_parse") (param i32 i32) (result i32) (i32.const 0)))"""

MANIFEST = {
    "revision": "abc123",
    "roots": ["example"],
    "wasm": [{"entrypoint": "example/allow", "module": "/policy.wasm"}],
}


def bundle(tmp_path: Path, members: dict[str, bytes | None], name: str = "bundle.tar.gz") -> Path:
    """A tar.gz with the given members, named as OPA names them (`/policy.wasm`)."""
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            if data is None:
                info.type = tarfile.SYMTYPE
                info.linkname = "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def policy_wasm(wat: Wat) -> bytes:
    return wat(POLICY).read_bytes()


def test_a_bundle_becomes_an_artifact_with_its_entrypoints(
    tmp_path: Path, policy_wasm: bytes
) -> None:
    source = bundle(
        tmp_path,
        {
            "/data.json": b'{"allowed_users": ["alice"]}',
            "/policy.rego": b"package example\nallow := true\n",
            "/policy.wasm": policy_wasm,
            "/.manifest": json.dumps(MANIFEST).encode(),
        },
    )
    result = build_artifact(source, parse_reference(f"oci:{tmp_path}/out:p"), BuildOptions())
    annotations = result.manifest.annotations
    assert annotations["org.openpolicyagent.policy.entrypoints"] == "example/allow"
    assert annotations["org.openpolicyagent.policy.abi-version"] == "1.3"
    assert annotations["org.openpolicyagent.bundle.revision"] == "abc123"
    assert result.manifest.layers[0].annotations["org.opencontainers.image.title"] == "policy.wasm"
    assert result.warnings and "data.json" in result.warnings[0]
    report = scan_paths([f"oci:{tmp_path}/out:p"], [load_preset("opa")], reference_modules)
    assert report.verdict is Verdict.ALLOW


def test_empty_data_gives_no_warning(tmp_path: Path, policy_wasm: bytes) -> None:
    source = bundle(tmp_path, {"data.json": b"{}", "policy.wasm": policy_wasm})
    result = build_artifact(source, parse_reference(f"oci:{tmp_path}/out"), BuildOptions())
    assert result.warnings == ()
    assert "org.openpolicyagent.policy.entrypoints" not in result.manifest.annotations


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../policy.wasm": b"\0asm\1\0\0\0"}, "climbs out"),
        ({"/policy.wasm": None}, "no policy.wasm"),  # a symlink is not a module
        ({"/data.json": b"{}"}, "no policy.wasm"),
        ({"/.manifest": b"[1, 2]", "/policy.wasm": b"\0asm\1\0\0\0"}, "must be a JSON object"),
        (
            {"/.manifest": b"[" * 100_000 + b"]" * 100_000, "/policy.wasm": b"\0asm\1\0\0\0"},
            "nested deeper",
        ),
        (
            {
                "/.manifest": json.dumps(
                    {"wasm": [{"module": "/a.wasm"}, {"module": "/b.wasm"}]}
                ).encode()
            },
            "lists 2 Wasm modules",
        ),
    ],
)
def test_hostile_or_broken_bundles_are_refused(
    tmp_path: Path, members: dict[str, bytes | None], message: str
) -> None:
    source = bundle(tmp_path, members)
    with pytest.raises(BundleError, match=message):
        build_artifact(source, parse_reference(f"oci:{tmp_path}/out"), BuildOptions())
    assert not (tmp_path / "out").exists()


def test_a_truncated_bundle_is_refused(tmp_path: Path, policy_wasm: bytes) -> None:
    source = bundle(tmp_path, {"/policy.wasm": policy_wasm * 50})
    source.write_bytes(source.read_bytes()[:200])
    with pytest.raises(BundleError, match="not a readable OPA bundle"):
        build_artifact(source, parse_reference(f"oci:{tmp_path}/out"), BuildOptions())
