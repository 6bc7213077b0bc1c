"""Writing WebAssembly bytes by hand, for inputs WAT cannot express (or must not: broken ones)."""

from __future__ import annotations

from collections.abc import Sequence

CORE_PREAMBLE = b"\x00asm\x01\x00\x00\x00"
COMPONENT_PREAMBLE = b"\x00asm\x0d\x00\x01\x00"


def uleb(value: int) -> bytes:
    """An unsigned LEB128 integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def name(text: str | bytes) -> bytes:
    """A length-prefixed name (bytes are written as given, so invalid UTF-8 is possible)."""
    raw = text.encode() if isinstance(text, str) else text
    return uleb(len(raw)) + raw


def vec(items: Sequence[bytes]) -> bytes:
    """A vector: count, then the items."""
    return uleb(len(items)) + b"".join(items)


def section(section_id: int, body: bytes) -> bytes:
    """A section with its id and size."""
    return bytes([section_id]) + uleb(len(body)) + body


def vec_section(section_id: int, *entries: bytes) -> bytes:
    """A section whose body is a vector of `entries`."""
    return section(section_id, vec(entries))


def custom_section(section_name: str, payload: bytes) -> bytes:
    """A custom section (id 0)."""
    return section(0, name(section_name) + payload)


def producers_payload(fields: dict[str, list[tuple[str, str]]]) -> bytes:
    """The payload of a `producers` section."""
    return vec(
        [
            name(field) + vec([name(n) + name(v) for n, v in values])
            for field, values in fields.items()
        ]
    )


def target_features_payload(features: Sequence[str]) -> bytes:
    """The payload of a `target_features` section: entries like `+simd128`."""
    return vec([f[0].encode() + name(f[1:]) for f in features])


def component(*sections: bytes) -> bytes:
    """A component from its sections."""
    return COMPONENT_PREAMBLE + b"".join(sections)


def core_module(*sections: bytes) -> bytes:
    """A core module from its sections."""
    return CORE_PREAMBLE + b"".join(sections)
