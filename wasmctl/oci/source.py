"""The one way any room reaches an artifact: a registry, an OCI layout or an OCI archive.

`open_source(ref, options)` gives a `Source`: resolve the reference (the descriptor and the
exact manifest bytes), read manifests and small blobs by digest (verified, in memory), put
large blobs in files (verified while they stream), list referrers (the API, the
`sha256-<hex>` fallback tag, or a layout's `index.json`) and the signature manifests a
`cosign save` layout keeps beside its image, and write blobs, manifests, tags and referrers
(a layout through one `LayoutWriter` transaction, an archive rewritten when it commits; a
registry through its client).

A registry is reached through the `Session` for its host, held by `RegistryOptions` for as
long as an outer `with options:` lasts (a command): one `RegistryClient` (one connection
pool, one token cache across scopes), and the manifests and small blobs (configs, bundles;
never layers) already fetched, by digest, so one run never fetches the same content twice.
`RegistryOptions(transport=...)` sends every request of the stack through a transport of
the caller's (an in-process registry in tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wasmctl._files import open_regular
from wasmctl.errors import InputError, InternalError
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import (
    CosignEntry,
    LayoutError,
    LayoutWriter,
    OCILayout,
    clone_or_copy,
    layout_for_reading,
    layout_for_writing,
)
from wasmctl.oci.models import Descriptor, Index, parse_manifest_or_index, sha256_digest
from wasmctl.oci.reference import (
    LayoutReference,
    Reference,
    RegistryReference,
    manifest_reference,
    speaks_plain_http,
)

if TYPE_CHECKING:
    from wasmctl.oci.artifact import Artifact, LaunchContext
    from wasmctl.oci.registry import Progress, RegistryClient, RetryPolicy, TimeoutPolicy

MAX_MANIFEST_READ = 4 << 20  # a manifest or index read to resolve or copy it
MAX_CACHED_BYTES = 64 << 20  # what one session keeps of manifests and small blobs
CHUNK = 1 << 20


# -- sessions -------------------------------------------------------------------------------


class Session:
    """One registry for one run: one client, and what was already fetched from it.

    The cache is keyed by repository and digest: content-addressed, so never stale, but a
    digest read from one repository is not taken as present in another. It holds at most
    `max_bytes`; the least recently used entries go first (a long-lived session, the
    admission server's, keeps what it reads again and forgets the rest)."""

    def __init__(self, client: RegistryClient, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # (kind, repository, digest) -> the manifest and its media type, or the blob
        self._entries: OrderedDict[tuple[str, str, str], tuple[bytes, str]] = OrderedDict()
        self._cached = 0

    def manifest(
        self, repository: str, reference: str, *, size: int | None = None
    ) -> tuple[bytes, str, str]:
        """`RegistryClient.get_manifest`, answered from the cache for a digest seen before."""
        if reference.startswith("sha256:"):
            hit = self._get(("manifest", repository, reference))
            if hit is not None and (size is None or size == len(hit[0])):
                return hit[0], hit[1], reference
        raw, media_type, digest = self.client.get_manifest(repository, reference, size=size)
        self._put(("manifest", repository, digest), raw, media_type)
        return raw, media_type, digest

    def read_blob(self, repository: str, descriptor: Descriptor, *, limit: int) -> bytes:
        """A manifest or a small blob (a config, a bundle), verified; cached by digest."""
        if descriptor.media_type in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
            raw, _, _ = self.manifest(repository, descriptor.digest, size=descriptor.size)
            return raw
        key = ("blob", repository, descriptor.digest)
        hit = self._get(key)
        if hit is not None and len(hit[0]) == descriptor.size <= limit:
            return hit[0]
        data = self.client.read_blob(repository, descriptor, limit=limit)
        self._put(key, data, "")
        return data

    def _get(self, key: tuple[str, str, str]) -> tuple[bytes, str] | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit

    def _put(self, key: tuple[str, str, str], data: bytes, media_type: str) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (data, media_type)
            self._cached += len(data)
            while self._cached > self.max_bytes:
                _, (old, _) = self._entries.popitem(last=False)
                self._cached -= len(old)

    def close(self) -> None:
        self.client.close()


class Sessions:
    """The sessions of one `RegistryOptions`, by registry host; closed when the outermost
    `with options:` ends (each library call holds them too, so a call made outside any
    block closes what it opened)."""

    def __init__(self, options: RegistryOptions) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}
        self._holders = 0

    def session(self, registry: str) -> Session:
        """The session for `registry`, opened on first use."""
        with self._lock:
            session = self._open.get(registry)
            if session is None:
                session = Session(self._options.new_client(registry), self._options.cache_bytes)
                self._open[registry] = session
            return session

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders > 0:
                return
            closing, self._open = list(self._open.values()), {}
        for session in closing:
            session.close()


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries (plain HTTP for some hosts, a private CA, retries, progress,
    a transport of the caller's), and the sessions opened with them.

    `plain_http` names registries reached over HTTP (`host:port`, or `host` for any port);
    loopback ones (localhost, 127.0.0.0/8, ::1) are too unless `ca_file` is given
    (`reference.speaks_plain_http`).

    `with options:` keeps the sessions open for the block, so every call inside it shares
    one client and one cache per registry; they close when the outermost block ends."""

    plain_http: frozenset[str] = frozenset()
    ca_file: Path | None = None
    retry: RetryPolicy | None = None
    progress: Progress | None = None
    # what registry clients send through (RegistryClient's `transport`): tests hand an
    # httpx transport (an in-process registry); None is the client's own connections
    transport: Any = None
    timeouts: TimeoutPolicy | None = None
    cache_bytes: int = MAX_CACHED_BYTES  # per session: manifests and small blobs
    sessions: Sessions = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sessions", Sessions(self))

    def __enter__(self) -> RegistryOptions:
        self.sessions.hold()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sessions.release()

    def new_client(self, registry: str) -> RegistryClient:
        """A new client for one registry (sessions hold one each; use `sessions`)."""
        from wasmctl.oci.registry import RegistryClient

        return RegistryClient(
            registry,
            plain_http=speaks_plain_http(registry, self.plain_http, ca_file=bool(self.ca_file)),
            ca_file=self.ca_file,
            retry=self.retry,
            timeouts=self.timeouts,
            progress=self.progress,
            transport=self.transport,
        )


# -- sources --------------------------------------------------------------------------------


class Source(Protocol):
    """An artifact's home, opened at a reference (see the module docstring)."""

    @property
    def reference(self) -> Reference: ...

    def resolve(self) -> tuple[Descriptor, bytes]:
        """The reference's descriptor and its manifest's exact bytes."""
        ...

    def subject(self) -> Descriptor:
        """The descriptor the reference resolves to."""
        ...

    def manifest(self, reference: str) -> bytes | None:
        """The manifest under a tag or digest, or None when there is none."""
        ...

    def child_manifest(self, descriptor: Descriptor) -> bytes:
        """A manifest named by a descriptor, checked against its size and digest."""
        ...

    def read_blob(self, descriptor: Descriptor, *, limit: int = ...) -> bytes:
        """A manifest or small blob in memory, verified."""
        ...

    def blob_file(self, descriptor: Descriptor, scratch: Path) -> Path:
        """A file holding the blob, verified (a layout's in place; else under `scratch`)."""
        ...

    def fetch_into(self, descriptor: Descriptor, target: Path) -> None:
        """Write the blob, verified, to `target`."""
        ...

    def open_blob(
        self, descriptor: Descriptor, scratch: Path
    ) -> contextlib.AbstractContextManager[io.RawIOBase]:
        """The blob as a stream; its size and digest are checked by the end of the block."""
        ...

    def referrers(self, digest: str) -> list[Descriptor]:
        """The referrers of `digest`."""
        ...

    def cosign_stores(self, digest: str) -> list[CosignEntry]:
        """The signature and attestation manifests a `cosign save` layout keeps beside
        `digest` (`OCILayout.cosign_stores`); none in a registry or any other layout."""
        ...

    def put_blob(
        self,
        descriptor: Descriptor,
        file: Callable[[], Path],
        *,
        mount_from: str | None = None,
        shown: str = "",
    ) -> int:
        """Store a blob unless present; bytes sent. `file` is asked for only when the blob
        must be sent (a layout lacks it; a registry has it neither stored nor mountable)."""
        ...

    def put_manifest(self, descriptor: Descriptor, raw: bytes) -> None:
        """Store a manifest by its digest."""
        ...

    def put_tagged(self, descriptor: Descriptor, raw: bytes, tag: str) -> None:
        """Store a manifest under `tag`."""
        ...

    def put_referrer(self, raw: bytes) -> Descriptor:
        """Store a manifest with a `subject` where its subject's referrers are listed."""
        ...

    def attach(self, blobs: list[tuple[Descriptor, bytes]], manifest: bytes) -> Descriptor:
        """Store small blobs and the referrer manifest that names them."""
        ...


def _sniff(raw: bytes) -> str:
    """The media type a manifest or index names itself by, for an answer without one."""
    document = parse_manifest_or_index(raw)
    if isinstance(document, Index):
        return document.media_type or mt.OCI_INDEX
    return document.media_type or mt.OCI_MANIFEST


class RegistrySource:
    """A repository of a registry, through its session."""

    def __init__(self, session: Session, reference: RegistryReference) -> None:
        self.session = session
        self.reference = reference

    @property
    def client(self) -> RegistryClient:
        return self.session.client

    @property
    def repository(self) -> str:
        return self.reference.repository

    def resolve(self) -> tuple[Descriptor, bytes]:
        raw, media_type, digest = self.session.manifest(
            self.repository, manifest_reference(self.reference)
        )
        return Descriptor(media_type or _sniff(raw), digest, len(raw)), raw

    def subject(self) -> Descriptor:
        return self.resolve()[0]

    def manifest(self, reference: str) -> bytes | None:
        from wasmctl.oci.registry import NotFoundError

        try:
            raw, _, _ = self.session.manifest(self.repository, reference)
        except NotFoundError:
            return None
        return raw

    def child_manifest(self, descriptor: Descriptor) -> bytes:
        raw, _, _ = self.session.manifest(self.repository, descriptor.digest)
        if len(raw) != descriptor.size or sha256_digest(raw) != descriptor.digest:
            raise InputError(
                f"{self.reference}: manifest {descriptor.digest} is {len(raw)} bytes, but its "
                f"descriptor says {descriptor.size}"
            )
        return raw

    def read_blob(self, descriptor: Descriptor, *, limit: int = 64 << 20) -> bytes:
        return self.session.read_blob(self.repository, descriptor, limit=limit)

    def blob_file(self, descriptor: Descriptor, scratch: Path) -> Path:
        target = scratch / descriptor.digest.replace(":", "-")
        if not target.exists():
            self.client.fetch_blob(self.repository, descriptor, target)
        return target

    def fetch_into(self, descriptor: Descriptor, target: Path) -> None:
        self.client.fetch_blob(self.repository, descriptor, target)

    @contextlib.contextmanager
    def open_blob(self, descriptor: Descriptor, scratch: Path) -> Iterator[io.RawIOBase]:
        with self.blob_file(descriptor, scratch).open("rb", buffering=0) as stream:
            yield stream

    def referrers(self, digest: str) -> list[Descriptor]:
        from wasmctl.oci.referrers import list_referrers

        return list_referrers(self.client, self.repository, digest)

    def cosign_stores(self, digest: str) -> list[CosignEntry]:
        return []  # a registry keeps them under `.sig` / `.att` tags

    def put_blob(
        self,
        descriptor: Descriptor,
        file: Callable[[], Path],
        *,
        mount_from: str | None = None,
        shown: str = "",
    ) -> int:
        return self.client.push_blob(self.repository, descriptor, file, mount_from=mount_from)

    def put_manifest(self, descriptor: Descriptor, raw: bytes) -> None:
        self.client.put_manifest(self.repository, descriptor.digest, descriptor.media_type, raw)

    def put_tagged(self, descriptor: Descriptor, raw: bytes, tag: str) -> None:
        self.client.put_manifest(self.repository, tag, descriptor.media_type, raw)

    def put_referrer(self, raw: bytes) -> Descriptor:
        from wasmctl.oci.referrers import push_referrer

        return push_referrer(self.client, self.repository, raw).descriptor

    def attach(self, blobs: list[tuple[Descriptor, bytes]], manifest: bytes) -> Descriptor:
        with tempfile.TemporaryDirectory(prefix="wasmctl-attach-") as scratch:
            for descriptor, data in blobs:
                staged = Path(scratch) / descriptor.digest.replace(":", "-")
                staged.write_bytes(data)
                self.client.push_blob(self.repository, descriptor, staged)
        return self.put_referrer(manifest)


class LayoutSource:
    """An OCI layout (an archive's, unpacked), with a write transaction when opened to write."""

    def __init__(
        self, layout: OCILayout, reference: LayoutReference, writer: LayoutWriter | None = None
    ) -> None:
        self.layout = layout
        self.reference = reference
        self.writer = writer

    def _writer(self) -> LayoutWriter:
        if self.writer is None:
            raise InternalError("the layout was opened read-only")
        return self.writer

    def resolve(self) -> tuple[Descriptor, bytes]:
        descriptor = self.subject()
        return descriptor, self.layout.read_blob(descriptor, limit=MAX_MANIFEST_READ)

    def subject(self) -> Descriptor:
        return self.layout.resolve(self.reference.tag, self.reference.digest)

    def manifest(self, reference: str) -> bytes | None:
        try:
            if reference.startswith("sha256:"):
                descriptor = self.layout.resolve(digest=reference)
            else:
                descriptor = self.layout.resolve(tag=reference)
        except LayoutError:
            return None
        return self.layout.read_blob(descriptor, limit=MAX_MANIFEST_READ)

    def child_manifest(self, descriptor: Descriptor) -> bytes:
        return self.layout.read_blob(descriptor, limit=MAX_MANIFEST_READ)

    def read_blob(self, descriptor: Descriptor, *, limit: int = 64 << 20) -> bytes:
        return self.layout.read_blob(descriptor, limit=limit)

    def blob_file(self, descriptor: Descriptor, scratch: Path) -> Path:
        return self.layout.verify_blob(descriptor)

    def fetch_into(self, descriptor: Descriptor, target: Path) -> None:
        clone_or_copy(self.layout.verify_blob(descriptor), target)

    @contextlib.contextmanager
    def open_blob(self, descriptor: Descriptor, scratch: Path) -> Iterator[io.RawIOBase]:
        """Read in one pass: hashed as it is read, the rest drained and checked at the end."""
        path = self.layout.blob_path(descriptor.digest)
        with open_regular(path, "layer blob", LayoutError) as blob:
            # the size bounds what a layer may inflate to: it must be the blob's, up front
            if os.fstat(blob.fileno()).st_size != descriptor.size:
                raise LayoutError(f"layer {descriptor.digest} does not match its digest or size")
            reader = _VerifyingReader(blob, descriptor)
            yield reader
            reader.finish()

    def referrers(self, digest: str) -> list[Descriptor]:
        from wasmctl.oci.referrers import list_layout_referrers

        return list_layout_referrers(self.layout, digest)

    def cosign_stores(self, digest: str) -> list[CosignEntry]:
        return self.layout.cosign_stores(digest)

    def put_blob(
        self,
        descriptor: Descriptor,
        file: Callable[[], Path],
        *,
        mount_from: str | None = None,
        shown: str = "",
    ) -> int:
        writer = self._writer()
        if self.layout.has_blob(descriptor.digest):
            present = self.layout.blob_path(descriptor.digest).stat().st_size
            if present != descriptor.size:
                raise InputError(
                    f"{shown}: blob {descriptor.digest} is {present} bytes, but its "
                    f"descriptor says {descriptor.size}"
                )
            return 0
        added = writer.add_file(descriptor.media_type, file())
        if added.digest != descriptor.digest or added.size != descriptor.size:
            raise InputError(f"{shown}: blob {descriptor.digest} does not match its digest or size")
        return added.size

    def put_manifest(self, descriptor: Descriptor, raw: bytes) -> None:
        self._writer().add_bytes(descriptor.media_type, raw)

    def put_tagged(self, descriptor: Descriptor, raw: bytes, tag: str) -> None:
        writer = self._writer()
        writer.add_bytes(descriptor.media_type, raw)
        writer.tag(Descriptor(descriptor.media_type, descriptor.digest, descriptor.size), tag)

    def put_referrer(self, raw: bytes) -> Descriptor:
        from wasmctl.oci.referrers import add_layout_referrer

        return add_layout_referrer(self._writer(), raw)

    def attach(self, blobs: list[tuple[Descriptor, bytes]], manifest: bytes) -> Descriptor:
        writer = self._writer()
        for descriptor, data in blobs:
            writer.add_bytes(descriptor.media_type, data)
        return self.put_referrer(manifest)


class _VerifyingReader(io.RawIOBase):
    """Reads a blob, hashing it; `finish` drains the rest and compares with the descriptor."""

    def __init__(self, raw: io.BufferedReader, descriptor: Descriptor) -> None:
        self.raw = raw
        self.descriptor = descriptor
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.hash.update(memoryview(buffer)[:n])
            self.size += n
        return n or 0

    def finish(self) -> None:
        while self.read(CHUNK):
            pass
        digest = "sha256:" + self.hash.hexdigest()
        if digest != self.descriptor.digest or self.size != self.descriptor.size:
            raise LayoutError(f"layer {self.descriptor.digest} does not match its digest or size")


@contextlib.contextmanager
def open_source(
    ref: Reference, options: RegistryOptions | None = None, *, write: bool = False
) -> Iterator[Source]:
    """The artifact's home at `ref`, to read (and to write, with `write`: a layout change is
    one transaction, an archive is rewritten when it succeeds). A registry is reached
    through the session `options` holds for it."""
    if isinstance(ref, RegistryReference):
        with options or RegistryOptions() as held:
            yield RegistrySource(held.sessions.session(ref.registry), ref)
    elif write:
        with layout_for_writing(ref) as writer:
            yield LayoutSource(writer.layout, ref, writer)
    else:
        with layout_for_reading(ref) as layout:
            yield LayoutSource(layout, ref)


@contextlib.contextmanager
def open_artifact(
    ref: Reference,
    launch: LaunchContext | None = None,
    options: RegistryOptions | None = None,
) -> Iterator[tuple[Source, Artifact]]:
    """The source at `ref` and the artifact it resolves to (an index to its `wasi/wasm`
    manifest; `launch`: how a runtime would be asked to run it)."""
    from wasmctl.oci.artifact import resolve_artifact

    with open_source(ref, options) as source:
        yield source, resolve_artifact(source, source.subject(), str(ref), launch)
