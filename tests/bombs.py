"""Decompression bombs and other hostile tars, built in milliseconds.

Compressing 1 GiB of zeros takes seconds; a gzip file may be several gzip members one after
another (RFC 1952 §2.2), and readers inflate them as one stream, so one compressed MiB of
zeros, repeated, inflates to any size at deflate's ratio (~1,000:1).
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

MIB = 1 << 20
_ZEROS_MIB = gzip.compress(bytes(MIB), compresslevel=9, mtime=0)


def gzip_bomb(path: Path, member: str, inflated: int) -> Path:
    """A tar.gz holding one regular file `member` of `inflated` zero bytes (a multiple of
    1 MiB), written as about inflated/1000 bytes."""
    assert inflated % MIB == 0
    info = tarfile.TarInfo(member)
    info.size = inflated
    info.mode = 0o644
    with path.open("wb") as out:
        out.write(gzip.compress(info.tobuf(tarfile.PAX_FORMAT), mtime=0))
        for _ in range(inflated // MIB):
            out.write(_ZEROS_MIB)
        out.write(gzip.compress(bytes(2 * tarfile.BLOCKSIZE), mtime=0))
    return path


def tar_of(members: dict[str, bytes], *, gz: bool = False) -> bytes:
    """A tar (or tar.gz) of regular files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
