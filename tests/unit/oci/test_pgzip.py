"""The parallel gzip writer: valid gzip, and the same bytes whatever the threads or chunking."""

from __future__ import annotations

import gzip
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from wasmctl.oci.pgzip import ParallelGzipWriter


def compress(data: bytes, *, threads: int, chunk: int, level: int = 6, block: int = 4096) -> bytes:
    out = io.BytesIO()
    with ParallelGzipWriter(out.write, level, threads=threads, block_size=block) as writer:
        for i in range(0, len(data), chunk):
            writer.write(data[i : i + chunk])
    return out.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=40_000) | st.text(max_size=20_000).map(str.encode),
    chunk=st.integers(min_value=1, max_value=9000),
    level=st.integers(min_value=0, max_value=9),
)
def test_output_is_gzip_and_independent_of_threads_and_chunking(
    data: bytes, chunk: int, level: int
) -> None:
    one = compress(data, threads=1, chunk=len(data) or 1, level=level)
    many = compress(data, threads=3, chunk=chunk, level=level)
    assert one == many
    assert gzip.decompress(one) == data
    assert one[4:8] == b"\0\0\0\0"  # mtime 0


def test_an_empty_stream_is_valid_gzip() -> None:
    assert gzip.decompress(compress(b"", threads=2, chunk=1)) == b""


def test_blocks_use_the_previous_block_as_dictionary() -> None:
    # Repetitive data across block boundaries compresses as well as in one stream would.
    data = b"wasmctl " * 20_000
    assert len(compress(data, threads=2, chunk=1000)) < len(data) // 50
