"""The section walker: a core module or component in, a frozen `Module` out.

Only what a supply-chain tool needs is decoded: the preamble, section headers, imports,
exports, start, custom section names and the small custom sections `name`, `producers` and
`target_features`. The other core sections are walked entry by entry by their encoded sizes
(`_entries`), so a declared count must agree with the bytes, but nothing in them is kept:
function bodies and data segments are skipped by their size prefixes, and the work is
O(sections + entries), not O(file). A component's other sections are checked as far as
their leading count.

Sources: the core binary format (WebAssembly spec §5), the compact import section proposal
(WebAssembly/compact-import-section, Overview.md: `module "" 0x7F vec(name externtype)` and
`module "" 0x7E externtype vec(name)`), and the component model's Binary.md (version 0x0d,
layer 1; `nameattributes`, `externtype`, `sortidx`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from wasmctl._files import open_regular
from wasmctl.errors import InputError, WasmParseError
from wasmctl.wasm import _entries, custom
from wasmctl.wasm._entries import global_mutability, limits, reftype, skip_const_expr, valtype
from wasmctl.wasm._reader import Buffer, Reader
from wasmctl.wasm.model import (
    CustomSection,
    ExportEntry,
    ExternKind,
    ImportEntry,
    Module,
    ModuleKind,
    ProducerField,
    Section,
    TargetFeature,
)

MAGIC = b"\x00asm"
CORE_VERSION = 1
COMPONENT_VERSION = 0x0D

MAX_NESTING = 64
MAX_NESTED_TOTAL = 10_000
MAX_SECTIONS = 100_000
MAX_IMPORTS = 1_000_000
MAX_EXPORTS = 1_000_000
MAX_SECTION_ENTRIES = 1 << 32

# The order non-custom core sections must appear in (the tag section, id 13, sits between
# memory and global: exception-handling proposal). Each may appear at most once.
_CORE_SECTION_RANK = {
    1: 1,
    2: 2,
    3: 3,
    4: 4,
    5: 5,
    13: 6,
    6: 7,
    7: 8,
    8: 9,
    9: 10,
    12: 11,
    10: 12,
    11: 13,
}
_COMPONENT_SECTION_IDS = range(13)
# Component sections that are a vector (core instance, core type, instance, alias, type,
# canon, value): their count is checked against their size, their entries are not walked.
_COMPONENT_VECTOR_SECTIONS = {2: "core instances", 3: "core types", 5: "instances",
                              6: "aliases", 7: "types", 8: "canonical functions",
                              12: "values"}  # fmt: skip
# Core sections walked entry by entry (see `_entries`); imports, exports, start, function,
# code, data and data count are handled in `_parse_core` itself.
_CORE_WALKERS: dict[int, Callable[[Reader], None]] = {
    1: _entries.type_section,
    4: _entries.table_section,
    5: _entries.memory_section,
    6: _entries.global_section,
    9: _entries.element_section,
    13: _entries.tag_section,
}

_CORE_EXPORT_KINDS = {
    0: ExternKind.FUNC,
    1: ExternKind.TABLE,
    2: ExternKind.MEMORY,
    3: ExternKind.GLOBAL,
    4: ExternKind.TAG,
}
_CORE_SORTS = {
    0x00: ExternKind.CORE_FUNC,
    0x01: ExternKind.CORE_TABLE,
    0x02: ExternKind.CORE_MEMORY,
    0x03: ExternKind.CORE_GLOBAL,
    0x04: ExternKind.CORE_TAG,
    0x10: ExternKind.CORE_TYPE,
    0x11: ExternKind.MODULE,
    0x12: ExternKind.CORE_INSTANCE,
}
_COMPONENT_SORTS = {
    0x01: ExternKind.FUNC,
    0x02: ExternKind.VALUE,
    0x03: ExternKind.TYPE,
    0x04: ExternKind.COMPONENT,
    0x05: ExternKind.INSTANCE,
}


def parse(data: Buffer) -> Module:
    """Parse a whole buffer holding one module or component."""
    r = Reader(data)
    module = _parse_binary(r, _Budget(), depth=0, expect=None)
    if not r.at_end():
        raise r.error("trailing bytes after the module")
    return module


def parse_file(path: str | os.PathLike[str]) -> Module:
    """Parse a file through a memory map (only the pages that are read are touched)."""
    with open_binary(path) as data:
        try:
            return parse(data)
        except WasmParseError as e:
            raise e.in_file(os.fsdecode(path)) from None


@contextlib.contextmanager
def open_binary(path: str | os.PathLike[str]) -> Iterator[Buffer]:
    """Map a file read-only; an empty file gives `b""`. OS errors become `InputError`."""
    try:
        with open_regular(path, "module") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                yield b""
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                yield mapped
    except IsADirectoryError:
        raise InputError(f"{os.fsdecode(path)}: is a directory") from None
    except OSError as e:
        raise InputError(f"cannot read {os.fsdecode(path)}: {e.strerror or e}") from None


@dataclass
class _Budget:
    """Counts shared by a whole parse, so nesting cannot multiply the limits."""

    nested: int = 0


def _parse_binary(r: Reader, budget: _Budget, depth: int, expect: ModuleKind | None) -> Module:
    start = r.pos
    if r.remaining < 8:
        raise _not_wasm(r, "too short to be a WebAssembly binary")
    if r.bytes(4) != MAGIC:
        raise _not_wasm(r, "not a WebAssembly binary (bad magic number)", start)
    version_at = r.pos
    version = r.byte() | r.byte() << 8
    layer = r.byte() | r.byte() << 8
    if layer == 0 and version == CORE_VERSION:
        kind = ModuleKind.MODULE
    elif layer == 1 and version == COMPONENT_VERSION:
        kind = ModuleKind.COMPONENT
    elif layer == 1:
        raise WasmParseError(
            f"unsupported component binary version 0x{version:x} (wasmctl reads 0x0d)",
            version_at,
        )
    else:
        raise WasmParseError(f"unsupported WebAssembly version {version | layer << 16}", version_at)
    if expect is not None and kind is not expect:
        raise WasmParseError(f"expected a nested {expect}, found a {kind}", start)
    if kind is ModuleKind.MODULE:
        return _parse_core(r, start, version)
    return _parse_component(r, start, version, budget, depth)


def _not_wasm(r: Reader, message: str, offset: int | None = None) -> WasmParseError:
    head = bytes(r.data[0:16]).lstrip()
    hint = None
    if head.startswith((b"(module", b"(component", b";;", b"(;")):
        hint = "this looks like WebAssembly text; compile it first: wasm-tools parse FILE.wat"
    return WasmParseError(message, r.pos if offset is None else offset, hint=hint)


class _SectionSink:
    """What the section loops of core modules and components collect."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.imports: list[ImportEntry] = []
        self.exports: list[ExportEntry] = []
        self.customs: list[CustomSection] = []
        self.name: str | None = None
        self.producers: tuple[ProducerField, ...] = ()
        self.features: tuple[TargetFeature, ...] = ()

    def module(
        self,
        kind: ModuleKind,
        start: int,
        end: int,
        version: int,
        *,
        start_func: int | None = None,
        nested: tuple[Module, ...] = (),
    ) -> Module:
        """The frozen result of a section walk over `data[start:end]`."""
        return Module(
            kind=kind,
            offset=start,
            size=end - start,
            version=version,
            sections=tuple(self.sections),
            imports=tuple(self.imports),
            exports=tuple(self.exports),
            custom_sections=tuple(self.customs),
            start=start_func,
            name=self.name,
            producers=self.producers,
            target_features=self.features,
            nested=nested,
        )

    def custom(self, body: Reader, *, component: bool) -> None:
        section_name = body.name()
        payload = Reader(body.data, body.pos, body.end)
        decoder: Callable[[Reader], None] | None = None
        if section_name == ("component-name" if component else "name"):
            decoder = self._set_name
        elif section_name == "producers":
            decoder = self._set_producers
        elif section_name == "target_features" and not component:
            decoder = self._set_features
        error = None
        if decoder is not None:
            try:
                decoder(payload)
            except WasmParseError as e:
                error = str(e)
        self.customs.append(CustomSection(section_name, body.pos, body.remaining, error))

    def _set_name(self, r: Reader) -> None:
        self.name = custom.read_module_name(r)

    def _set_producers(self, r: Reader) -> None:
        self.producers = custom.read_producers(r)

    def _set_features(self, r: Reader) -> None:
        self.features = custom.read_target_features(r)


def _sections(r: Reader) -> Iterator[tuple[int, int, Reader]]:
    """Yield (id, header offset, payload reader) for each section until the end of `r`."""
    count = 0
    while not r.at_end():
        at = r.pos
        section_id = r.byte()
        size = r.uleb()
        count += 1
        if count > MAX_SECTIONS:
            raise r.error(f"too many sections (limit {MAX_SECTIONS})", at)
        yield section_id, at, r.sub(size)


def _parse_core(r: Reader, start: int, version: int) -> Module:
    sink = _SectionSink()
    start_func: int | None = None
    last_rank = 0
    functions = bodies = segments = 0
    code_at: int | None = None
    data_count: int | None = None
    for section_id, at, body in _sections(r):
        sink.sections.append(Section(section_id, body.pos, body.remaining))
        if section_id == 0:
            sink.custom(body, component=False)
            continue
        rank = _CORE_SECTION_RANK.get(section_id)
        if rank is None:
            raise r.error(f"unknown section id {section_id}", at)
        if rank <= last_rank:
            raise r.error(f"section id {section_id} out of order or repeated", at)
        last_rank = rank
        if section_id == 2:
            _core_imports(body, sink.imports)
        elif section_id == 7:
            _core_exports(body, sink.exports)
        elif section_id == 8:
            start_func = body.uleb()
        elif section_id == 3:
            functions = _entries.function_section(body)
        elif section_id == 10:
            code_at = at
            bodies = _entries.code_section(body)
        elif section_id == 11:
            segments = _entries.data_section(body)
            if data_count is not None and segments != data_count:
                raise body.error(
                    f"data section has {segments} segments, the data count section says "
                    f"{data_count}",
                    at,
                )
        elif section_id == 12:
            data_count = _entries.datacount_section(body)
        else:
            _CORE_WALKERS[section_id](body)
        if not body.at_end():
            raise body.error(f"section id {section_id} is longer than its contents")
    if functions != bodies:
        raise r.error(
            f"{functions} functions declared but {bodies} function bodies given",
            r.pos if code_at is None else code_at,
        )
    if data_count is not None and segments != data_count:  # and no data section at all
        raise r.error(f"data count section says {data_count} segments; there is no data section")
    return sink.module(ModuleKind.MODULE, start, r.pos, version, start_func=start_func)


def _core_imports(r: Reader, out: list[ImportEntry]) -> None:
    for _ in range(r.count("imports", MAX_IMPORTS, 3)):
        at = r.pos
        module = r.name()
        name = r.name()
        form = r.peek() if name == "" else None
        if form == 0x7F:  # compact group: each item has its own type
            r.byte()
            for _ in range(r.count("compact import items", MAX_IMPORTS, 2)):
                item_at = r.pos
                item = r.name()
                kind, shared = _core_externtype(r)
                out.append(ImportEntry(module, item, kind, item_at, shared, compact=True))
        elif form == 0x7E:  # compact group: one type shared by every item
            r.byte()
            kind, shared = _core_externtype(r)
            for _ in range(r.count("compact import items", MAX_IMPORTS, 1)):
                item_at = r.pos
                out.append(ImportEntry(module, r.name(), kind, item_at, shared, compact=True))
        else:
            kind, shared = _core_externtype(r)
            out.append(ImportEntry(module, name, kind, at, shared))
        if len(out) > MAX_IMPORTS:
            raise r.error(f"too many imports (limit {MAX_IMPORTS})", at)


def _core_externtype(r: Reader) -> tuple[ExternKind, bool]:
    """Read an import description; returns its kind and whether a memory is shared."""
    at = r.pos
    tag = r.byte()
    if tag == 0x00:
        r.uleb()
        return ExternKind.FUNC, False
    if tag == 0x01:
        reftype(r)
        limits(r)
        return ExternKind.TABLE, False
    if tag == 0x02:
        return ExternKind.MEMORY, limits(r)
    if tag == 0x03:
        valtype(r)
        global_mutability(r)
        return ExternKind.GLOBAL, False
    if tag == 0x04:
        if r.byte() != 0x00:
            raise r.error("bad tag attribute (expected 0x00)", at + 1)
        r.uleb()
        return ExternKind.TAG, False
    raise r.error(f"unknown import kind 0x{tag:02x}", at)


def _core_exports(r: Reader, out: list[ExportEntry]) -> None:
    for _ in range(r.count("exports", MAX_EXPORTS, 3)):
        at = r.pos
        name = r.name()
        kind_at = r.pos
        kind = _CORE_EXPORT_KINDS.get(r.byte())
        if kind is None:
            raise r.error("unknown export kind", kind_at)
        out.append(ExportEntry(name, kind, at, r.uleb()))


def _parse_component(r: Reader, start: int, version: int, budget: _Budget, depth: int) -> Module:
    if depth >= MAX_NESTING:
        raise r.error(f"components nested deeper than {MAX_NESTING} levels", start)
    sink = _SectionSink()
    nested: list[Module] = []
    for section_id, at, body in _sections(r):
        sink.sections.append(Section(section_id, body.pos, body.remaining))
        if section_id not in _COMPONENT_SECTION_IDS:
            raise r.error(f"unknown component section id {section_id}", at)
        if section_id == 0:
            sink.custom(body, component=True)
            continue
        if section_id in (1, 4):
            budget.nested += 1
            if budget.nested > MAX_NESTED_TOTAL:
                raise r.error(f"more than {MAX_NESTED_TOTAL} nested modules", at)
            expect = ModuleKind.MODULE if section_id == 1 else ModuleKind.COMPONENT
            nested.append(_parse_binary(body, budget, depth + 1, expect))
        elif section_id == 10:
            _component_imports(body, sink.imports)
        elif section_id == 11:
            _component_exports(body, sink.exports)
        elif section_id in _COMPONENT_VECTOR_SECTIONS:
            body.count(_COMPONENT_VECTOR_SECTIONS[section_id], MAX_SECTION_ENTRIES)
            continue
        else:
            continue
        if not body.at_end():
            raise body.error(f"section id {section_id} is longer than its contents")
    return sink.module(ModuleKind.COMPONENT, start, r.pos, version, nested=tuple(nested))


def _extern_name(r: Reader) -> str:
    """Read `nameattributes`; a `versionsuffix` attribute is appended to the name."""
    at = r.pos
    form = r.byte()
    if form in (0x00, 0x01):
        return r.name()
    if form != 0x02:
        raise r.error(f"bad import/export name form 0x{form:02x}", at)
    name = r.name()
    for _ in range(r.count("name attributes", 1_000, 2)):
        attr_at = r.pos
        attr = r.byte()
        if attr not in (0x00, 0x01, 0x02):
            raise r.error(f"unknown name attribute 0x{attr:02x}", attr_at)
        value = r.name()
        if attr == 0x01 and "@" not in name:
            name += value if value.startswith("@") else f"@{value}"
    return name


def _component_externtype(r: Reader) -> ExternKind:
    at = r.pos
    tag = r.byte()
    if tag == 0x00:
        if r.byte() != 0x11:
            raise r.error("bad core extern type (expected module 0x11)", at + 1)
        r.uleb()
        return ExternKind.MODULE
    if tag == 0x02:
        # Binary.md writes a `valuebound` here, but wasm-tools (wasmparser) reads and writes a
        # bare `valtype`: a primitive (negative s33) or a type index. Follow the tools.
        r.sleb(33)
        return ExternKind.VALUE
    if tag == 0x03:
        bound = r.byte()
        if bound == 0x00:
            r.uleb()
        elif bound != 0x01:
            raise r.error("bad type bound", at + 1)
        return ExternKind.TYPE
    kind = {0x01: ExternKind.FUNC, 0x04: ExternKind.COMPONENT, 0x05: ExternKind.INSTANCE}.get(tag)
    if kind is None:
        raise r.error(f"unknown extern type 0x{tag:02x}", at)
    r.uleb()
    return kind


def _component_imports(r: Reader, out: list[ImportEntry]) -> None:
    for _ in range(r.count("imports", MAX_IMPORTS, 3)):
        at = r.pos
        name = _extern_name(r)
        out.append(ImportEntry(name, "", _component_externtype(r), at))


def _component_exports(r: Reader, out: list[ExportEntry]) -> None:
    for _ in range(r.count("exports", MAX_EXPORTS, 4)):
        at = r.pos
        name = _extern_name(r)
        sort_at = r.pos
        sort = r.byte()
        kind = _CORE_SORTS.get(r.byte()) if sort == 0x00 else _COMPONENT_SORTS.get(sort)
        if kind is None:
            raise r.error("unknown export sort", sort_at)
        index = r.uleb()
        has_type_at = r.pos
        has_type = r.byte()
        if has_type == 0x01:
            _component_externtype(r)
        elif has_type != 0x00:
            raise r.error("bad optional export type flag", has_type_at)
        out.append(ExportEntry(name, kind, at, index))


def exported_i32_global(data: Buffer, module: Module, export: str) -> int | None:
    """The `i32.const` initial value of an exported, module-defined global, if it has one.

    OPA records its Wasm ABI version this way (`opa_wasm_abi_version`). Only the global
    section is read, up to the global wanted.
    """
    entry = next(
        (e for e in module.exports if e.name == export and e.kind is ExternKind.GLOBAL), None
    )
    section = next((s for s in module.sections if s.id == 6), None)
    if entry is None or section is None or module.is_component:
        return None
    position = entry.index - sum(1 for i in module.imports if i.kind is ExternKind.GLOBAL)
    if position < 0:
        return None  # an imported global: its value is the host's
    r = Reader(data, section.offset, section.offset + section.size)
    for i in range(r.count("globals", MAX_IMPORTS, 3)):
        valtype(r)
        r.byte()
        if i == position:
            return r.sleb(32) if r.byte() == 0x41 else None  # i32.const
        skip_const_expr(r)
    return None
