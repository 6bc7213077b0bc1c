"""Reading artifacts: resolve a reference, recognise its format, and get its Wasm out.

Formats (shared/reference/oci-formats.md §1-§3): the CNCF Wasm artifact, compat `wasi/wasm`
images, wasm-to-oci (and cosign `upload wasm`), Spin applications, wasmCloud's pre-1.0 actors
and provider archives, and image indexes, among them Docker buildx indexes that carry
attestation manifests beside the `wasi/wasm` image.
"""

from __future__ import annotations

import contextlib
import enum
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.bounded_tar import InflateLimits, open_bounded_tar
from wasmctl.oci.layout import LayoutError
from wasmctl.oci.models import (
    Descriptor,
    Index,
    Manifest,
    ManifestError,
    load_json_object,
    parse_manifest_or_index,
)

MAX_MODULE_BYTES = 1 << 30
CHUNK = 1 << 20
MAX_LAYER_MEMBERS = 10_000  # a compat layer holds one module; buildah adds a few dirs


class NoWasmManifestError(LayoutError):
    """An index without a Wasm manifest to read.

    With no `evidence`, its manifests are all for other platforms and nothing about it says
    a runtime would run it as Wasm: an ordinary container image. With `evidence` (why a
    runtime would run it as Wasm all the same: a `wasi/wasm` entry that is not a readable
    manifest, or several platform manifests that would each run as Wasm), it is a Wasm
    workload that cannot be checked, and a gate must refuse it rather than pass it by."""

    def __init__(
        self, message: str, *, evidence: tuple[str, ...] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.evidence = evidence


class ArtifactKind(enum.StrEnum):
    """The format `inspect` names."""

    WASM = "wasm"
    COMPAT = "compat"
    WASM_TO_OCI = "wasm-to-oci"
    SPIN = "spin"
    WASMCLOUD_LEGACY = "wasmcloud-legacy"
    WASMCLOUD_PROVIDER = "wasmcloud-provider"
    UNKNOWN = "unknown"


class IndexKind(enum.StrEnum):
    """What kind of index a reference points at."""

    INDEX = "index"
    BUILDX = "buildx-index"


@dataclass(frozen=True)
class IndexEntry:
    """One manifest of an index, as `inspect` shows it."""

    descriptor: Descriptor
    attestation: bool
    kind: ArtifactKind | None = None


@dataclass(frozen=True)
class Artifact:
    """A resolved artifact: the manifest wasmctl picked, its config and format."""

    reference: str
    descriptor: Descriptor
    manifest: Manifest
    manifest_descriptor: Descriptor
    config: dict[str, Any] | None
    kind: ArtifactKind
    index: Index | None = None
    index_kind: IndexKind | None = None
    index_entries: tuple[IndexEntry, ...] = field(default=())
    wasm_evidence: tuple[str, ...] = ()  # why a runtime would run it as Wasm (empty: none)


# -- would a runtime run it as Wasm? -----------------------------------------------------
#
# crun picks its Wasm handler from runtime-spec annotations (handler-utils.c,
# wasm_can_handle_container; shared/reference/oci-formats.md §2): `run.oci.handler` `wasm`
# or `module.wasm.image/variant` `compat` always, and their `-smart` values when args[0]
# ends in `.wasm` or `.wat` (case-insensitively). Those annotations reach crun from the pod
# (CRI-O, containerd `pod_annotations`) and, with older tooling, from the image (manifest or
# index). runwasi runs an image whose config says `architecture: wasm`, its Wasm layers,
# else the file at args[0]; podman and CRI-O map the `wasi/wasm` platform to crun-wasm.
# An image any of these would run as Wasm is a Wasm workload, whatever its platform says.

HANDLER_ANNOTATION = "run.oci.handler"
WASM_ANNOTATIONS = (HANDLER_ANNOTATION, mt.ANNOTATION_COMPAT_VARIANT)
# Both keys are read with both spellings (crun reads one value per key); a gate errs to Wasm.
_ALWAYS_WASM = {"wasm", "compat"}
_SMART_WASM = {"wasm-smart", "compat-smart"}
_WASM_SUFFIXES = (".wasm", ".wat")
_WASM_LAYER_TYPES = {
    *mt.RAW_WASM_LAYER_TYPES,
    mt.SPIN_DATA_LAYER,
    mt.SPIN_BUNDLE_LAYER,
    mt.SPIN_LOCKED_APP,
    mt.WASMCLOUD_PROVIDER_LAYER,
}
MAX_INDEX_MANIFESTS = 64  # platform manifests read to look for a Wasm workload in an index


@dataclass(frozen=True)
class LaunchContext:
    """What a container runtime is told besides the image: runtime-spec annotations that come
    from outside it (a Kubernetes pod's), and the process arguments that replace the image's
    Entrypoint (`command`) and Cmd (`args`), as a container spec gives them."""

    annotations: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    source: str = "pod"


def is_wasm_path(path: str) -> bool:
    """A process path a Wasm runtime takes for a module: `*.wasm` / `*.wat`, any case, also
    with runwasi's `#function` suffix."""
    return path.split("#", 1)[0].lower().endswith(_WASM_SUFFIXES)


def image_argv(config: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """The image config's Entrypoint and Cmd (strings only)."""
    inner = (config or {}).get("config") or {}
    if not isinstance(inner, dict):
        return [], []
    out = []
    for key in ("Entrypoint", "Cmd"):
        value = inner.get(key)
        out.append([v for v in value if isinstance(v, str)] if isinstance(value, list) else [])
    return out[0], out[1]


def process_args(config: dict[str, Any] | None, launch: LaunchContext | None) -> list[str]:
    """args of the process a runtime starts: Kubernetes' rules (a container's `command`
    replaces Entrypoint and drops Cmd; its `args` replace Cmd)."""
    entrypoint, cmd = image_argv(config)
    if launch is not None and launch.command:
        return [*launch.command, *(launch.args or ())]
    if launch is not None and launch.args:
        return [*entrypoint, *launch.args]
    return [*entrypoint, *cmd]


def entrypoint_path(config: dict[str, Any] | None, launch: LaunchContext | None) -> str | None:
    """The path in the image's root filesystem a runtime would run (args[0]), normalised
    (relative to WorkingDir, no `#function`), or None when there is none."""
    import posixpath

    args = process_args(config, launch)
    if not args or not args[0]:
        return None
    path = args[0].split("#", 1)[0]
    if not path.startswith("/"):
        inner = (config or {}).get("config") or {}
        workdir = inner.get("WorkingDir") if isinstance(inner, dict) else None
        path = posixpath.join(workdir if isinstance(workdir, str) and workdir else "/", path)
    return posixpath.normpath(path).lstrip("/")


def annotation_evidence(
    annotations: Mapping[str, str], argv0: str | None, where: str
) -> str | None:
    """Why crun would run a container with these annotations as Wasm, or None."""
    for key in WASM_ANNOTATIONS:
        value = annotations.get(key)
        if not isinstance(value, str):
            continue
        wanted = value.strip().lower()
        if wanted in _ALWAYS_WASM:
            return f"{where} annotation {key}={value}"
        if wanted in _SMART_WASM and argv0 is not None and is_wasm_path(argv0):
            return f"{where} annotation {key}={value} with entrypoint {argv0}"
    return None


def wasm_evidence(
    manifest: Manifest,
    config: dict[str, Any] | None,
    annotated: Sequence[tuple[str, Mapping[str, str]]] = (),
    launch: LaunchContext | None = None,
) -> tuple[str, ...]:
    """Every reason a runtime would run this image as Wasm (empty: an ordinary image).

    `annotated` names the annotations that apply to it besides the manifest's own (an
    index's, its entry's); `launch` adds the pod's annotations and the container's args."""
    found: list[str] = []
    kind = detect(manifest, config)
    if kind is not ArtifactKind.UNKNOWN:
        found.append(f"{kind.value} format")
    if config is not None:
        arch = str(config.get("architecture", "")).lower()
        os_name = str(config.get("os", "")).lower()
        if arch.startswith("wasm") or os_name.startswith("wasi"):
            found.append(f"config platform {os_name}/{arch}")
    layer_types = sorted({layer.media_type for layer in manifest.layers} & _WASM_LAYER_TYPES)
    found += [f"layer media type {t}" for t in layer_types]
    entrypoint, cmd = image_argv(config)
    for name, argv in (("Entrypoint", entrypoint), ("Cmd", cmd)):
        if argv and is_wasm_path(argv[0]):
            found.append(f"config {name} {argv[0]}")
    args = process_args(config, launch)
    argv0 = args[0] if args else None
    if launch is not None and launch.command and is_wasm_path(launch.command[0]):
        found.append(f"{launch.source} command {launch.command[0]}")
    sources = [*annotated, ("manifest", manifest.annotations)]
    if launch is not None:
        sources.append((launch.source, dict(launch.annotations)))
    for where, notes in sources:
        reason = annotation_evidence(notes, argv0, where)
        if reason is not None:
            found.append(reason)
    return tuple(dict.fromkeys(found))


def detect(
    manifest: Manifest, config: dict[str, Any] | None, evidence: Sequence[str] = ()
) -> ArtifactKind:
    """Name the format of a manifest from its config and layer media types.

    An image config with tar or Wasm layers is a compat image when the image says it is
    Wasm (`wasi/wasm`), and also, with `evidence` (see `wasm_evidence`), when it says
    otherwise but a runtime would run it as Wasm all the same (a relabelled image)."""
    config_type = manifest.config.media_type
    layer_types = {layer.media_type for layer in manifest.layers}
    labels = ((config or {}).get("config") or {}).get("Labels") or {}
    if (
        mt.SPIN_LOCKED_APP in layer_types
        or config_type == mt.SPIN_LOCKED_APP
        or (isinstance(labels, dict) and mt.SPIN_LOCKED_APP_LABEL in labels)
    ):
        return ArtifactKind.SPIN
    if config_type == mt.WASM_CONFIG:
        return ArtifactKind.WASM
    if config_type == mt.WASM_TO_OCI_CONFIG:
        return ArtifactKind.WASM_TO_OCI
    if config_type == mt.WASMCLOUD_ACTOR_CONFIG:
        return ArtifactKind.WASMCLOUD_LEGACY
    if config_type == mt.WASMCLOUD_PROVIDER_CONFIG:
        return ArtifactKind.WASMCLOUD_PROVIDER
    if config_type in mt.IMAGE_CONFIG_TYPES and config is not None:
        arch = str(config.get("architecture", "")).lower()
        os_name = str(config.get("os", "")).lower()
        if arch.startswith("wasm") and os_name.startswith("wasi"):
            if mt.WASM_CONTENT_LAYER in layer_types:
                return ArtifactKind.SPIN  # Spin: an image config with per-component layers
            if layer_types & set(mt.TAR_LAYER_TYPES):
                return ArtifactKind.COMPAT
    if (
        evidence
        and config_type in mt.IMAGE_CONFIG_TYPES
        and layer_types & {*mt.TAR_LAYER_TYPES, *mt.RAW_WASM_LAYER_TYPES}
    ):
        return ArtifactKind.COMPAT
    return ArtifactKind.UNKNOWN


class BlobReader(Protocol):
    """Where manifests and configs are read from: a layout, or a registry repository
    (`wasmctl.oci.source`)."""

    def read_blob(self, descriptor: Descriptor, *, limit: int = ...) -> bytes: ...


def resolve_artifact(
    layout: BlobReader,
    descriptor: Descriptor,
    shown: str,
    launch: LaunchContext | None = None,
) -> Artifact:
    """The artifact a descriptor points at; `launch`: how a runtime would be asked to run it
    (a pod's annotations and a container's args), which can make an image Wasm.

    In an index, the `wasi/wasm` manifest (attestation entries skipped, unless they claim
    that platform), else one without a platform. An index with neither is looked into: if
    exactly one of its platform manifests would run as Wasm (annotations, config, layers,
    entrypoint: `wasm_evidence`), that one; if several would, or a `wasi/wasm` entry cannot
    be read as a manifest, `NoWasmManifestError` with evidence (a Wasm workload that cannot
    be checked as one); if none would, an ordinary image (`NoWasmManifestError`)."""
    try:
        document = parse_manifest_or_index(
            layout.read_blob(descriptor, limit=4 << 20), descriptor.media_type
        )
    except ManifestError as e:
        raise ManifestError(f"{shown}: {e.message}") from None
    if isinstance(document, Manifest):
        config = _config(layout, document)
        evidence = wasm_evidence(document, config, (), launch)
        kind = detect(document, config, evidence)
        return Artifact(
            shown, descriptor, document, descriptor, config, kind, wasm_evidence=evidence
        )
    entries = []
    for entry in document.manifests:
        attestation = (
            entry.annotations.get(mt.DOCKER_REFERENCE_TYPE) == mt.DOCKER_ATTESTATION_MANIFEST
        )
        entries.append(IndexEntry(entry, attestation))
    wasm_entries = [
        e.descriptor
        for e in entries
        if e.descriptor.platform is not None and e.descriptor.platform.is_wasm()
    ]
    # An attestation entry claiming the wasi/wasm platform is not skipped: podman and CRI-O
    # pick an entry by platform, not by Docker's annotation.
    candidates = [
        e.descriptor
        for e in entries
        if e.descriptor.media_type in mt.MANIFEST_TYPES
        and ((e.descriptor.platform is None and not e.attestation) or e.descriptor in wasm_entries)
    ]
    wasm_platform = [d for d in candidates if d.platform is not None]
    chosen = wasm_platform or candidates
    index_notes: list[tuple[str, Mapping[str, str]]] = [("index", document.annotations)]
    if chosen:
        selected = chosen[0]
        manifest = Manifest.from_bytes(layout.read_blob(selected, limit=4 << 20))
        config = _config(layout, manifest)
        notes = [*index_notes, ("index entry", selected.annotations)]
        evidence = wasm_evidence(manifest, config, notes, launch)
        if selected.platform is not None:
            evidence = (f"index platform {selected.platform.os}/{selected.platform.architecture}",
                        *evidence)  # fmt: skip
    elif wasm_entries:
        found = ", ".join(f"{d.digest} ({d.media_type})" for d in wasm_entries)
        raise NoWasmManifestError(
            f"{shown}: the index names a wasi/wasm entry that is not an image manifest: {found}",
            evidence=("index platform wasi/wasm",),
        )
    else:
        selected, manifest, config, evidence = _wasm_entry(
            layout, entries, index_notes, launch, shown
        )
    kind = detect(manifest, config, evidence)
    entries = [
        IndexEntry(e.descriptor, e.attestation, kind if e.descriptor == selected else None)
        for e in entries
    ]
    return Artifact(
        reference=shown,
        descriptor=descriptor,
        manifest=manifest,
        manifest_descriptor=selected,
        config=config,
        kind=kind,
        index=document,
        index_kind=IndexKind.BUILDX if any(e.attestation for e in entries) else IndexKind.INDEX,
        index_entries=tuple(entries),
        wasm_evidence=evidence,
    )


def _wasm_entry(
    layout: BlobReader,
    entries: list[IndexEntry],
    index_notes: list[tuple[str, Mapping[str, str]]],
    launch: LaunchContext | None,
    shown: str,
) -> tuple[Descriptor, Manifest, dict[str, Any] | None, tuple[str, ...]]:
    """The one platform manifest of an index without a `wasi/wasm` entry that a runtime
    would run as Wasm (a relabelled image), read with its config."""
    runnable = list(
        {
            e.descriptor.digest: e.descriptor
            for e in entries
            if not e.attestation and e.descriptor.media_type in mt.MANIFEST_TYPES
        }.values()
    )
    if len(runnable) > MAX_INDEX_MANIFESTS:
        raise NoWasmManifestError(
            f"{shown}: the index has {len(runnable)} platform manifests; at most "
            f"{MAX_INDEX_MANIFESTS} are looked into for a Wasm workload",
            evidence=("an index too large to tell whether it runs as Wasm",),
        )
    found = []
    for entry in runnable:
        manifest = Manifest.from_bytes(layout.read_blob(entry, limit=4 << 20))
        config = _config(layout, manifest)
        notes = [*index_notes, ("index entry", entry.annotations)]
        evidence = wasm_evidence(manifest, config, notes, launch)
        if evidence:
            found.append((entry, manifest, config, evidence))
    if not found:
        raise NoWasmManifestError(f"{shown}: the index has no wasi/wasm manifest")
    if len(found) > 1:
        platforms = ", ".join(
            f"{e.platform.os}/{e.platform.architecture}" if e.platform else e.digest
            for e, _, _, _ in found
        )
        raise NoWasmManifestError(
            f"{shown}: {len(found)} platform manifests of the index ({platforms}) would run as "
            "Wasm, which one depends on the node; gate a single wasi/wasm manifest instead",
            evidence=tuple(dict.fromkeys(r for *_, ev in found for r in ev)),
        )
    return found[0]


def _config(layout: BlobReader, manifest: Manifest) -> dict[str, Any] | None:
    """The config as JSON, or None when it is not a JSON object (some formats use blobs)."""
    if manifest.config.size > 4 << 20:
        return None
    raw = layout.read_blob(manifest.config, limit=4 << 20)
    try:
        return load_json_object(raw, "config")
    except ManifestError:
        return None


def is_wasm_layer(layer: Descriptor, kind: ArtifactKind) -> bool:
    """True for a layer that holds a module: raw Wasm types, or a compat image's tar."""
    if layer.media_type in mt.RAW_WASM_LAYER_TYPES:
        return True
    return kind is ArtifactKind.COMPAT and layer.media_type in mt.TAR_LAYER_TYPES


@dataclass(frozen=True)
class ExtractedModule:
    """A module taken out of a layer: its name in the artifact (the layer's title, else
    `layer<i>`; or its path in a compat layer's tar), and the file holding it."""

    name: str
    path: Path
    layer: Descriptor
    member: str | None = None  # its path in the layer's tar (a compat image), else None

    def display(self, shown: str) -> str:
        """How reports name it: `REF#TITLE`, or `REF#/PATH` for a file of a tar layer."""
        return f"{shown}#/{self.member}" if self.member is not None else f"{shown}#{self.name}"


class ModuleSource(Protocol):
    """Where layer blobs come from (`wasmctl.oci.source.Source`)."""

    def blob_file(self, descriptor: Descriptor, scratch: Path) -> Path: ...

    def open_blob(
        self, descriptor: Descriptor, scratch: Path
    ) -> contextlib.AbstractContextManager[io.RawIOBase]: ...


def extract_modules(
    source: ModuleSource, artifact: Artifact, workdir: Path
) -> list[ExtractedModule]:
    """Every module of the artifact's Wasm layers, whatever its format, as verified files
    (a raw Wasm layer's blob; the `*.wasm` files of a compat image's tar layers, under
    `workdir`), from the manifest `artifact` resolved to (with its launch context, an
    index may resolve to another manifest than without: pass the resolved artifact)."""
    out: list[ExtractedModule] = []
    for i, layer in enumerate(artifact.manifest.layers):
        if not is_wasm_layer(layer, artifact.kind):
            continue
        if layer.media_type in mt.RAW_WASM_LAYER_TYPES:
            label = layer.annotations.get(mt.ANNOTATION_TITLE) or f"layer{i}"
            out.append(ExtractedModule(label, source.blob_file(layer, workdir), layer))
            continue
        with source.open_blob(layer, workdir) as stream:
            for name, data_path in tar_modules(stream, workdir / f"extract{i}", layer):
                out.append(ExtractedModule(name, data_path, layer, name))
    return out


def tar_modules(stream: io.RawIOBase, workdir: Path, layer: Descriptor) -> list[tuple[str, Path]]:
    """The `*.wasm` regular files of a (gzipped) tar stream, copied out with a size cap.

    The stream is `layer`'s blob, whose size is known: what it inflates to, and how many
    entries it holds, are bounded (`bounded_tar`), so a gzip of 100 GiB of tar padding or a
    million tiny members is refused as soon as it passes the bound."""
    workdir.mkdir(parents=True, exist_ok=True)
    found: list[tuple[str, Path]] = []
    compression = None if layer.media_type == mt.OCI_LAYER_TAR else "gz"
    limits = InflateLimits.for_compressed(layer.size, members=MAX_LAYER_MEMBERS)
    label = f"layer {layer.digest}"
    with open_bounded_tar(stream, compression, limits, label, LayoutError) as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            parts = [p for p in name.parts if p not in ("/", ".", "")]
            if not member.isfile() or not name.name.endswith(".wasm") or ".." in parts:
                continue
            if member.size > MAX_MODULE_BYTES:
                raise InputError(f"{member.name} in layer {layer.digest} is too large")
            target = workdir / f"{len(found)}.wasm"
            tar.copy_member(member, target)
            found.append(("/".join(parts), target))
    return found
