"""A bounded cursor over a WebAssembly binary: bytes, LEB128 integers and names.

Every read checks its bounds and raises `WasmParseError` with the absolute offset, so no
IndexError or UnicodeDecodeError can leave the reader.
"""

from __future__ import annotations

import mmap

from wasmctl.errors import WasmParseError

Buffer = bytes | bytearray | memoryview | mmap.mmap


class Reader:
    """Reads `data[pos:end]`; offsets in errors are absolute positions in `data`."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: Buffer, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def error(self, message: str, offset: int | None = None) -> WasmParseError:
        """An error located at `offset`, or at the current position."""
        return WasmParseError(message, self.pos if offset is None else offset)

    @property
    def remaining(self) -> int:
        """Bytes left before `end`."""
        return self.end - self.pos

    def at_end(self) -> bool:
        """True when nothing is left to read."""
        return self.pos >= self.end

    def byte(self) -> int:
        """One byte."""
        if self.pos >= self.end:
            raise self.error("unexpected end of data")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def peek(self) -> int | None:
        """The next byte without consuming it, or None at the end."""
        return self.data[self.pos] if self.pos < self.end else None

    def bytes(self, count: int) -> bytes:
        """`count` raw bytes."""
        if count > self.end - self.pos:
            raise self.error(f"unexpected end of data: need {count} bytes, have {self.remaining}")
        start = self.pos
        self.pos += count
        return bytes(self.data[start : self.pos])

    def skip(self, count: int) -> None:
        """Skip `count` bytes."""
        if count > self.end - self.pos:
            raise self.error(f"unexpected end of data: need {count} bytes, have {self.remaining}")
        self.pos += count

    def uleb(self, bits: int = 32) -> int:
        """An unsigned LEB128 integer of at most `bits` bits."""
        start = self.pos
        result = 0
        shift = 0
        data = self.data
        end = self.end
        max_bytes = (bits + 6) // 7
        for _ in range(max_bytes):
            if self.pos >= end:
                raise self.error("unexpected end of data in an integer", start)
            b = data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                if result >> bits:
                    raise self.error(f"integer too large for u{bits}", start)
                return result
            shift += 7
        raise self.error(f"integer representation too long for u{bits}", start)

    def sleb(self, bits: int) -> int:
        """A signed LEB128 integer of at most `bits` bits."""
        start = self.pos
        result = 0
        shift = 0
        for _ in range((bits + 6) // 7):
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    result -= 1 << shift
                if not -(1 << (bits - 1)) <= result < (1 << (bits - 1)):
                    raise self.error(f"integer out of range for s{bits}", start)
                return result
        raise self.error(f"integer representation too long for s{bits}", start)

    def name(self) -> str:
        """A length-prefixed UTF-8 name."""
        length = self.uleb()
        start = self.pos
        raw = self.bytes(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.error("name is not valid UTF-8", start + e.start) from None

    def count(self, what: str, limit: int, min_item_size: int = 1) -> int:
        """A vector length, refused when the rest of the data could not hold that many items."""
        start = self.pos
        n = self.uleb()
        if n > limit:
            raise self.error(f"too many {what}: {n} (limit {limit})", start)
        if n * min_item_size > self.remaining:
            raise self.error(f"{what} count {n} exceeds the {self.remaining} bytes left", start)
        return n

    def sub(self, size: int) -> Reader:
        """A reader over the next `size` bytes; this reader moves past them."""
        if size > self.end - self.pos:
            raise self.error(f"section of {size} bytes runs past the end ({self.remaining} left)")
        start = self.pos
        self.pos += size
        return Reader(self.data, start, start + size)
