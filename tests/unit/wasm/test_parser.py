"""The reader: what it decodes from modules and components, and how it refuses bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import wasmbytes as wb
from wasmctl.errors import InputError, WasmParseError
from wasmctl.wasm import ExternKind, ModuleKind, parse, parse_file

Wat = Callable[[str], Path]


def test_core_imports_of_every_kind(wat: Wat) -> None:
    module = parse_file(
        wat(
            """(module
              (type (func (param i32)))
              (import "a" "f" (func (type 0)))
              (import "a" "t" (table 1 funcref))
              (import "a" "m" (memory 1 2 shared))
              (import "a" "m64" (memory i64 1))
              (import "a" "g" (global (mut i32)))
              (import "a" "e" (tag (param i32))))"""
        )
    )
    assert [(i.module, i.name, i.kind) for i in module.imports] == [
        ("a", "f", ExternKind.FUNC),
        ("a", "t", ExternKind.TABLE),
        ("a", "m", ExternKind.MEMORY),
        ("a", "m64", ExternKind.MEMORY),
        ("a", "g", ExternKind.GLOBAL),
        ("a", "e", ExternKind.TAG),
    ]
    assert [i.shared for i in module.imports] == [False, False, True, False, False, False]


def test_compact_item_group_yields_one_import_per_item(wat: Wat) -> None:
    module = parse_file(
        wat(
            """(module
              (import "wasi_snapshot_preview1"
                (item "sock_accept" (func (param i32 i32 i32) (result i32)))
                (item "path_open" (func)))
              (import "env" "plain" (func)))"""
        )
    )
    assert [(i.display_name, i.compact) for i in module.imports] == [
        ("wasi_snapshot_preview1:sock_accept", True),
        ("wasi_snapshot_preview1:path_open", True),
        ("env:plain", False),
    ]


def test_compact_shared_type_group_is_read() -> None:
    group = wb.name("wasi_snapshot_preview1") + wb.name("") + b"\x7e\x00\x00"
    group += wb.vec([wb.name("sock_accept"), wb.name("sock_recv")])
    module = parse(
        wb.core_module(wb.section(1, wb.vec([b"\x60\x00\x00"])), wb.section(2, wb.vec([group])))
    )
    assert [i.name for i in module.imports] == ["sock_accept", "sock_recv"]
    assert {i.kind for i in module.imports} == {ExternKind.FUNC}


def test_empty_field_name_without_a_compact_marker_is_an_ordinary_import() -> None:
    entry = wb.name("m") + wb.name("") + b"\x00\x00"
    module = parse(
        wb.core_module(wb.section(1, wb.vec([b"\x60\x00\x00"])), wb.section(2, wb.vec([entry])))
    )
    assert [(i.module, i.name, i.compact) for i in module.imports] == [("m", "", False)]


def test_exports_and_start(wat: Wat) -> None:
    module = parse_file(
        wat(
            """(module
              (func $f) (table 1 funcref) (memory 1) (global i32 (i32.const 0)) (tag $e)
              (export "f" (func $f)) (export "t" (table 0)) (export "m" (memory 0))
              (export "g" (global 0)) (export "e" (tag $e))
              (start $f))"""
        )
    )
    assert [(e.name, e.kind) for e in module.exports] == [
        ("f", ExternKind.FUNC),
        ("t", ExternKind.TABLE),
        ("m", ExternKind.MEMORY),
        ("g", ExternKind.GLOBAL),
        ("e", ExternKind.TAG),
    ]
    assert module.start == 0


def test_custom_sections_are_listed_and_decoded(wat: Wat) -> None:
    base = wat('(module (func $only) (export "run" (func $only)))').read_bytes()
    producers = wb.producers_payload(
        {"language": [("Rust", "")], "processed-by": [("rustc", "1.88.0")]}
    )
    features = wb.target_features_payload(["+simd128", "-atomics"])
    data = (
        base
        + wb.custom_section("producers", producers)
        + wb.custom_section("target_features", features)
        + wb.custom_section(".debug_info", b"\x01" * 300)
    )
    module = parse(data)
    assert [(c.name, c.size) for c in module.custom_sections][-3:] == [
        ("producers", len(producers)),
        ("target_features", len(features)),
        (".debug_info", 300),
    ]
    assert [(f.name, [(v.name, v.version) for v in f.values]) for f in module.producers] == [
        ("language", [("Rust", "")]),
        ("processed-by", [("rustc", "1.88.0")]),
    ]
    assert [(f.prefix, f.name) for f in module.target_features] == [
        ("+", "simd128"),
        ("-", "atomics"),
    ]


def test_module_name_comes_from_the_name_section(wat: Wat) -> None:
    assert parse_file(wat("(module $calculator (func $add))")).name == "calculator"


def test_a_malformed_producers_payload_is_recorded_not_fatal(wat: Wat) -> None:
    base = wat("(module)").read_bytes()
    module = parse(base + wb.custom_section("producers", b"\x05\x01"))
    (section,) = module.custom_sections
    assert section.error is not None and "byte offset" in section.error
    assert module.producers == ()


def test_component_imports_exports_and_nesting(wat: Wat) -> None:
    module = parse_file(
        wat(
            """(component
              (import "wasi:sockets/tcp@0.2.0" (instance))
              (import "run" (func))
              (core module $m
                (import "wasi_snapshot_preview1" "sock_accept"
                  (func (param i32 i32 i32) (result i32))))
              (component $inner
                (import "wasi:cli/stdout@0.2.0" (instance))
                (core module))
              (export "again" (func 0))
              (export "m" (core module $m))
              (export "c" (component $inner)))"""
        )
    )
    assert module.kind is ModuleKind.COMPONENT
    assert [(i.module, i.name, i.kind) for i in module.imports] == [
        ("wasi:sockets/tcp@0.2.0", "", ExternKind.INSTANCE),
        ("run", "", ExternKind.FUNC),
    ]
    assert [(e.name, e.kind) for e in module.exports] == [
        ("again", ExternKind.FUNC),
        ("m", ExternKind.MODULE),
        ("c", ExternKind.COMPONENT),
    ]
    paths = [(path, m.kind) for path, m in module.walk()]
    assert paths == [
        ("", ModuleKind.COMPONENT),
        ("/0", ModuleKind.MODULE),
        ("/1", ModuleKind.COMPONENT),
        ("/1/0", ModuleKind.MODULE),
    ]
    assert module.nested[0].imports[0].display_name == "wasi_snapshot_preview1:sock_accept"
    assert module.nested[1].imports[0].module == "wasi:cli/stdout@0.2.0"


def test_nested_offsets_locate_the_nested_bytes(wat: Wat) -> None:
    path = wat('(component (core module $m (func (export "f"))))')
    data = path.read_bytes()
    inner = parse(data).nested[0]
    assert parse(data[inner.offset : inner.offset + inner.size]).exports[0].name == "f"


def test_component_imports_of_modules_and_component_types(wat: Wat) -> None:
    module = parse_file(
        wat(
            """(component
              (import "lib" (core module))
              (import "plugin" (component))
              (import "res" (type (sub resource))))"""
        )
    )
    assert [i.kind for i in module.imports] == [
        ExternKind.MODULE,
        ExternKind.COMPONENT,
        ExternKind.TYPE,
    ]


# -- refusing bad input ----------------------------------------------------------------------


def test_truncated_module_names_the_offset(wat: Wat) -> None:
    data = wat('(module (import "env" "f" (func)))').read_bytes()
    with pytest.raises(WasmParseError) as caught:
        parse(data[:-3])
    assert 8 <= caught.value.offset <= len(data)
    assert "byte offset" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x00asm\x01\x00", "too short"),
        (b"\x7fELF\x02\x01\x01\x00", "bad magic"),
        (b"\x00asm\x02\x00\x00\x00", "unsupported WebAssembly version"),
        (b"\x00asm\x0e\x00\x01\x00", "unsupported component binary version 0xe"),
    ],
)
def test_not_a_supported_binary(data: bytes, message: str) -> None:
    with pytest.raises(WasmParseError, match=message):
        parse(data)


def test_wat_text_gets_a_hint() -> None:
    with pytest.raises(WasmParseError) as caught:
        parse(b"(module (func))\n")
    assert caught.value.hint is not None and "wasm-tools parse" in caught.value.hint


def test_repeated_import_section_is_refused() -> None:
    imports = wb.section(2, wb.vec([wb.name("env") + wb.name("f") + b"\x00\x00"]))
    types = wb.section(1, wb.vec([b"\x60\x00\x00"]))
    with pytest.raises(WasmParseError, match="out of order or repeated"):
        parse(wb.core_module(types, imports, imports))


def test_unknown_section_id_is_refused() -> None:
    with pytest.raises(WasmParseError, match="unknown section id 14"):
        parse(wb.core_module(wb.section(14, b"")))


def test_section_contents_must_fill_the_section() -> None:
    imports = wb.vec([wb.name("env") + wb.name("f") + b"\x00\x00"]) + b"\x00"
    with pytest.raises(WasmParseError, match="longer than its contents"):
        parse(wb.core_module(wb.section(1, wb.vec([b"\x60\x00\x00"])), wb.section(2, imports)))


def test_import_count_beyond_the_data_fails_fast() -> None:
    with pytest.raises(WasmParseError, match="exceeds"):
        parse(wb.core_module(wb.section(2, wb.uleb(900_000) + b"\x00")))


def test_overlong_leb128_is_refused() -> None:
    with pytest.raises(WasmParseError, match=r"too long|too large"):
        parse(wb.core_module(b"\x02\xff\xff\xff\xff\xff\x01"))


def test_invalid_utf8_name_is_refused_at_its_offset() -> None:
    entry = wb.name(b"\xff\xfe") + wb.name("f") + b"\x00\x00"
    data = wb.core_module(wb.section(2, wb.vec([entry])))
    with pytest.raises(WasmParseError, match="UTF-8") as caught:
        parse(data)
    assert caught.value.offset == data.index(b"\xff\xfe")


def test_unknown_import_kind_is_refused() -> None:
    entry = wb.name("env") + wb.name("f") + b"\x09\x00"
    with pytest.raises(WasmParseError, match="unknown import kind 0x09"):
        parse(wb.core_module(wb.section(2, wb.vec([entry]))))


def test_deep_component_nesting_is_bounded() -> None:
    data = wb.component()
    for _ in range(200):
        data = wb.component(wb.section(4, data))
    with pytest.raises(WasmParseError, match="nested deeper"):
        parse(data)


def test_a_core_module_section_must_hold_a_core_module() -> None:
    with pytest.raises(WasmParseError, match="expected a nested module"):
        parse(wb.component(wb.section(1, wb.component())))


def test_trailing_garbage_after_a_nested_module_is_refused() -> None:
    with pytest.raises(WasmParseError):
        parse(wb.component(wb.section(1, wb.core_module() + b"\x00")))


def test_function_bodies_are_skipped_unread() -> None:
    # A body full of garbage: a validator refuses it, the reader steps over it by its size.
    body = b"\xff" * 1000
    module = parse(
        wb.core_module(
            wb.vec_section(1, b"\x60\x00\x00"),
            wb.vec_section(3, b"\x00"),
            wb.vec_section(10, wb.uleb(len(body)) + body),
        )
    )
    assert module.sections[2].size == 1000 + 2 + 1


def test_parse_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\x00asm\x01\x00\x00\x00\x02\x05")
    with pytest.raises(WasmParseError, match=r"bad\.wasm"):
        parse_file(bad)
    empty = tmp_path / "empty.wasm"
    empty.write_bytes(b"")
    with pytest.raises(WasmParseError, match="too short"):
        parse_file(empty)
    with pytest.raises(InputError, match="is a directory"):
        parse_file(tmp_path)
    with pytest.raises(InputError, match="No such file"):
        parse_file(tmp_path / "missing.wasm")
