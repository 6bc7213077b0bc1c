"""A gzip writer that compresses fixed-size blocks on every core, with deterministic output.

zlib releases the GIL while it compresses, so blocks compressed on a thread pool use every
core. Each block is deflated on its own, primed with the last 32 KiB of the block before it
(the way pigz does it), and ends on a sync flush, so the blocks concatenate into one valid
deflate stream. The output depends only on the input, the level and the block size, never on
the number of threads or their timing: the same layer always has the same digest.
"""

from __future__ import annotations

import collections
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

BLOCK_SIZE = 1 << 20
DICTIONARY_SIZE = 32 * 1024
# gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown" (RFC 1952)
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _deflate(block: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    compressor = (
        zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary)
        if dictionary
        else zlib.compressobj(level, zlib.DEFLATED, -15)
    )
    return compressor.compress(block) + compressor.flush(
        zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    )


class ParallelGzipWriter:
    """A write-only binary stream that writes gzip to `write_out`, compressing in parallel."""

    def __init__(
        self,
        write_out: Callable[[bytes], Any],
        level: int,
        *,
        threads: int | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        self._out = write_out
        self._level = level
        self._block_size = block_size
        workers = threads or max(1, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip")
        self._pending: collections.deque[Future[bytes]] = collections.deque()
        self._max_pending = 2 * workers
        self._buffer = bytearray()
        self._dictionary = b""
        self._crc = 0
        self._size = 0
        self._closed = False
        self._out(HEADER)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Take more uncompressed bytes."""
        view = memoryview(data)
        self._crc = zlib.crc32(view, self._crc)
        self._size += len(view)
        self._buffer += view
        while len(self._buffer) > self._block_size:
            block = bytes(self._buffer[: self._block_size])
            del self._buffer[: self._block_size]
            self._submit(block, last=False)
        return len(view)

    def _submit(self, block: bytes, *, last: bool) -> None:
        dictionary = self._dictionary
        self._dictionary = block[-DICTIONARY_SIZE:]
        self._pending.append(self._pool.submit(_deflate, block, dictionary, self._level, last))
        while len(self._pending) > self._max_pending:
            self._out(self._pending.popleft().result())

    def close(self) -> None:
        """Compress what is left and write the trailer (CRC-32 and size, RFC 1952)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(bytes(self._buffer), last=True)
            self._buffer.clear()
            while self._pending:
                self._out(self._pending.popleft().result())
            self._out(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelGzipWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._closed = True
            self._pool.shutdown(wait=True, cancel_futures=True)
