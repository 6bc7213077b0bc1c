"""Parsing JSON that came from outside (files, registries, bundles) with a depth bound.

`json.loads` recurses once per nesting level: a document nested 100,000 deep raises
RecursionError, which would surface as a bug (exit 4) instead of bad input (exit 2). No
document wasmctl reads (manifests, indexes, bundles, trust roots, docker config, policies)
comes near `MAX_DEPTH`; anything deeper is refused with the caller's error class.
"""

from __future__ import annotations

import json
from typing import Any

from wasmctl.errors import InputError, WasmctlError

MAX_DEPTH = 100


def loads(
    raw: bytes | str,
    what: str,
    error: type[WasmctlError] = InputError,
    *,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """The parsed document; `error(...)` naming `what` when it is not JSON or is nested
    deeper than `max_depth` levels."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise error(f"{what} is nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{what} is not JSON: {e}") from None
    # a document with no more openers than the bound cannot nest past it (most manifests,
    # bundles and answers): the walk is only for the rest
    openers = (
        raw.count("[") + raw.count("{")
        if isinstance(raw, str)
        else (raw.count(b"[") + raw.count(b"{"))
    )
    if openers > max_depth and too_deep(data, max_depth):
        raise error(f"{what} is nested deeper than {max_depth} levels")
    return data


def too_deep(data: Any, max_depth: int = MAX_DEPTH) -> bool:
    """True when lists and objects in `data` nest more than `max_depth` levels (iterative,
    so the check itself cannot run out of stack)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
