"""`build`: a module, component or OPA bundle in, a scratch-based Wasm OCI artifact out.

Two formats (DESIGN.md §3, shared/reference/oci-formats.md §1-§2):

- `wasm`: the CNCF TAG-Runtime Wasm artifact: config `application/vnd.wasm.config.v0+json`
  and exactly one `application/wasm` layer holding the module's exact bytes.
- `compat`: a runnable `wasi/wasm` image for crun, podman and runwasi's fallback: an OCI
  image config with `Entrypoint ["/NAME.wasm"]` and one reproducible tar+gzip layer.

Same input and options, same digest: `created` comes from SOURCE_DATE_EPOCH (else the epoch),
JSON is canonical, the tar has fixed owners, modes and times, and gzip's header mtime is 0.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import re
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wasmctl._epoch import rfc3339, source_date_epoch
from wasmctl.errors import InputError, WasmParseError
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import LayoutWriter, layout_for_writing
from wasmctl.oci.models import Descriptor, Index, Manifest, Platform, canonical_json
from wasmctl.oci.opa_bundle import OpaBundle, is_gzip, read_bundle
from wasmctl.oci.pgzip import ParallelGzipWriter
from wasmctl.oci.reference import DEFAULT_TAG, LayoutReference, Reference, RegistryReference
from wasmctl.wasm.model import Module

if TYPE_CHECKING:
    from wasmctl.oci.source import RegistryOptions
from wasmctl.wasm.parser import exported_i32_global, open_binary, parse

# Part of the format: another level, or another block size in pgzip, gives another digest.
# Level 4 on every core packs python.wasm (99 MB) in 0.83x buildah's time, to within 1.2% of
# its layer size; level 5 is as slow as buildah, level 6 1.5x (benchmarks/build_vs_peers.sh).
GZIP_LEVEL = 4
CHUNK = 1 << 20
COMPAT_VARIANT = "compat-smart"

# wasm-metadata's custom sections (`wasm-tools metadata add`) and the annotation each fills
METADATA_ANNOTATIONS = {
    "version": "org.opencontainers.image.version",
    "description": "org.opencontainers.image.description",
    "licenses": "org.opencontainers.image.licenses",
    "source": "org.opencontainers.image.source",
    "revision": "org.opencontainers.image.revision",
    "homepage": "org.opencontainers.image.url",
    "authors": "org.opencontainers.image.authors",
}
OPA_ENTRYPOINTS = "org.openpolicyagent.policy.entrypoints"
OPA_ABI_VERSION = "org.openpolicyagent.policy.abi-version"
OPA_REVISION = "org.openpolicyagent.bundle.revision"


class ArtifactFormat(enum.StrEnum):
    """What `build` writes."""

    WASM = "wasm"
    COMPAT = "compat"


@dataclass(frozen=True)
class BuildOptions:
    """Everything besides the input that decides the artifact's bytes."""

    format: ArtifactFormat = ArtifactFormat.WASM
    index: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    author: str | None = None
    target: str | None = None
    created: str = "1970-01-01T00:00:00Z"
    epoch: int = 0


@dataclass(frozen=True)
class BuildResult:
    """What was written: the tagged descriptor (manifest or index) and the manifest."""

    reference: Reference
    descriptor: Descriptor
    manifest: Manifest
    config: dict[str, Any]
    module: Module
    title: str
    warnings: tuple[str, ...] = ()


def created_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """`created` (RFC 3339) and its epoch seconds, from SOURCE_DATE_EPOCH or the epoch."""
    when = source_date_epoch(environ) or datetime.fromtimestamp(0, UTC)
    return rfc3339(when), int(when.timestamp())


def build_artifact(
    source: Path,
    target: Reference,
    options: BuildOptions,
    registry: RegistryOptions | None = None,
) -> BuildResult:
    """Validate `source`, pack it, and tag it; nothing is written on failure.

    A layout target is written as a transaction; for a registry target the artifact is built
    into a private layout first, then pushed (`registry` says how to reach the registry).
    """
    if isinstance(target, RegistryReference):
        from wasmctl.oci.transfer import copy

        with tempfile.TemporaryDirectory(prefix="wasmctl-build-") as tmp:
            built = build_artifact(source, LayoutReference(Path(tmp) / "layout", "built"), options)
            copy(built.reference, target, registry)
        return dataclasses.replace(built, reference=target)
    if target.digest is not None:
        raise InputError(f"{target}: build writes a tag, not a digest")
    if options.index and options.format is not ArtifactFormat.COMPAT:
        raise InputError("--index applies to --format compat only")
    with tempfile.TemporaryDirectory(prefix="wasmctl-build-") as work:
        bundle = read_bundle(source, Path(work)) if is_gzip(source) else None
        module_path = bundle.module if bundle else source
        module, metadata = _read_module(module_path, shown=str(source))
        warnings: list[str] = []
        annotations = dict(metadata)
        if bundle:
            annotations.update(_bundle_annotations(bundle, module_path, module))
            if bundle.data_size:
                warnings.append(
                    f"{source}: data.json ({bundle.data_size} bytes) is not part of the "
                    "artifact; hosts must pass it when they evaluate the policy"
                )
        annotations["org.opencontainers.image.created"] = options.created
        annotations.update(options.annotations)
        title = _title(bundle.module_name if bundle else source.name)
        with layout_for_writing(target) as writer:
            if options.format is ArtifactFormat.WASM:
                manifest, config = _wasm_artifact(
                    writer, module_path, module, title, options, annotations
                )
            else:
                manifest, config = _compat_image(writer, module_path, title, options, annotations)
            manifest_bytes = manifest.to_bytes()
            descriptor = writer.add_bytes(mt.OCI_MANIFEST, manifest_bytes)
            if options.index:
                index = Index(
                    (
                        Descriptor(
                            descriptor.media_type,
                            descriptor.digest,
                            descriptor.size,
                            platform=Platform("wasm", "wasi"),
                        ),
                    ),
                    annotations={"org.opencontainers.image.created": options.created},
                )
                descriptor = writer.add_bytes(mt.OCI_INDEX, index.to_bytes())
            writer.tag(descriptor, target.tag or DEFAULT_TAG)
    return BuildResult(
        reference=target.with_tag(target.tag or DEFAULT_TAG),
        descriptor=descriptor,
        manifest=Manifest.from_bytes(manifest_bytes),
        config=config,
        module=module,
        title=title,
        warnings=tuple(warnings),
    )


def _read_module(path: Path, shown: str) -> tuple[Module, dict[str, str]]:
    """Parse (so a malformed module is refused first) and read wasm-metadata annotations."""
    with open_binary(path) as data:
        try:
            module = parse(data)
        except WasmParseError as e:
            raise e.in_file(shown) from None
        metadata = {}
        for section in module.custom_sections:
            key = METADATA_ANNOTATIONS.get(section.name)
            if key and section.size <= 64 * 1024:
                raw = bytes(data[section.offset : section.offset + section.size])
                text = raw.decode("utf-8", "replace").strip()
                if text:
                    metadata[key] = text
    return module, metadata


def _bundle_annotations(bundle: OpaBundle, module_path: Path, module: Module) -> dict[str, str]:
    out = {}
    if bundle.entrypoints:
        out[OPA_ENTRYPOINTS] = ",".join(bundle.entrypoints)
    with open_binary(module_path) as data:
        major = exported_i32_global(data, module, "opa_wasm_abi_version")
        minor = exported_i32_global(data, module, "opa_wasm_abi_minor_version")
    if major is not None:
        out[OPA_ABI_VERSION] = f"{major}.{minor or 0}"
    if bundle.revision:
        out[OPA_REVISION] = bundle.revision
    return out


def _title(file_name: str) -> str:
    """`NAME.wasm` from the input's file name, reduced to a safe file name."""
    stem = file_name[:-5] if file_name.endswith(".wasm") else file_name.split(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:64] or "module"
    return f"{stem}.wasm"


def _wasm_artifact(
    writer: LayoutWriter,
    module_path: Path,
    module: Module,
    title: str,
    options: BuildOptions,
    annotations: dict[str, str],
) -> tuple[Manifest, dict[str, Any]]:
    layer = writer.add_file(mt.WASM_LAYER, module_path, annotations={mt.ANNOTATION_TITLE: title})
    component = None
    if module.is_component:
        component = {
            "exports": sorted({e.name for e in module.exports}),
            "imports": sorted({i.module for i in module.imports}),
            "target": options.target,
        }
    elif options.target:
        raise InputError("--target names a WIT world; it applies to components only")
    config = {
        "architecture": "wasm",
        "author": options.author,
        "component": component,
        "created": options.created,
        "layerDigests": [layer.digest],
        "os": "wasip2" if module.is_component else "wasip1",
    }
    config_descriptor = writer.add_bytes(mt.WASM_CONFIG, canonical_json(config))
    return Manifest(config_descriptor, (layer,), annotations=annotations), config


def _compat_image(
    writer: LayoutWriter,
    module_path: Path,
    title: str,
    options: BuildOptions,
    annotations: dict[str, str],
) -> tuple[Manifest, dict[str, Any]]:
    staged = writer.scratch / "layer.tar.gz"
    diff_id = _write_layer(module_path, title, staged, options.epoch)
    layer = writer.adopt(mt.OCI_LAYER_TAR_GZIP, staged)
    config: dict[str, Any] = {
        "architecture": "wasm",
        "os": "wasi",
        "created": options.created,
        "config": {"Entrypoint": [f"/{title}"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": options.created, "created_by": f"wasmctl build: COPY {title} /"}],
    }
    if options.author:
        config["author"] = options.author
    config_descriptor = writer.add_bytes(mt.OCI_CONFIG, canonical_json(config))
    annotations = {**annotations, mt.ANNOTATION_COMPAT_VARIANT: COMPAT_VARIANT}
    return Manifest(config_descriptor, (layer,), annotations=annotations), config


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes what passes through to `sink` (if any)."""

    def __init__(self, sink: Any = None) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)


def _write_layer(module_path: Path, title: str, target: Path, epoch: int) -> str:
    """Write the gzipped one-file tar; returns the digest of the uncompressed tar (diff_id)."""
    size = module_path.stat().st_size
    info = tarfile.TarInfo(title)
    info.size = size
    info.mode = 0o755  # crun before crun#1043 needed the exec bit
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    with target.open("wb") as out, ParallelGzipWriter(out.write, GZIP_LEVEL) as compressed:
        uncompressed = _Hashing(compressed)
        # The tar is written by hand (header, body, padding, end blocks, record padding): the
        # same bytes tarfile's stream writer makes, without its extra copy of every block.
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
        uncompressed.write(header)
        copied = 0
        with module_path.open("rb") as body:
            while chunk := body.read(CHUNK):
                uncompressed.write(chunk)
                copied += len(chunk)
        if copied != size:
            raise InputError(f"{module_path} changed while it was being packed")
        total = len(header) + size + (-size % tarfile.BLOCKSIZE) + 2 * tarfile.BLOCKSIZE
        uncompressed.write(bytes(-size % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))
        uncompressed.write(bytes(-total % tarfile.RECORDSIZE))
    return "sha256:" + uncompressed.hash.hexdigest()
