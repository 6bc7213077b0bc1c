"""Reading tars that may be hostile (`oci-archive:` files, compat layers, OPA bundles),
with a bound on everything they can make wasmctl read, write or hold.

Deflate inflates up to about 1,000 times, so a 1 MB gzip can hold 1 GiB of zeros; a tar can
declare members of any size, hold a million empty ones, or carry a pax header that `tarfile`
reads into memory whole. So a tar is read as a stream, through a counter of the inflated
bytes, and refused (`InflateLimitError`, exit 2) the moment it passes `InflateLimits`:

- `total`: inflated bytes, counted as the stream is read (headers, padding, skipped members
  included), and checked against each member's declared end before that member is read, so a
  bomb stops before its member is written. By default 200 times the compressed size (at least
  64 MiB, at most 4 GiB): real content (manifests, Wasm, already-gzipped layers) compresses
  far less than 200:1, a deflate bomb near 1,000:1, and 4 GiB bounds the temporary disk an
  archive can take. `WASMCTL_MAX_INFLATED_BYTES=N` replaces this with a flat N bytes, for a
  legitimate archive that compresses better, or a smaller bound.
- `member`: one member's declared size (2 GiB; a module is at most 1 GiB, MAX_MODULE_BYTES).
- `members`: the number of entries (each costs a header parse and a `TarInfo` in memory).
- pax and GNU long-name headers, which `tarfile` holds in memory, to 1 MiB.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, Self, cast

from wasmctl.errors import InputError

MAX_INFLATED_BYTES = 4 << 30
MAX_MEMBER_BYTES = 2 << 30
MIN_INFLATED_BYTES = 64 << 20
INFLATE_RATIO = 200
MAX_HEADER_BYTES = 1 << 20
ENV_MAX_INFLATED = "WASMCTL_MAX_INFLATED_BYTES"
CHUNK = 1 << 20

_HEADER_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


class Readable(Protocol):
    """What a tar is read from: a file, a decompressor, a verifying reader."""

    def read(self, size: int = ..., /) -> bytes: ...


class InflateLimitError(InputError):
    """A tar that inflates beyond its bounds: too large, too many entries, a huge header."""


@dataclass(frozen=True)
class InflateLimits:
    """How far one tar may go (see the module docstring)."""

    total: int
    member: int
    members: int

    @classmethod
    def for_compressed(cls, compressed_size: int, *, members: int) -> InflateLimits:
        """The bounds for a tar stream of `compressed_size` bytes (its gzip, or the tar)."""
        flat = _flat_bound()
        if flat is not None:
            total = flat
        else:
            total = min(
                MAX_INFLATED_BYTES, max(MIN_INFLATED_BYTES, INFLATE_RATIO * compressed_size)
            )
        return cls(total=total, member=min(MAX_MEMBER_BYTES, total), members=members)


def _flat_bound() -> int | None:
    text = os.environ.get(ENV_MAX_INFLATED, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise InputError(f"{ENV_MAX_INFLATED}={text!r}: expected a positive number of bytes")
    return value


class _Counted(io.RawIOBase):
    """The inflated stream, refusing to give more than `limit` bytes."""

    def __init__(self, inner: Readable, limit: int, label: str) -> None:
        self.inner = inner
        self.limit = limit
        self.label = label
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        # never ask for more than one byte past the limit, so the refusal costs nothing
        want = min(len(view), self.limit - self.count + 1)
        data = self.inner.read(want)
        n = len(data)
        view[:n] = data
        self.count += n
        if self.count > self.limit:
            raise InflateLimitError(
                f"{self.label}: inflates beyond {self.limit:,} bytes; refusing it",
                hint=f"a legitimate archive this large can be allowed with {ENV_MAX_INFLATED}",
            )
        return n


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a pax or GNU long-name header larger than MAX_HEADER_BYTES before `tarfile`
    reads it into memory (it does, whole, in `_proc_pax` / `_proc_gnulong`)."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _HEADER_TYPES and info.size > MAX_HEADER_BYTES:
            raise InflateLimitError(f"a tar header of {info.size:,} bytes; refusing it")
        return info


class BoundedTar:
    """A tar read once, in order, under `InflateLimits`."""

    def __init__(self, tar: tarfile.TarFile, counted: _Counted, limits: InflateLimits) -> None:
        self._tar = tar
        self._counted = counted
        self.limits = limits
        self.label = counted.label

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        """The members, each checked from its header before any of its bytes are read."""
        limits = self.limits
        for count, member in enumerate(self._tar, 1):
            if count > limits.members:
                raise InflateLimitError(f"{self.label}: more than {limits.members:,} entries")
            end = member.offset_data + member.size
            if member.size > limits.member or end > limits.total:
                bound = limits.member if member.size > limits.member else limits.total
                raise InflateLimitError(
                    f"{self.label}: inflates beyond {bound:,} bytes (entry {member.name!r} "
                    f"is {member.size:,}); refusing it",
                    hint=f"a legitimate archive this large can be allowed with {ENV_MAX_INFLATED}",
                )
            yield member

    def read_member(self, member: tarfile.TarInfo, limit: int) -> bytes:
        """A small regular member's bytes (at most `limit`)."""
        if member.size > limit:
            raise InflateLimitError(f"{self.label}: {member.name} is larger than {limit:,} bytes")
        source = self._tar.extractfile(member)
        if source is None:
            raise InflateLimitError(f"{self.label}: cannot read {member.name}")
        with source:
            return source.read(limit + 1)

    def copy_member(self, member: tarfile.TarInfo, target: Path) -> None:
        """Write a regular member to `target` (its size was bounded by `__iter__`)."""
        source = self._tar.extractfile(member)
        if source is None:
            raise InflateLimitError(f"{self.label}: cannot read {member.name}")
        with source, target.open("wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)


@contextlib.contextmanager
def open_bounded_tar(
    stream: Readable,
    compression: str | None,
    limits: InflateLimits,
    label: str,
    error: type[InputError] = InputError,
    what: str = "tar",
) -> Iterator[BoundedTar]:
    """Read `stream` (compressed with `compression`: "gz", "bz2", "xz" or None) as a tar
    under `limits`. Format errors become `error`s ("LABEL: not a readable WHAT: ..."), and
    a passed bound an `InflateLimitError`."""
    try:
        with contextlib.ExitStack() as stack:
            inflated: Readable = stream
            source = cast(IO[bytes], stream)  # the decompressors only call read()
            if compression == "gz":
                inflated = stack.enter_context(gzip.GzipFile(fileobj=source, mode="rb"))
            elif compression == "bz2":
                inflated = stack.enter_context(bz2.BZ2File(source))
            elif compression == "xz":
                inflated = stack.enter_context(lzma.LZMAFile(source))
            counted = _Counted(inflated, limits.total, label)
            tar = stack.enter_context(
                tarfile.open(fileobj=counted, mode="r|", tarinfo=_BoundedTarInfo)
            )
            yield BoundedTar(tar, counted, limits)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
        # OSError: gzip.BadGzipFile, bz2's "Invalid data stream", and a write that failed
        raise error(f"{label}: not a readable {what}: {e}") from None


def compression_of(magic: bytes) -> str | None:
    """The compression a stream starting with `magic` uses: "gz", "bz2", "xz" or None."""
    if magic.startswith(b"\x1f\x8b"):
        return "gz"
    if magic.startswith(b"BZh"):
        return "bz2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None
