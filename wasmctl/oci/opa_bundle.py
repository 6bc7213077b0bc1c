"""OPA bundles (`opa build -t wasm` writes `bundle.tar.gz`) as build input.

A bundle is a gzipped tar of `/policy.wasm`, `/.manifest`, `/data.json` and the Rego sources
(OPA docs, "Bundles" and "WebAssembly"). `.manifest` lists the Wasm modules with their
entrypoints (`"wasm": [{"entrypoint": "example/allow", "module": "/policy.wasm"}]`) and may
carry a `revision`. The policy's data is not compiled into the module: hosts pass
`data.json` at evaluation time. Bundles are hostile input: only regular files are read, names
that climb out with `..` are refused, and every size is capped.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from wasmctl import _json
from wasmctl._files import open_regular
from wasmctl.errors import InputError
from wasmctl.oci.bounded_tar import BoundedTar, InflateLimits, open_bounded_tar

MAX_MODULE_BYTES = 512 << 20
MAX_MANIFEST_BYTES = 1 << 20
MAX_MEMBERS = 10_000


class BundleError(InputError):
    """An OPA bundle that cannot be used."""


@dataclass(frozen=True)
class OpaBundle:
    """What a build takes from a bundle: the module (written to `module`) and its metadata."""

    module: Path
    module_name: str
    entrypoints: tuple[str, ...]
    revision: str | None
    data_size: int | None  # bytes of data.json beyond `{}`, or None when absent or empty


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic number."""
    try:
        with open_regular(path, "bundle") as f:
            return f.read(2) == b"\x1f\x8b"
    except (OSError, InputError):
        return False


def read_bundle(bundle: Path, workdir: Path) -> OpaBundle:
    """Extract the bundle's Wasm module into `workdir` and read its manifest.

    One pass over the gzip stream (`bounded_tar`: bounded in what it inflates to and in
    entries): `.manifest` and `data.json` are read, every `*.wasm` is set aside, and the one
    the manifest names is kept."""
    manifest: dict[str, Any] = {}
    modules: dict[str, Path] = {}
    data_size: int | None = None
    staging = workdir / ".bundle"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        with open_regular(bundle, "OPA bundle", BundleError) as f:
            limits = InflateLimits.for_compressed(os.fstat(f.fileno()).st_size, members=MAX_MEMBERS)
            what = "OPA bundle (tar.gz)"
            with open_bounded_tar(f, "gz", limits, str(bundle), BundleError, what) as tar:
                for member in tar:
                    name = _member_name(member.name, bundle)
                    if not name or not member.isfile():
                        continue
                    if name == ".manifest":
                        raw = tar.read_member(member, MAX_MANIFEST_BYTES)
                        manifest = _json_object(raw, member.name, bundle)
                    elif name == "data.json":
                        data_size = _data_size(tar, member, bundle)
                    elif name.endswith(".wasm"):
                        if member.size > MAX_MODULE_BYTES:
                            raise BundleError(
                                f"{bundle}: {name} is larger than {MAX_MODULE_BYTES} bytes"
                            )
                        modules[name] = staging / f"{len(modules)}.wasm"
                        tar.copy_member(member, modules[name])
        wanted = _module_name(manifest, modules, bundle)
        target = workdir / PurePosixPath(wanted).name
        os.replace(modules[wanted], target)
    except OSError as e:
        raise BundleError(f"{bundle}: not a readable OPA bundle (tar.gz): {e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    entrypoints = tuple(
        str(w["entrypoint"])
        for w in manifest.get("wasm") or []
        if isinstance(w, dict)
        and isinstance(w.get("entrypoint"), str)
        and _member_name(str(w.get("module", "")), bundle) == wanted
    )
    revision = manifest.get("revision")
    return OpaBundle(
        module=target,
        module_name=PurePosixPath(wanted).name,
        entrypoints=entrypoints,
        revision=revision if isinstance(revision, str) and revision else None,
        data_size=data_size,
    )


def _data_size(tar: BoundedTar, member: tarfile.TarInfo, bundle: Path) -> int | None:
    """The size of `data.json` when it holds data (`{}` is none). A large one is not read:
    it cannot be `{}`, and hosts pass it at evaluation time anyway."""
    if member.size > MAX_MANIFEST_BYTES:
        return member.size
    return (
        member.size
        if _json_object(tar.read_member(member, MAX_MANIFEST_BYTES), member.name, bundle)
        else None
    )


def _member_name(name: str, bundle: Path) -> str:
    """The name relative to the bundle root (OPA writes `/policy.wasm`); refuses `..`."""
    parts = [p for p in PurePosixPath(name).parts if p not in ("/", "", ".")]
    if ".." in parts:
        raise BundleError(f"{bundle}: entry {name!r} climbs out of the bundle")
    return "/".join(parts)


def _module_name(manifest: dict[str, Any], files: Mapping[str, Path], bundle: Path) -> str:
    modules = {
        _member_name(str(w.get("module", "")), bundle)
        for w in manifest.get("wasm") or []
        if isinstance(w, dict)
    }
    modules.discard("")
    if len(modules) > 1:
        raise BundleError(
            f"{bundle}: the manifest lists {len(modules)} Wasm modules; wasmctl packs one"
        )
    wanted = modules.pop() if modules else "policy.wasm"
    if wanted not in files:
        raise BundleError(
            f"{bundle}: no {wanted} in the bundle",
            hint="build the bundle with `opa build -t wasm -e <entrypoint> ...`",
        )
    return wanted


def _json_object(raw: bytes, name: str, bundle: Path) -> dict[str, Any]:
    data = _json.loads(raw, f"{bundle}: {name}", BundleError)
    if not isinstance(data, dict):
        raise BundleError(f"{bundle}: {name} must be a JSON object")
    return data
