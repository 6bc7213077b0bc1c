"""The facts an SBOM states about a module or an artifact, read once, format-neutral.

A module is described by what it is (core module or component, command or reactor), its
hashes, its producers and wasm-metadata fields, what it imports (with the scan taxonomy's
capability classes) and exports, what it was built from (`.dep-v0`, Go modinfo), and for a
component every nested module and component with hashes over its own bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wasmctl.errors import InputError
from wasmctl.oci.reference import LayoutReference, Reference, RegistryReference
from wasmctl.sbom.deps import (
    DEP_SECTION,
    CargoDependencies,
    GoBuildInfo,
    find_go_build_info,
    read_cargo_dependencies,
)
from wasmctl.scan.capabilities import classify_import
from wasmctl.wasm._reader import Buffer
from wasmctl.wasm.model import Module, ModuleKind, ProducerField, TargetFeature
from wasmctl.wasm.parser import open_binary, parse

if TYPE_CHECKING:
    from wasmctl.oci.source import RegistryOptions

# wasm-metadata's sections (`wasm-tools metadata add`), each a UTF-8 payload
METADATA_SECTIONS = ("authors", "description", "licenses", "source", "homepage", "revision",
                     "version")  # fmt: skip
DATA_SECTION = 11
NAME_SECTION = "name"  # a component's is `component-name`, and names no functions
APPLICATION_EXPORTS = ("wasi:cli/run", "wasi:http/incoming-handler", "wasi:http/handler")


@dataclass(frozen=True)
class ModuleFacts:
    """One module or component (top-level or nested)."""

    name: str
    kind: ModuleKind
    role: str  # "application" (command, runnable component) or "library" (reactor)
    size: int
    sha256: str
    sha512: str
    position: str  # "" for the top level, "/0", "/1/2" for nested ones
    producers: tuple[ProducerField, ...]
    metadata: tuple[tuple[str, str], ...]
    target_features: tuple[TargetFeature, ...]
    imports: tuple[tuple[str, str], ...]  # (display name, capability)
    exports: tuple[str, ...]
    cargo: CargoDependencies | None
    go: GoBuildInfo | None
    nested: tuple[ModuleFacts, ...]
    # the raw payload of a core module's `name` section, read by `wasmctl.audit.reach` (never
    # parsed here: scan and sbom do not need it); None for a component, or when there is none
    name_section: bytes | None = None

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(sorted({c for _, c in self.imports}))

    def field(self, name: str) -> str | None:
        return next((v for k, v in self.metadata if k == name), None)

    def walk(self) -> list[ModuleFacts]:
        out = [self]
        for child in self.nested:
            out += child.walk()
        return out


@dataclass(frozen=True)
class ArtifactFacts:
    """Where the modules came from when the target is an artifact."""

    reference: str
    name: str  # the purl name: the last repository segment, lowercase
    digest: str
    repository_url: str | None
    tag: str | None

    def purl(self) -> str:
        """`pkg:oci/NAME@sha256:...?repository_url=...&tag=...` (purl-spec's oci type)."""
        from packageurl import PackageURL

        qualifiers = {k: v for k, v in (("repository_url", self.repository_url),
                                         ("tag", self.tag)) if v}  # fmt: skip
        return str(PackageURL(type="oci", name=self.name, version=self.digest,
                              qualifiers=qualifiers).to_string())  # fmt: skip


def cargo_purl(name: str, version: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL(type="cargo", name=name, version=version).to_string())


def golang_purl(path: str, version: str | None) -> str:
    from packageurl import PackageURL

    namespace, _, name = path.rpartition("/")
    return str(PackageURL(type="golang", namespace=namespace or None, name=name,
                          version=version).to_string())  # fmt: skip


@dataclass(frozen=True)
class Subject:
    """What one SBOM describes: modules, and the artifact holding them if any."""

    modules: tuple[ModuleFacts, ...]
    artifact: ArtifactFacts | None = None

    @property
    def primary(self) -> ModuleFacts:
        return self.modules[0]

    @property
    def content_digest(self) -> str:
        """What the serial number derives from: the artifact's digest, else the module's."""
        return self.artifact.digest if self.artifact else f"sha256:{self.primary.sha256}"


def file_facts(path: Path, name: str | None = None) -> ModuleFacts:
    """Facts about a module file."""
    with open_binary(path) as data:
        module = parse(data)
        try:
            return module_facts(module, data, name or _stem(path))
        except InputError as e:
            raise type(e)(f"{path}: {e.message}") from None


def module_facts(
    module: Module, data: Buffer, fallback_name: str, position: str = ""
) -> ModuleFacts:
    """Facts about a parsed module and, recursively, what it nests."""
    # Small payloads are copied out; nothing keeps a view of `data`, which may be an mmap
    # that must close even when reading fails.
    wanted = {*METADATA_SECTIONS, DEP_SECTION}
    if not module.is_component:
        wanted.add(NAME_SECTION)  # bounded by the module's own size, like the others
    payloads = {s.name: bytes(data[s.offset : s.offset + s.size])
                for s in module.custom_sections if s.name in wanted}  # fmt: skip
    metadata = tuple(
        (key, payloads[key].decode("utf-8", errors="replace"))
        for key in METADATA_SECTIONS
        if key in payloads
    )
    cargo = read_cargo_dependencies(payloads[DEP_SECTION]) if DEP_SECTION in payloads else None
    go = None
    for section in module.sections:
        if section.id == DATA_SECTION and not module.is_component:
            go = find_go_build_info(data, section.offset, section.offset + section.size)
    exports = tuple(e.name for e in module.exports)
    if module.is_component:
        runnable = any(e.split("@")[0] in APPLICATION_EXPORTS for e in exports)
    else:
        runnable = "_start" in exports or module.start is not None
    nested = tuple(
        module_facts(child, data, f"{fallback_name}{position}/{i}", f"{position}/{i}")
        for i, child in enumerate(module.nested)
    )
    return ModuleFacts(
        name=module.name or fallback_name,
        kind=module.kind,
        role="application" if runnable else "library",
        size=module.size,
        sha256=_digest(hashlib.sha256(), data, module),
        sha512=_digest(hashlib.sha512(), data, module),
        position=position,
        producers=module.producers,
        metadata=metadata,
        target_features=module.target_features,
        imports=tuple((i.display_name, classify_import(i).value) for i in module.imports),
        exports=exports,
        cargo=cargo,
        go=go,
        nested=nested,
        name_section=payloads.get(NAME_SECTION),
    )


def _digest(hasher: Any, data: Buffer, module: Module) -> str:
    with memoryview(data) as whole, whole[module.offset : module.offset + module.size] as part:
        hasher.update(part)
    return str(hasher.hexdigest())


def _stem(path: Path) -> str:
    return os.fsencode(path.name).decode("utf-8", "backslashreplace").removesuffix(".wasm")


def reference_facts(ref: Reference, options: RegistryOptions | None = None) -> Subject:
    """Facts about every Wasm module in an artifact, and the artifact itself."""
    from wasmctl.oci.artifact import extract_modules
    from wasmctl.oci.source import open_artifact

    with (
        tempfile.TemporaryDirectory(prefix="wasmctl-sbom-") as work,
        open_artifact(ref, options=options) as (source, found),
    ):
        extracted = extract_modules(source, found, Path(work))
        digest = found.descriptor.digest
        files = [(m.path, m.name) for m in extracted]
        if isinstance(ref, RegistryReference):
            name = ref.repository.rsplit("/", 1)[-1].lower()
            artifact = ArtifactFacts(str(ref), name, digest, ref.name, ref.tag)
        else:
            artifact = ArtifactFacts(str(ref), _layout_name(ref), digest, None, ref.tag)
        if not files:
            raise InputError(f"{ref}: no Wasm layer in this artifact")
        modules = tuple(file_facts(path, _stem(Path(name))) for path, name in files)
    return Subject(modules, artifact)


def _layout_name(ref: LayoutReference) -> str:
    name = ref.path.name.removesuffix(".tar").lower()
    return name or "artifact"
