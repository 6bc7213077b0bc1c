"""Making untrusted text safe to show on a terminal."""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """`text` with control, format (bidi overrides) and unassigned characters escaped.

    Import names and file names come from untrusted modules; written raw they could move the
    cursor, recolour the terminal or reorder what the reader sees.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == " " or unicodedata.category(ch)[0] not in ("C", "Z"):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)
