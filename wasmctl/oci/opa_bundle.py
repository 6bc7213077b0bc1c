"""OPA bundles (`opa build -t wasm` writes `bundle.tar.gz`) as build input.

A bundle is a gzipped tar of `/policy.wasm`, `/.manifest`, `/data.json` and the Rego sources
(OPA docs, "Bundles" and "WebAssembly"). `.manifest` lists the Wasm modules with their
entrypoints (`"wasm": [{"entrypoint": "example/allow", "module": "/policy.wasm"}]`) and may
carry a `revision`. The policy's data is not compiled into the module: hosts pass
`data.json` at evaluation time. Bundles are hostile input: only regular files are read, names
that climb out with `..` are refused, and every size is capped.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from wasmctl.errors import InputError

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
        with path.open("rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def read_bundle(bundle: Path, workdir: Path) -> OpaBundle:
    """Extract the bundle's Wasm module into `workdir` and read its manifest."""
    manifest: dict[str, Any] = {}
    files: dict[str, tarfile.TarInfo] = {}
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise BundleError(f"{bundle}: more than {MAX_MEMBERS} entries")
                name = _member_name(member.name, bundle)
                if name and member.isfile():
                    files[name] = member
            if ".manifest" in files:
                manifest = _json_member(tar, files[".manifest"], bundle)
            wanted = _module_name(manifest, files, bundle)
            member = files[wanted]
            if member.size > MAX_MODULE_BYTES:
                raise BundleError(f"{bundle}: {wanted} is larger than {MAX_MODULE_BYTES} bytes")
            source = tar.extractfile(member)
            if source is None:
                raise BundleError(f"{bundle}: cannot read {wanted}")
            target = workdir / PurePosixPath(wanted).name
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            data_size = None
            if "data.json" in files:
                data = _json_member(tar, files["data.json"], bundle, limit=MAX_MODULE_BYTES)
                if data:
                    data_size = files["data.json"].size
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as e:
        raise BundleError(f"{bundle}: not a readable OPA bundle (tar.gz): {e}") from None
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


def _member_name(name: str, bundle: Path) -> str:
    """The name relative to the bundle root (OPA writes `/policy.wasm`); refuses `..`."""
    parts = [p for p in PurePosixPath(name).parts if p not in ("/", "", ".")]
    if ".." in parts:
        raise BundleError(f"{bundle}: entry {name!r} climbs out of the bundle")
    return "/".join(parts)


def _module_name(manifest: dict[str, Any], files: dict[str, tarfile.TarInfo], bundle: Path) -> str:
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


def _json_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, bundle: Path, limit: int = MAX_MANIFEST_BYTES
) -> dict[str, Any]:
    if member.size > limit:
        raise BundleError(f"{bundle}: {member.name} is larger than {limit} bytes")
    source = tar.extractfile(member)
    if source is None:
        raise BundleError(f"{bundle}: cannot read {member.name}")
    with source:
        raw = source.read(limit + 1)
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise BundleError(f"{bundle}: {member.name} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{bundle}: {member.name} must be a JSON object")
    return data
