"""Frozen values that describe a parsed WebAssembly module or component."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ModuleKind(enum.StrEnum):
    """A core module (layer 0) or a component (layer 1)."""

    MODULE = "module"
    COMPONENT = "component"


class ExternKind(enum.StrEnum):
    """What an import or export is.

    Core modules use func, table, memory, global and tag. Components use func, value, type,
    component, instance and module (a core module), plus the core sorts a component may name
    in an export (`core func` ...), which validation rejects but a reader still reports.
    """

    FUNC = "func"
    TABLE = "table"
    MEMORY = "memory"
    GLOBAL = "global"
    TAG = "tag"
    VALUE = "value"
    TYPE = "type"
    COMPONENT = "component"
    INSTANCE = "instance"
    MODULE = "module"
    CORE_FUNC = "core func"
    CORE_TABLE = "core table"
    CORE_MEMORY = "core memory"
    CORE_GLOBAL = "core global"
    CORE_TAG = "core tag"
    CORE_TYPE = "core type"
    CORE_INSTANCE = "core instance"


@dataclass(frozen=True, slots=True)
class ImportEntry:
    """One import.

    For a core module `module` and `name` are the two-level name. For a component-level
    import the whole import name (`wasi:sockets/tcp@0.2.0`) is in `module` and `name` is
    empty. `compact` marks an item that came from a compact import group (0x7F / 0x7E).
    """

    module: str
    name: str
    kind: ExternKind
    offset: int
    shared: bool = False
    compact: bool = False

    @property
    def display_name(self) -> str:
        """`module:name` for a core import, the import name for a component-level one."""
        return f"{self.module}:{self.name}" if self.name else self.module


@dataclass(frozen=True, slots=True)
class ExportEntry:
    """One export: its name, kind, and the index it exports in that kind's index space."""

    name: str
    kind: ExternKind
    offset: int
    index: int = 0


@dataclass(frozen=True, slots=True)
class Section:
    """A section header: `offset` is where its payload starts, `size` the payload length."""

    id: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class CustomSection:
    """A custom section: its name, where its payload (after the name) starts, and its size.

    `error` is set when a section wasmctl decodes (`name`, `producers`, `target_features`)
    has a malformed payload: engines ignore custom sections, so this does not fail the parse.
    """

    name: str
    offset: int
    size: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ProducerValue:
    """One tool or language named in a `producers` field, with its version (may be empty)."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class ProducerField:
    """A `producers` field: `language`, `processed-by` or `sdk`, and its values."""

    name: str
    values: tuple[ProducerValue, ...]


@dataclass(frozen=True, slots=True)
class TargetFeature:
    """A `target_features` entry: prefix `+` (used), `-` (disallowed) or `=` (required)."""

    prefix: str
    name: str


@dataclass(frozen=True, slots=True)
class Module:
    """A parsed core module or component.

    `offset` and `size` locate it in the buffer it was read from (a nested module's bytes are
    `data[offset:offset + size]`); every other offset is absolute in that buffer too.
    `nested` holds a component's core modules and components, in binary order.
    """

    kind: ModuleKind
    offset: int
    size: int
    version: int
    sections: tuple[Section, ...]
    imports: tuple[ImportEntry, ...]
    exports: tuple[ExportEntry, ...]
    custom_sections: tuple[CustomSection, ...]
    start: int | None = None
    name: str | None = None
    producers: tuple[ProducerField, ...] = ()
    target_features: tuple[TargetFeature, ...] = ()
    nested: tuple[Module, ...] = field(default=())

    @property
    def is_component(self) -> bool:
        """True for a component."""
        return self.kind is ModuleKind.COMPONENT

    def walk(self) -> list[tuple[str, Module]]:
        """This module and every nested one, depth first, with a path such as `/1/0`."""
        out: list[tuple[str, Module]] = [("", self)]
        for i, child in enumerate(self.nested):
            out.extend((f"/{i}{path}", m) for path, m in child.walk())
        return out
