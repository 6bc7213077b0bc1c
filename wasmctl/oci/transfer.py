"""Moving artifacts between OCI layouts, archives and registries: push, pull, copy, tag.

A copy walks the graph under the source reference (an index's manifests, each manifest's
config and layers), sends only the blobs the destination lacks, children before parents,
and writes the root last under the destination's tag. Blobs pass through files, never
memory: a layout's blob file is read as it is; a registry's is downloaded (verified while it
streams) into a temporary directory first.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wasmctl._files import create_mode
from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import clone_or_copy
from wasmctl.oci.models import Descriptor, Manifest, parse_manifest_or_index
from wasmctl.oci.reference import (
    LayoutReference,
    Reference,
    RegistryReference,
    destination_tag,
    parse_reference,
)
from wasmctl.oci.source import RegistryOptions, Source, open_artifact, open_source

__all__ = ["RegistryOptions", "TransferStats", "copy", "pull_modules", "reference_modules", "tag"]


@dataclass
class TransferStats:
    """What a transfer moved."""

    blobs_sent: int = 0
    blobs_skipped: int = 0
    bytes_sent: int = 0
    manifests: int = 0
    details: list[str] = field(default_factory=list)


MAX_INDEX_DEPTH = 16  # indexes of indexes: buildx nests 2 deep; nothing real nests 16


def _graph(
    source: Source,
    root: Descriptor,
    raw: bytes,
    *,
    depth: int = 0,
    seen: set[str] | None = None,
) -> Iterator[tuple[Descriptor, bytes | None]]:
    """Blobs (bytes None) and manifests (their bytes), every child before its parent, each
    digest once (an index may list a child twice, and its children share blobs), and indexes
    nested at most MAX_INDEX_DEPTH deep."""
    seen = set() if seen is None else seen
    document = parse_manifest_or_index(raw, root.media_type or None)
    if isinstance(document, Manifest):
        for blob in (document.config, *document.layers):
            if blob.urls or blob.digest in seen:  # a foreign layer: its bytes live elsewhere
                continue
            seen.add(blob.digest)
            yield blob, None
    else:
        if depth >= MAX_INDEX_DEPTH:
            raise InputError(
                f"{source.reference}: indexes nested more than {MAX_INDEX_DEPTH} deep; refusing it"
            )
        for child in document.manifests:
            if child.digest in seen:
                continue
            seen.add(child.digest)
            yield from _graph(
                source, child, source.child_manifest(child), depth=depth + 1, seen=seen
            )
    yield root, raw


MAX_REFERRER_DEPTH = 8


def copy(
    src: Reference,
    dst: Reference,
    options: RegistryOptions | None = None,
    *,
    recursive: bool = False,
) -> tuple[Descriptor, TransferStats]:
    """Copy the artifact under `src` to `dst`; with `recursive`, its referrers too (and
    theirs: a signature of an SBOM). Returns the root descriptor and what moved."""
    options = options or RegistryOptions()
    stats = TransferStats()
    if isinstance(dst, LayoutReference) and dst.digest is not None:
        raise InputError(f"{dst}: copy into a layout writes a tag, not a digest")
    with (
        options,
        tempfile.TemporaryDirectory(prefix="wasmctl-pull-") as scratch,
        open_source(src, options) as source,
        open_source(dst, options, write=True) as destination,
    ):
        sink = _Sink(destination, source, Path(scratch))
        root, raw = source.resolve()
        if isinstance(dst, RegistryReference) and dst.digest and dst.digest != root.digest:
            raise InputError(f"{dst}: the source is {root.digest}, not {dst.digest}")
        sink.send(_graph(source, root, raw), stats)
        destination.put_tagged(root, raw, destination_tag(dst))
        stats.manifests += 1
        if recursive:
            _copy_referrers(source, sink, root.digest, stats)
    return root, stats


def _copy_referrers(source: Source, sink: _Sink, subject: str, stats: TransferStats) -> None:
    """The referrers of `subject`, and theirs, breadth first, each digest visited once:
    fallback tags are mutable, so referrers can form a cycle (A refers to B, B to A), and a
    walk that revisits grows exponentially with its length."""
    visited = {subject}
    level = [subject]
    for _ in range(MAX_REFERRER_DEPTH):
        following = []
        for digest in level:
            for referrer in source.referrers(digest):
                if referrer.digest in visited:
                    continue
                visited.add(referrer.digest)
                raw = source.child_manifest(referrer)
                sink.send(_graph(source, referrer, raw), stats)
                sink.destination.put_referrer(raw)
                stats.manifests += 1
                stats.details.append(f"referrer {referrer.artifact_type} {referrer.digest}")
                following.append(referrer.digest)
        level = following


class _Sink:
    """Write side: blobs the destination lacks and child manifests by digest."""

    def __init__(self, destination: Source, source: Source, scratch: Path) -> None:
        self.destination = destination
        self.source = source
        self.scratch = scratch
        self.mount_from: str | None = None
        src, dst = source.reference, destination.reference
        same_registry = (
            isinstance(src, RegistryReference)
            and isinstance(dst, RegistryReference)
            and src.registry == dst.registry
        )
        if same_registry and isinstance(src, RegistryReference):
            self.mount_from = src.repository
        self.seen: set[str] = set()

    def send(self, nodes: Iterator[tuple[Descriptor, bytes | None]], stats: TransferStats) -> None:
        """Everything below the root: blobs the destination lacks, then child manifests."""
        for descriptor, manifest in list(nodes)[:-1]:
            if descriptor.digest in self.seen:
                continue
            self.seen.add(descriptor.digest)
            if manifest is None:
                sent = self.destination.put_blob(
                    descriptor,
                    functools.partial(self.source.blob_file, descriptor, self.scratch),
                    mount_from=self.mount_from,
                    shown=str(self.source.reference),
                )
                stats.blobs_sent += bool(sent)
                stats.blobs_skipped += not sent
                stats.bytes_sent += sent
            else:
                self.destination.put_manifest(descriptor, manifest)
                stats.manifests += 1


def tag(ref: Reference, new_tag: str, options: RegistryOptions | None = None) -> Descriptor:
    """Point another tag at what `ref` points at, in the same repository or layout."""
    with open_source(ref, options) as source:
        descriptor, raw = source.resolve()
        if isinstance(ref, RegistryReference):
            source.put_tagged(descriptor, raw, new_tag)
            return descriptor
    with open_source(ref.with_tag(new_tag), write=True) as destination:
        destination.put_tagged(descriptor, raw, new_tag)
    return descriptor


MAX_TITLE_BYTES = 255  # NAME_MAX on Linux and macOS
# control (a newline), format (a bidi override), surrogate, private-use, line/paragraph separator
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
WASM_MAGIC = b"\0asm"


def safe_file_name(title: str) -> str:
    """`title` if it is a plain file name; refuses absolute paths, `..`, separators, control
    and format characters (a newline, a bidi override), and names over 255 bytes."""
    problem = _name_problem(title)
    if problem is not None:
        shown = repr(title[:80]) + ("..." if len(title) > 80 else "")
        raise InputError(f"refusing to write a file named {shown}: {problem}")
    return title


def _name_problem(title: str) -> str | None:
    if title.startswith("/") or PurePosixPath(title).is_absolute():
        return "an absolute title is refused"
    if not title or title in (".", "..") or title.startswith("..") or "/" in title or "\\" in title:
        return "a layer title must be a plain file name"
    if any(unicodedata.category(c) in _UNSAFE_CATEGORIES for c in title):
        return "it holds a control character"
    if len(title.encode("utf-8")) > MAX_TITLE_BYTES:
        return f"it is longer than {MAX_TITLE_BYTES} bytes"
    return None


@dataclass(frozen=True)
class _Planned:
    """A layer `pull` writes as it is, under `name`."""

    layer: Descriptor
    name: str
    module: bool  # a Wasm layer: its bytes must be a module


def pull_modules(
    ref: Reference,
    out_dir: Path,
    options: RegistryOptions | None = None,
    *,
    all_layers: bool = False,
    force: bool = False,
) -> list[Path]:
    """Pull an artifact and write its module file(s) into `out_dir` under their titles.

    Only Wasm modules are written (titles ending in `.wasm`, bytes starting `\0asm`), unless
    `all_layers`: then every layer is, under its title. A title must be a plain file name.
    Nothing is overwritten unless `force`. Every name is checked before anything is written,
    and the files are prepared in a private directory inside `out_dir` and moved into place
    together at the end, so a refused or failed pull leaves `out_dir` as it was.

    From a registry, a raw Wasm layer streams straight to its staged file (hashed on the way,
    one pass over the bytes). A compat image's tar layer is downloaded (verified) and its
    `*.wasm` files taken out.
    """
    from wasmctl.oci.artifact import is_wasm_layer, resolve_artifact, tar_modules

    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a directory; -o names a directory")
    with (
        tempfile.TemporaryDirectory(prefix="wasmctl-pull-") as temporary,
        open_source(ref, options) as source,
    ):
        scratch = Path(temporary)
        artifact = resolve_artifact(source, source.subject(), str(ref))
        wasm = [layer for layer in artifact.manifest.layers if is_wasm_layer(layer, artifact.kind)]
        if not wasm:
            raise InputError(f"{ref}: no Wasm layer in this {artifact.kind} artifact")
        planned = _plan(artifact.manifest.layers, wasm, all_layers)
        tars = [layer for layer in wasm if layer.media_type not in mt.RAW_WASM_LAYER_TYPES]
        with _Staging(out_dir, ref, force) as staging:
            for item in planned:
                staging.reserve(item.name)
            for item in planned:
                target = staging.path(item.name)
                source.fetch_into(item.layer, target)
                if item.module and not all_layers:
                    _require_module(target, item.name, ref)
            for i, layer in enumerate(tars):
                with source.blob_file(layer, scratch).open("rb", buffering=0) as stream:
                    found = tar_modules(stream, scratch / f"extract{i}", layer)
                for member, path in found:
                    name = safe_file_name(PurePosixPath(member).name)
                    staging.reserve(name)
                    if not all_layers:
                        _require_module(path, name, ref)
                    clone_or_copy(path, staging.path(name))
            return staging.commit()


@contextlib.contextmanager
def reference_modules(
    text: str, options: RegistryOptions | None = None
) -> Iterator[list[tuple[str, Path]]]:
    """The module files of the artifact `text` names, with the names reports give them, for
    the block: a registry's pulled as `pull` writes them (`TEXT#FILE`), a layout's or an
    archive's taken out in place (`REF#TITLE`, `REF#/PATH` for a compat layer's files)."""
    from wasmctl.oci.artifact import extract_modules

    ref = parse_reference(text)
    with (
        tempfile.TemporaryDirectory(prefix="wasmctl-scan-") as work,
        open_artifact(ref, options=options) as (source, artifact),
    ):
        modules = extract_modules(source, artifact, Path(work))
        if not modules:
            raise InputError(f"no Wasm layer in this {artifact.kind} artifact")
        if isinstance(ref, RegistryReference):  # named as `pull` names the files it writes
            yield [(f"{text}#{PurePosixPath(m.member or m.name).name}", m.path) for m in modules]
        else:
            yield [(m.display(artifact.reference), m.path) for m in modules]


def _plan(
    layers: tuple[Descriptor, ...], wasm: list[Descriptor], all_layers: bool
) -> list[_Planned]:
    """The layers written as they are, with their checked names (before any download)."""
    planned = []
    for layer in layers:
        raw_module = layer in wasm and layer.media_type in mt.RAW_WASM_LAYER_TYPES
        if layer.urls:  # a foreign layer: its bytes live elsewhere
            continue
        if not raw_module and (layer in wasm or not all_layers):
            continue  # a compat tar (unpacked), or a layer that is not a module
        title = layer.annotations.get(mt.ANNOTATION_TITLE)
        if title is None:
            short = layer.digest.split(":", 1)[-1][:16]
            name = f"{short}.wasm" if raw_module else short
        else:
            name = safe_file_name(title)
        if raw_module and not all_layers and not name.endswith(".wasm"):
            raise InputError(
                f"refusing to write a Wasm layer as {name!r}: pull writes *.wasm files",
                hint="pass --all-layers to write every layer under its own title",
            )
        planned.append(_Planned(layer, name, raw_module))
    return planned


def _require_module(path: Path, name: str, ref: Reference) -> None:
    with path.open("rb") as f:
        magic = f.read(len(WASM_MAGIC))
    if magic != WASM_MAGIC:
        raise InputError(
            f"{ref}: the layer for {name!r} is not a Wasm module; nothing was written",
            hint="pass --all-layers to write every layer as it is",
        )


class _Staging:
    """Files prepared in a private directory inside `out_dir`, moved into place together.

    Names are reserved first (unique, not taken unless `force`), so a conflict is found
    before anything is written; `commit` links each file into place (a link, not a rename,
    so a file that appeared meanwhile is not replaced) and undoes the ones it placed if one
    fails. The private directory, and `out_dir` if this pull created it, go on any failure.
    """

    def __init__(self, out_dir: Path, ref: Reference, force: bool) -> None:
        self.out_dir = out_dir
        self.ref = ref
        self.force = force
        self.names: list[str] = []
        self._dir: Path | None = None
        self._created: list[Path] = []

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        if error is not None:
            for directory in reversed(self._created):
                with contextlib.suppress(OSError):
                    directory.rmdir()

    def reserve(self, name: str) -> None:
        """Claim `name` in `out_dir`: refused if taken by this pull, or on disk without force."""
        if name in self.names:
            raise InputError(f"{self.ref}: two modules would be written as {name!r}")
        final = self.out_dir / name
        if os.path.lexists(final):
            if not self.force:
                raise InputError(
                    f"{final} exists; nothing was written", hint="pass --force to replace it"
                )
            if final.is_dir() and not final.is_symlink():
                raise InputError(f"{final} is a directory; nothing was written")
        self.names.append(name)

    def path(self, name: str) -> Path:
        """Where to prepare the file for `name`."""
        if self._dir is None:
            missing = [d for d in (self.out_dir, *self.out_dir.parents) if not d.exists()]
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._created = list(reversed(missing))
            self._dir = Path(tempfile.mkdtemp(prefix=".wasmctl-pull-", dir=self.out_dir))
        return self._dir / name

    def commit(self) -> list[Path]:
        """Move every prepared file into place; on a failure, remove those already placed."""
        placed: list[Path] = []
        try:
            for name in self.names:
                staged, final = self.path(name), self.out_dir / name
                _readable(staged)
                if self.force:
                    os.replace(staged, final)
                else:
                    _link_new(staged, final)
                placed.append(final)
        except BaseException:
            if not self.force:
                for path in placed:
                    path.unlink(missing_ok=True)
            raise
        return placed


def _link_new(staged: Path, final: Path) -> None:
    """Put `staged` at `final` unless something is there (atomically where links work)."""
    try:
        os.link(staged, final)
    except FileExistsError:
        raise InputError(f"{final} appeared during the pull; not replaced") from None
    except OSError:  # a filesystem without hard links
        if os.path.lexists(final):
            raise InputError(f"{final} appeared during the pull; not replaced") from None
        os.replace(staged, final)


def _readable(path: Path) -> None:
    """Files written under temporary names start private; give them the usual mode."""
    os.chmod(path, create_mode())
