"""`inspect`: describe a module or component as data (`wasmctl.inspect/v1`) or a table.

The JSON shape is documented in docs/inspect-json.md.
"""

from __future__ import annotations

import enum
import hashlib
import os
from typing import TYPE_CHECKING, Any

from wasmctl.errors import WasmParseError

if TYPE_CHECKING:
    from wasmctl.wasm._reader import Buffer
    from wasmctl.wasm.model import Module

SCHEMA = "wasmctl.inspect/v1"


class InspectFormat(enum.StrEnum):
    """The output formats of `wasmctl inspect`: a table, or `wasmctl.inspect/v1` JSON.

    The parser and the capability table are imported where they are used, so the command
    line can read this enum for its --help without loading them.
    """

    TABLE = "table"
    JSON = "json"


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a file and describe it, nested modules included, with their hashes."""
    from wasmctl.wasm.parser import open_binary, parse

    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    with open_binary(path) as data:
        try:
            module = parse(data)
        except WasmParseError as e:
            raise e.in_file(shown) from None
        described = describe(module, data)
    return {"schema": SCHEMA, "path": shown, **described}


def describe(module: Module, data: Buffer) -> dict[str, Any]:
    """A parsed module as JSON-ready data; `data` is the buffer it was parsed from."""
    from wasmctl.scan.capabilities import classify_export, classify_import

    with memoryview(data) as view, view[module.offset : module.offset + module.size] as part:
        digest = hashlib.sha256(part).hexdigest()
    out: dict[str, Any] = {
        "kind": module.kind.value,
        "size": module.size,
        "sha256": digest,
        "offset": module.offset,
        "version": module.version,
        "name": module.name,
        "imports": [
            {
                "module": e.module,
                "name": e.name,
                "kind": e.kind.value,
                "capability": classify_import(e).value,
                **({"shared": True} if e.shared else {}),
                **({"compact": True} if e.compact else {}),
            }
            for e in module.imports
        ],
        "exports": [
            {
                "name": e.name,
                "kind": e.kind.value,
                **({"capability": c.value} if (c := classify_export(e)) else {}),
            }
            for e in module.exports
        ],
        "start": module.start,
        "custom_sections": [
            {"name": c.name, "size": c.size, **({"error": c.error} if c.error else {})}
            for c in module.custom_sections
        ],
        "producers": {
            f.name: [{"name": v.name, "version": v.version} for v in f.values]
            for f in module.producers
        },
        "target_features": [f"{f.prefix}{f.name}" for f in module.target_features],
        "sections": _section_counts(module),
    }
    if module.is_component:
        out["nested"] = [describe(child, data) for child in module.nested]
    return out


_CORE_NAMES = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
               6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
               12: "datacount", 13: "tag"}  # fmt: skip
_COMPONENT_NAMES = {0: "custom", 1: "core module", 2: "core instance", 3: "core type",
                    4: "component", 5: "instance", 6: "alias", 7: "type", 8: "canon",
                    9: "start", 10: "import", 11: "export", 12: "value"}  # fmt: skip


def _section_counts(module: Module) -> list[dict[str, Any]]:
    names = _COMPONENT_NAMES if module.is_component else _CORE_NAMES
    return [
        {"id": s.id, "name": names.get(s.id, "unknown"), "size": s.size} for s in module.sections
    ]
