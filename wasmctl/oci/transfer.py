"""Moving artifacts between OCI layouts, archives and registries: push, pull, copy, tag.

A copy walks the graph under the source reference (an index's manifests, each manifest's
config and layers), sends only the blobs the destination lacks, children before parents,
and writes the root last under the destination's tag. Blobs pass through files, never
memory: a layout's blob file is read as it is; a registry's is downloaded (verified while it
streams) into a temporary directory first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import (
    LayoutWriter,
    OCILayout,
    clone_or_copy,
    layout_for_reading,
    layout_for_writing,
)
from wasmctl.oci.models import Descriptor, Index, Manifest, parse_manifest_or_index
from wasmctl.oci.reference import DEFAULT_TAG, LayoutReference, Reference, RegistryReference
from wasmctl.oci.registry import Progress, RegistryClient, RetryPolicy


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries: plain HTTP for some hosts, a private CA."""

    plain_http: frozenset[str] = frozenset()
    ca_file: Path | None = None
    retry: RetryPolicy | None = None
    progress: Progress | None = None

    def client(self, registry: str) -> RegistryClient:
        """A client for one registry."""
        return RegistryClient(
            registry,
            plain_http=registry in self.plain_http,
            ca_file=self.ca_file,
            retry=self.retry,
            progress=self.progress,
        )


@dataclass
class TransferStats:
    """What a transfer moved."""

    blobs_sent: int = 0
    blobs_skipped: int = 0
    bytes_sent: int = 0
    manifests: int = 0
    details: list[str] = field(default_factory=list)


class _Source:
    """Read side: resolve the reference, read manifests, give blob files."""

    def __init__(
        self, layout: OCILayout | None, client: RegistryClient | None, ref: Reference, scratch: Path
    ) -> None:
        self.layout = layout
        self.client = client
        self.ref = ref
        self.scratch = scratch

    def resolve(self) -> tuple[Descriptor, bytes]:
        if isinstance(self.ref, RegistryReference):
            assert self.client is not None
            reference = self.ref.digest or self.ref.tag or DEFAULT_TAG
            raw, media_type, digest = self.client.get_manifest(self.ref.repository, reference)
            return Descriptor(media_type or _sniff(raw), digest, len(raw)), raw
        assert self.layout is not None
        descriptor = self.layout.resolve(self.ref.tag, self.ref.digest)
        return descriptor, self.layout.read_blob(descriptor, limit=4 << 20)

    def manifest(self, descriptor: Descriptor) -> bytes:
        if self.layout is not None:
            return self.layout.read_blob(descriptor, limit=4 << 20)
        assert self.client is not None and isinstance(self.ref, RegistryReference)
        raw, _, _ = self.client.get_manifest(self.ref.repository, descriptor.digest)
        return raw

    def referrers(self, digest: str) -> list[Descriptor]:
        from wasmctl.oci.referrers import list_layout_referrers, list_referrers

        if self.layout is not None:
            return list_layout_referrers(self.layout, digest)
        assert self.client is not None and isinstance(self.ref, RegistryReference)
        return list_referrers(self.client, self.ref.repository, digest)

    def blob_file(self, descriptor: Descriptor) -> Path:
        if self.layout is not None:
            path = self.layout.blob_path(descriptor.digest)
            if not path.is_file():
                raise InputError(f"{self.ref}: blob {descriptor.digest} is missing")
            return path
        assert self.client is not None and isinstance(self.ref, RegistryReference)
        target = self.scratch / descriptor.digest.replace(":", "-")
        if not target.exists():
            self.client.fetch_blob(self.ref.repository, descriptor, target)
        return target


def _sniff(raw: bytes) -> str:
    document = parse_manifest_or_index(raw)
    if isinstance(document, Index):
        return document.media_type or mt.OCI_INDEX
    return document.media_type or mt.OCI_MANIFEST


def _graph(
    source: _Source, root: Descriptor, raw: bytes
) -> Iterator[tuple[Descriptor, bytes | None]]:
    """Blobs (bytes None) and manifests (their bytes), every child before its parent."""
    document = parse_manifest_or_index(raw, root.media_type or None)
    if isinstance(document, Manifest):
        yield document.config, None
        for layer in document.layers:
            if layer.urls:  # a foreign layer: its bytes live elsewhere
                continue
            yield layer, None
    else:
        for child in document.manifests:
            yield from _graph(source, child, source.manifest(child))
    yield root, raw


@contextlib.contextmanager
def _opened_source(ref: Reference, options: RegistryOptions) -> Iterator[_Source]:
    with tempfile.TemporaryDirectory(prefix="wasmctl-pull-") as scratch:
        if isinstance(ref, RegistryReference):
            with options.client(ref.registry) as client:
                yield _Source(None, client, ref, Path(scratch))
        else:
            with layout_for_reading(ref) as layout:
                yield _Source(layout, None, ref, Path(scratch))


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
    with _opened_source(src, options) as source, _opened_sink(dst, source, options) as sink:
        root, raw = source.resolve()
        if isinstance(dst, RegistryReference) and dst.digest and dst.digest != root.digest:
            raise InputError(f"{dst}: the source is {root.digest}, not {dst.digest}")
        sink.send(source, _graph(source, root, raw), stats)
        sink.put_root(root, raw)
        stats.manifests += 1
        if recursive:
            _copy_referrers(source, sink, root.digest, stats, depth=0)
    return root, stats


def _copy_referrers(
    source: _Source, sink: _Sink, digest: str, stats: TransferStats, depth: int
) -> None:
    if depth >= MAX_REFERRER_DEPTH:
        return
    for referrer in source.referrers(digest):
        raw = source.manifest(referrer)
        sink.send(source, _graph(source, referrer, raw), stats)
        sink.put_referrer(raw)
        stats.manifests += 1
        stats.details.append(f"referrer {referrer.artifact_type} {referrer.digest}")
        _copy_referrers(source, sink, referrer.digest, stats, depth + 1)


class _Sink:
    """Write side: blobs it lacks, child manifests by digest, the root under a tag."""

    def __init__(
        self,
        client: RegistryClient | None,
        repository: str | None,
        writer: LayoutWriter | None,
        tag: str,
        mount_from: str | None,
    ) -> None:
        self.client = client
        self.repository = repository or ""
        self.writer = writer
        self.tag = tag
        self.mount_from = mount_from
        self.seen: set[str] = set()

    def send(
        self,
        source: _Source,
        nodes: Iterator[tuple[Descriptor, bytes | None]],
        stats: TransferStats,
    ) -> None:
        """Everything below the root: blobs the destination lacks, then child manifests."""
        for descriptor, manifest in list(nodes)[:-1]:
            if descriptor.digest in self.seen:
                continue
            self.seen.add(descriptor.digest)
            if manifest is None:
                sent = self._blob(source, descriptor)
                stats.blobs_sent += bool(sent)
                stats.blobs_skipped += not sent
                stats.bytes_sent += sent
            else:
                self._manifest(descriptor, manifest)
                stats.manifests += 1

    def _blob(self, source: _Source, descriptor: Descriptor) -> int:
        if self.client is not None:
            return self.client.push_blob(
                self.repository,
                descriptor,
                source.blob_file(descriptor),
                mount_from=self.mount_from,
            )
        assert self.writer is not None
        if self.writer.layout.has_blob(descriptor.digest):
            return 0
        added = self.writer.add_file(descriptor.media_type, source.blob_file(descriptor))
        if added.digest != descriptor.digest:
            raise InputError(f"{source.ref}: blob {descriptor.digest} does not match its digest")
        return descriptor.size

    def _manifest(self, descriptor: Descriptor, raw: bytes) -> None:
        if self.client is not None:
            self.client.put_manifest(self.repository, descriptor.digest, descriptor.media_type, raw)
        else:
            assert self.writer is not None
            self.writer.add_bytes(descriptor.media_type, raw)

    def put_root(self, root: Descriptor, raw: bytes) -> None:
        if self.client is not None:
            self.client.put_manifest(self.repository, self.tag, root.media_type, raw)
            return
        assert self.writer is not None
        self.writer.add_bytes(root.media_type, raw)
        self.writer.tag(Descriptor(root.media_type, root.digest, root.size), self.tag)

    def put_referrer(self, raw: bytes) -> None:
        from wasmctl.oci.referrers import add_layout_referrer, push_referrer

        if self.client is not None:
            push_referrer(self.client, self.repository, raw)
        else:
            assert self.writer is not None
            add_layout_referrer(self.writer, raw)


@contextlib.contextmanager
def _opened_sink(dst: Reference, source: _Source, options: RegistryOptions) -> Iterator[_Sink]:
    if isinstance(dst, RegistryReference):
        mount_from = None
        if isinstance(source.ref, RegistryReference) and source.ref.registry == dst.registry:
            mount_from = source.ref.repository
        tag = dst.tag or dst.digest or DEFAULT_TAG
        with options.client(dst.registry) as client:
            yield _Sink(client, dst.repository, None, tag, mount_from)
    else:
        with layout_for_writing(dst) as writer:
            yield _Sink(None, None, writer, dst.tag or DEFAULT_TAG, None)


def tag(ref: Reference, new_tag: str, options: RegistryOptions | None = None) -> Descriptor:
    """Point another tag at what `ref` points at, in the same repository or layout."""
    options = options or RegistryOptions()
    if isinstance(ref, RegistryReference):
        with options.client(ref.registry) as client:
            raw, media_type, digest = client.get_manifest(
                ref.repository, ref.digest or ref.tag or DEFAULT_TAG
            )
            client.put_manifest(ref.repository, new_tag, media_type or _sniff(raw), raw)
            return Descriptor(media_type or _sniff(raw), digest, len(raw))
    with layout_for_reading(ref) as layout:
        descriptor = layout.resolve(ref.tag, ref.digest)
    with layout_for_writing(ref.with_tag(new_tag)) as writer:
        writer.tag(Descriptor(descriptor.media_type, descriptor.digest, descriptor.size), new_tag)
    return descriptor


def safe_file_name(title: str) -> str:
    """`title` if it is a plain file name; refuses absolute paths, `..` and separators."""
    if (
        not title
        or title in (".", "..")
        or "/" in title
        or "\\" in title
        or "\0" in title
        or PurePosixPath(title).is_absolute()
        or title.startswith("..")
    ):
        raise InputError(
            f"refusing to write a file named {title!r}: a layer title must be a plain file name"
        )
    return title


def pull_modules(
    ref: Reference, out_dir: Path, options: RegistryOptions | None = None
) -> list[Path]:
    """Pull an artifact and write its module file(s) into `out_dir` under their titles.

    From a registry, a raw Wasm layer streams straight to its file: hashed on the way,
    written under a temporary name and renamed only when verified (one pass over the bytes).
    A compat image's tar layer is downloaded (verified) and its `*.wasm` files taken out.
    """
    options = options or RegistryOptions()
    if isinstance(ref, LayoutReference):
        return _pull_from_layout(ref, out_dir)
    from wasmctl.oci.artifact import RepositoryReader, is_wasm_layer, resolve_artifact, tar_modules

    with (
        options.client(ref.registry) as client,
        tempfile.TemporaryDirectory(prefix="wasmctl-pull-") as tmp,
    ):
        raw, media_type, digest = client.get_manifest(
            ref.repository, ref.digest or ref.tag or DEFAULT_TAG
        )
        root = Descriptor(media_type or _sniff(raw), digest, len(raw))
        artifact = resolve_artifact(RepositoryReader(client, ref.repository), root, str(ref))
        layers = [
            layer for layer in artifact.manifest.layers if is_wasm_layer(layer, artifact.kind)
        ]
        if not layers:
            raise InputError(f"{ref}: no Wasm layer in this {artifact.kind} artifact")
        raw_layers = [layer for layer in layers if layer.media_type in mt.RAW_WASM_LAYER_TYPES]
        names = [_layer_file_name(layer) for layer in raw_layers]
        _check_unique(names, ref)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for layer, name in zip(raw_layers, names, strict=True):
            client.fetch_blob(ref.repository, layer, out_dir / name)
            _readable(out_dir / name)
            written.append(out_dir / name)
        for i, layer in enumerate(layer for layer in layers if layer not in raw_layers):
            blob = Path(tmp) / f"layer{i}"
            client.fetch_blob(ref.repository, layer, blob)
            with blob.open("rb", buffering=0) as stream:
                found = tar_modules(stream, Path(tmp) / f"extract{i}", layer)
            written += _place([(safe_file_name(PurePosixPath(n).name), p) for n, p in found],
                              out_dir, ref, taken=[p.name for p in written])  # fmt: skip
        return written


def _pull_from_layout(ref: LayoutReference, out_dir: Path) -> list[Path]:
    from wasmctl.oci.artifact import extract_modules, open_artifact

    with (
        tempfile.TemporaryDirectory(prefix="wasmctl-pull-") as tmp,
        open_artifact(ref) as (
            layout,
            artifact,
        ),
    ):
        modules = extract_modules(layout, artifact, Path(tmp))
        if not modules:
            raise InputError(f"{ref}: no Wasm layer in this {artifact.kind} artifact")
        named = []
        for module in modules:
            inner = module.name.rsplit("#/", 1)[1] if "#/" in module.name else None
            name = PurePosixPath(inner).name if inner else _layer_file_name(module.layer)
            named.append((safe_file_name(name), module.path))
        return _place(named, out_dir, ref, taken=[])


def _layer_file_name(layer: Descriptor) -> str:
    title = layer.annotations.get(mt.ANNOTATION_TITLE)
    if title is None:
        return layer.digest.split(":", 1)[1][:16] + ".wasm"
    return safe_file_name(title)


def _check_unique(names: list[str], ref: Reference) -> None:
    if len(set(names)) != len(names):
        raise InputError(f"{ref}: two modules would be written as the same file")


def _place(named: list[tuple[str, Path]], out_dir: Path, ref: Reference,
           taken: list[str]) -> list[Path]:  # fmt: skip
    """Copy extracted modules into `out_dir` under their names, each atomically."""
    _check_unique([*taken, *(n for n, _ in named)], ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, path in named:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
        os.close(fd)
        try:
            clone_or_copy(path, Path(tmp_name))
            os.replace(tmp_name, out_dir / name)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _readable(out_dir / name)
        written.append(out_dir / name)
    return written


def _readable(path: Path) -> None:
    """Files written under temporary names start private; give them the usual mode."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
