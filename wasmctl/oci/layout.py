"""OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/`) and their tars.

Writes are transactions: blobs are staged under temporary names and renamed into place, and
`index.json` is replaced last, atomically, so a failure leaves the layout as it was. A layout
is locked (`flock` on its directory) while a transaction commits; an archive (`flock` on a lock
file beside it) from reading it to renaming its replacement into place. Blob digests are
verified on every read.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from wasmctl import _json
from wasmctl._files import open_regular, read_limited, replace_atomically
from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.bounded_tar import InflateLimits, compression_of, open_bounded_tar
from wasmctl.oci.models import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    Index,
    ManifestError,
    canonical_json,
    check_digest,
    sha256_digest,
)
from wasmctl.oci.reference import DEFAULT_TAG, LayoutReference

FICLONE = 0x40049409  # linux/fs.h: share the source's extents (copy-on-write reflink)
CHUNK = 1 << 20
MAX_ARCHIVE_MEMBERS = 100_000
MAX_MARKER_BYTES = 4096  # `oci-layout` is one small JSON object
SCRATCH_PREFIX = ".wasmctl-"  # a writer's staging directory inside the layout
ARCHIVE_LOCK = SCRATCH_PREFIX + "{name}.lock"  # beside an archive while a writer holds it


class LayoutError(InputError):
    """An OCI layout that is missing, malformed, or lacks what was asked for."""


# `cosign save` writes an untagged layout whose `index.json` entries say what they are with a
# `kind` annotation: the image (or index) saved, and the manifests that hold its signatures
# and attestations as cosign's `.sig` and `.att` tags would (sigstore/cosign
# pkg/oci/layout/index.go; cosign reads the first entry of each kind).
COSIGN_KIND_ANNOTATION = "kind"


class CosignKind(enum.StrEnum):
    """What an entry of a `cosign save` layout is."""

    IMAGE = "dev.cosignproject.cosign/image"
    IMAGE_INDEX = "dev.cosignproject.cosign/imageIndex"
    SIGNATURES = "dev.cosignproject.cosign/sigs"
    ATTESTATIONS = "dev.cosignproject.cosign/atts"

    @property
    def saved(self) -> bool:
        """An image or index saved, not a signature store."""
        return self in (CosignKind.IMAGE, CosignKind.IMAGE_INDEX)


@dataclass(frozen=True)
class CosignEntry:
    """An `index.json` entry marked by `cosign save`."""

    kind: CosignKind
    descriptor: Descriptor


class OCILayout:
    """An OCI image layout directory."""

    def __init__(self, root: Path, shown: str | None = None) -> None:
        self.root = root
        # the name in messages: an archive's path, not the temporary directory it is read in
        self.shown = shown or str(root)

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, *, shown: str | None = None) -> OCILayout:
        """An existing layout; refuses a directory that is not one. `shown`: its name in
        messages (an archive's), if not `root`."""
        name = shown or str(root)
        marker = root / "oci-layout"
        if not marker.exists() and not marker.is_symlink():
            raise LayoutError(
                f"{name}: not an OCI layout (no oci-layout file)",
                hint="build into it first, or check the path",
            )
        raw = read_limited(marker, MAX_MARKER_BYTES, "oci-layout file", LayoutError)
        data = _json.loads(raw, f"{name}: cannot read oci-layout; it", LayoutError)
        if not isinstance(data, dict) or data.get("imageLayoutVersion") != mt.OCI_LAYOUT_VERSION:
            raise LayoutError(f"{name}: unsupported oci-layout {data!r}")
        return cls(root, shown)

    @property
    def blobs(self) -> Path:
        """`blobs/sha256`."""
        return self.root / "blobs" / "sha256"

    def blob_path(self, digest: str) -> Path:
        """Where the blob of `digest` is stored."""
        return self.blobs / check_digest(digest).split(":", 1)[1]

    def has_blob(self, digest: str) -> bool:
        """True when the blob is present."""
        return self.blob_path(digest).is_file()

    # -- reading ------------------------------------------------------------------------

    def read_blob(self, descriptor: Descriptor, *, limit: int = 64 << 20) -> bytes:
        """A small blob's bytes, checked against the descriptor's size and digest."""
        if descriptor.size > limit:
            raise LayoutError(f"blob {descriptor.digest} is {descriptor.size} bytes; limit {limit}")
        path = self.blob_path(descriptor.digest)
        if not path.exists():
            raise LayoutError(f"{self.shown}: blob {descriptor.digest} is missing")
        data = read_limited(path, limit, f"{self.shown}: blob", LayoutError)
        if len(data) != descriptor.size or sha256_digest(data) != descriptor.digest:
            raise LayoutError(
                f"{self.shown}: blob {descriptor.digest} does not match its digest or size"
            )
        return data

    def verify_blob(self, descriptor: Descriptor) -> Path:
        """The path of a blob after streaming it once to check size and digest."""
        path = self.blob_path(descriptor.digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise LayoutError(f"{self.shown}: blob {descriptor.digest} is missing") from None
        if not path.is_file():  # a FIFO or a device would be read without end
            raise LayoutError(f"{self.shown}: blob {descriptor.digest} is not a regular file")
        if size != descriptor.size or _file_digest(path) != descriptor.digest:
            raise LayoutError(
                f"{self.shown}: blob {descriptor.digest} does not match its digest or size"
            )
        return path

    def index(self) -> Index:
        """`index.json`."""
        path = self.root / "index.json"
        if not path.exists() and not path.is_symlink():
            raise LayoutError(f"{self.shown}: no index.json")
        raw = read_limited(path, MAX_MANIFEST_BYTES, "index", LayoutError)
        try:
            return Index.from_bytes(raw)
        except ManifestError as e:
            raise LayoutError(f"{self.shown}/index.json: {e.message}") from None

    def tags(self) -> list[str]:
        """The tags (`org.opencontainers.image.ref.name`) in `index.json`."""
        return [
            d.annotations[mt.ANNOTATION_REF_NAME]
            for d in self.index().manifests
            if mt.ANNOTATION_REF_NAME in d.annotations
        ]

    def cosign_entries(self) -> list[CosignEntry]:
        """The entries `cosign save` marked (`CosignKind`), in `index.json` order."""
        kinds = {kind.value: kind for kind in CosignKind}
        return [
            CosignEntry(kinds[d.annotations[COSIGN_KIND_ANNOTATION]], d)
            for d in self.index().manifests
            if d.annotations.get(COSIGN_KIND_ANNOTATION) in kinds
        ]

    def cosign_stores(self, digest: str) -> list[CosignEntry]:
        """The signature and attestation entries of a `cosign save` layout when `digest` is
        the image (or index) it saved; none otherwise. Which image they sign is not written
        down: they sit beside it, so the statements inside must name `digest` themselves
        (the verifier checks that; a layout can put anything beside anything)."""
        entries = self.cosign_entries()
        if not any(e.kind.saved and e.descriptor.digest == digest for e in entries):
            return []
        return [e for e in entries if not e.kind.saved]

    def resolve(self, tag: str | None = None, digest: str | None = None) -> Descriptor:
        """The `index.json` entry for a tag or digest; with neither, the only image (or the
        only image a `cosign save` layout holds)."""
        manifests = self.index().manifests
        if digest is not None:
            for d in manifests:
                if d.digest == digest:
                    return d
            path = self.blob_path(digest)
            if path.is_file():  # a manifest that is stored but not listed (a child of an index)
                raw = read_limited(path, MAX_MANIFEST_BYTES, "manifest", LayoutError)
                data = (
                    _json.loads(raw, f"manifest {digest}", LayoutError) if raw[:1] == b"{" else {}
                )
                media_type = data.get("mediaType") or (
                    mt.OCI_INDEX if "manifests" in data else mt.OCI_MANIFEST
                )
                return Descriptor(media_type, digest, len(raw))
            raise LayoutError(f"{self.shown}: no manifest {digest}")
        if tag is None:
            if len(manifests) == 1:
                return manifests[0]
            saved = [e.descriptor for e in self.cosign_entries() if e.kind.saved]
            if len(saved) == 1 and not self.tags():
                return saved[0]
            tag = DEFAULT_TAG
        for d in manifests:
            if d.annotations.get(mt.ANNOTATION_REF_NAME) == tag:
                return d
        known = ", ".join(self.tags()) or "none"
        raise LayoutError(f"{self.shown}: no tag {tag!r} (tags: {known})")

    # -- writing ------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def writer(cls, root: Path, *, shown: str | None = None) -> Iterator[LayoutWriter]:
        """A transaction on a layout, created if missing; commits when the block succeeds.

        Writers take turns (`_locked`), and a directory is judged only while its lock is
        held, so a layout another writer is creating (its scratch directory there, no
        `oci-layout` yet) is waited for, never taken for a foreign directory (issue 15)."""
        with contextlib.ExitStack() as held:
            try:
                created_root = held.enter_context(_locked(root))
                entries = [p for p in root.iterdir() if not p.name.startswith(SCRATCH_PREFIX)]
            except OSError as e:
                raise LayoutError(f"cannot create layout {root}: {e.strerror or e}") from None
            if entries and not (root / "oci-layout").exists():
                raise LayoutError(
                    f"{shown or root}: exists, is not empty, and is not an OCI layout",
                    hint="give a new archive, or one of an OCI layout"
                    if shown
                    else "give a new or empty directory",
                )
            writer = LayoutWriter(cls(root, shown))
            try:
                yield writer
                writer.commit()
            except BaseException:
                writer.abort()
                # Ours alone to remove: nothing was ever committed in it (no index.json),
                # and a writer waiting on the lock makes it again (`_locked`).
                if created_root and not (root / "index.json").exists():
                    shutil.rmtree(root, ignore_errors=True)
                raise


class LayoutWriter:
    """Stages blobs and tags; `commit` makes them visible, `abort` removes every trace."""

    def __init__(self, layout: OCILayout) -> None:
        self.layout = layout
        self._staged: dict[str, Path] = {}
        self._committed: list[Path] = []
        self._tags: list[tuple[Descriptor, str | None]] = []
        self._scratch: Path | None = None

    @property
    def scratch(self) -> Path:
        """A private directory inside the layout for staged files (same filesystem)."""
        if self._scratch is None:
            self.layout.root.mkdir(parents=True, exist_ok=True)
            self._scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.layout.root))
        return self._scratch

    def add_bytes(self, media_type: str, data: bytes, **kw: object) -> Descriptor:
        """Stage a small blob (a config or manifest)."""
        descriptor = Descriptor.of(media_type, data, **kw)  # type: ignore[arg-type]
        if descriptor.digest not in self._staged and not self.layout.has_blob(descriptor.digest):
            staged = self.scratch / f"{len(self._staged)}.blob"
            staged.write_bytes(data)
            self._staged[descriptor.digest] = staged
        return descriptor

    def add_file(self, media_type: str, source: Path, **kw: object) -> Descriptor:
        """Stage a file as a blob: a reflink where the filesystem can, else a copy.

        The digest is taken of the staged copy, so the blob is exactly what was hashed even if
        the source changes meanwhile.
        """
        staged = self.scratch / f"{len(self._staged)}.blob"
        clone_or_copy(source, staged)
        return self.adopt(media_type, staged, **kw)

    def adopt(self, media_type: str, staged: Path, **kw: object) -> Descriptor:
        """Stage a file already written inside `scratch`."""
        digest = _file_digest(staged)
        descriptor = Descriptor(media_type, digest, staged.stat().st_size, **kw)  # type: ignore[arg-type]
        if digest in self._staged or self.layout.has_blob(digest):
            staged.unlink()
        else:
            self._staged[digest] = staged
        return descriptor

    def tag(self, descriptor: Descriptor, tag: str | None) -> None:
        """List a manifest or index in `index.json`, under `tag` if given."""
        self._tags.append((descriptor, tag))

    def commit(self) -> None:
        """Move staged blobs into place, then replace `index.json`."""
        layout = self.layout
        marker = layout.root / "oci-layout"
        if not marker.exists():
            replace_atomically(
                marker, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION})
            )
        layout.blobs.mkdir(parents=True, exist_ok=True)
        for digest, staged in self._staged.items():
            target = layout.blob_path(digest)
            if not target.exists():
                os.chmod(staged, 0o644)
                os.replace(staged, target)
                self._committed.append(target)
        self._staged.clear()
        if self._tags or not (layout.root / "index.json").exists():
            replace_atomically(layout.root / "index.json", self._updated_index().to_bytes())
        self._committed.clear()
        self._remove_scratch()

    def abort(self) -> None:
        """Remove what this transaction staged or moved; `index.json` is untouched."""
        for path in self._committed:
            path.unlink(missing_ok=True)
        self._remove_scratch()

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _updated_index(self) -> Index:
        try:
            manifests = list(self.layout.index().manifests)
        except LayoutError:
            if (self.layout.root / "index.json").exists():
                raise
            manifests = []
        for descriptor, tag in self._tags:
            annotations = dict(descriptor.annotations)
            if tag is not None:
                annotations[mt.ANNOTATION_REF_NAME] = tag
                manifests = [
                    d for d in manifests if d.annotations.get(mt.ANNOTATION_REF_NAME) != tag
                ]
            elif any(d.digest == descriptor.digest for d in manifests):
                continue
            manifests.append(
                Descriptor(
                    descriptor.media_type,
                    descriptor.digest,
                    descriptor.size,
                    annotations,
                    descriptor.artifact_type,
                    descriptor.platform,
                )
            )
        return Index(tuple(manifests), media_type=mt.OCI_INDEX)


# -- archives (`oci-archive:`) ------------------------------------------------------------


@contextlib.contextmanager
def layout_for_reading(ref: LayoutReference) -> Iterator[OCILayout]:
    """The layout of a reference; an archive is unpacked into a temporary directory."""
    if not ref.archive:
        yield OCILayout.open(ref.path)
        return
    with tempfile.TemporaryDirectory(prefix="wasmctl-archive-") as tmp:
        extract_archive(ref.path, Path(tmp))
        yield OCILayout.open(Path(tmp), shown=str(ref.path))


@contextlib.contextmanager
def layout_for_writing(ref: LayoutReference) -> Iterator[LayoutWriter]:
    """A write transaction on a layout; for an archive, the tar is rewritten on success.

    Writers of one archive take turns (`_archive_locked`): each reads the archive its
    predecessor wrote, so none loses another's manifests or tags. Readers take no lock: the
    archive is replaced by a rename, so they see the old tar or the new one."""
    if not ref.archive:
        with OCILayout.writer(ref.path) as writer:
            yield writer
        return
    with tempfile.TemporaryDirectory(prefix="wasmctl-archive-") as tmp, _archive_locked(ref.path):
        root = Path(tmp) / "layout"
        if ref.path.exists():
            extract_archive(ref.path, root)
        with OCILayout.writer(root, shown=str(ref.path)) as writer:
            yield writer
        write_archive(root, ref.path)


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack an OCI layout tar, refusing links, devices and paths that leave `dest`, and
    stopping as soon as it inflates beyond its bounds (`bounded_tar`: a gzip bomb is refused
    before its member is written)."""
    dest.mkdir(parents=True, exist_ok=True)
    if not archive.exists() and not archive.is_symlink():
        raise LayoutError(f"{archive}: no such archive")
    with open_regular(archive, "archive", LayoutError) as f:
        compression = compression_of(f.read(6))
        f.seek(0)
        size = os.fstat(f.fileno()).st_size
        limits = InflateLimits.for_compressed(size, members=MAX_ARCHIVE_MEMBERS)
        with open_bounded_tar(
            f, compression, limits, str(archive), LayoutError, "tar archive"
        ) as tar:
            for member in tar:
                name = _safe_member_name(member.name, archive)
                if name is None:
                    continue
                target = dest.joinpath(*name.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tar.copy_member(member, target)
                else:
                    raise LayoutError(f"{archive}: {member.name} is not a regular file")


def _safe_member_name(name: str, archive: Path) -> PurePosixPath | None:
    path = PurePosixPath(name)
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts:
        raise LayoutError(f"{archive}: entry {name!r} would escape the layout")
    return PurePosixPath(*parts) if parts else None


def write_archive(root: Path, archive: Path) -> None:
    """Tar a layout reproducibly (sorted entries, fixed owner and mtime) and replace `archive`
    (which follows the umask, as any file the user asked for)."""
    archive.parent.mkdir(parents=True, exist_ok=True)

    def write(f: BinaryIO) -> None:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root).as_posix()
                if rel.startswith(".wasmctl-"):
                    continue
                info = tar.gettarinfo(str(path), arcname=rel)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isfile():
                    with path.open("rb") as content:
                        tar.addfile(info, content)
                else:
                    tar.addfile(info)

    replace_atomically(archive, write)


# -- files -------------------------------------------------------------------------------


def clone_or_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target`, sharing extents (reflink) where the filesystem allows."""
    with source.open("rb") as src, target.open("wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
            return
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                raise
        shutil.copyfileobj(src, dst, CHUNK)


def _file_digest(path: Path) -> str:
    """`sha256:<hex>` of a regular file, read in bounded chunks: the pages of a memory map
    count in the resident set (a 512 MiB layer made a 555 MiB peak in a push or a copy)."""
    with open_regular(path, "blob", LayoutError) as f:
        try:
            return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            raise LayoutError(f"cannot read blob {path}: {e.strerror or e}") from None


@contextlib.contextmanager
def _archive_locked(archive: Path) -> Iterator[None]:
    """An exclusive `flock` on `.wasmctl-NAME.lock` beside `archive` (its directory made if
    missing). A tar cannot be locked itself: a new one does not exist yet, and each writer
    replaces it with another file. The holder removes the lock file before it lets go, so
    none is left behind; a waiter that then finds another file (or none) at the path tries
    again, as `_locked` does. The name starts as a writer's scratch does, so a layout
    directory holding an archive is not taken for a foreign one meanwhile."""
    lock = archive.with_name(ARCHIVE_LOCK.format(name=archive.name))
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    while True:
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, flags, 0o666)
        except OSError as e:  # a read-only directory: the archive could not be written either
            raise LayoutError(
                f"cannot write {archive}: {e.strerror or e}",
                hint=f"writers take turns through {lock.name} beside the archive; "
                "give a directory you can write to",
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise LayoutError(f"cannot write {archive}: {lock} is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(lock, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if os.path.samestat(os.fstat(fd), current):
                try:
                    yield
                finally:
                    with contextlib.suppress(OSError):  # another user's, in a sticky directory
                        lock.unlink()
                return
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[bool]:
    """`root`, made if missing, held under an exclusive `flock` (threads too: each opens
    its own descriptor); True when this call made it. A writer that waited for the lock
    while the directory's maker removed it (a failed first transaction) makes it again."""
    while True:
        try:
            root.mkdir(parents=True)
            created = True
        except FileExistsError:
            created = False
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(root)
            except FileNotFoundError:
                continue
            if os.path.samestat(os.fstat(fd), current):
                yield created
                return
        finally:
            os.close(fd)
