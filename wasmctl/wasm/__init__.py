"""The WebAssembly reader: bytes in, frozen values out; no I/O beyond a memory map.

`parse(data)` reads a core module or a component (layer 1, version 0x0d) with every nested
module and component; `parse_file(path)` does the same through `mmap`. Any malformed input
raises `wasmctl.errors.WasmParseError` naming the byte offset.
"""

from wasmctl.wasm.model import (
    CustomSection,
    ExportEntry,
    ExternKind,
    ImportEntry,
    Module,
    ModuleKind,
    ProducerField,
    ProducerValue,
    Section,
    TargetFeature,
)
from wasmctl.wasm.parser import open_binary, parse, parse_file

__all__ = [
    "CustomSection",
    "ExportEntry",
    "ExternKind",
    "ImportEntry",
    "Module",
    "ModuleKind",
    "ProducerField",
    "ProducerValue",
    "Section",
    "TargetFeature",
    "open_binary",
    "parse",
    "parse_file",
]
