"""A section's declared count must agree with its bytes, as wasm-tools holds it to.

A module using every core section (GC types, table initialisers, extended-const globals,
all element and data segment forms, tags, a data count) is compiled by wasm-tools; then
each section's count is made one more, one less and 0xFFFFFFFF, and its body one byte
longer and one shorter. wasm-tools refuses every variant; wasmctl must too. (The start
section holds an index, not a count: changing it is invalid, not malformed.)
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests import wasmbytes as wb
from tests.corpus import compile_wat
from wasmctl.errors import WasmParseError
from wasmctl.wasm import parse
from wasmctl.wasm._reader import Reader

RICH = """(module
  (type $ft (func (param i32) (result i32)))
  (type $s (struct (field i32) (field (mut i64))))
  (type $a (array (mut i8)))
  (rec (type $r1 (func)) (type $r2 (sub (func))))
  (type $sub (sub $r2 (func)))
  (import "env" "f" (func (type $ft)))
  (func $g (type $ft) local.get 0)
  (func $h (data.drop 1))
  (table $t1 2 funcref)
  (table $t2 1 (ref null func) (ref.null func))
  (memory 1)
  (tag $e (param i32))
  (global i32 (i32.const 42))
  (global i64 (i64.add (i64.const 1) (i64.const 2)))
  (global (ref null $s) (struct.new $s (i32.const 1) (i64.const 2)))
  (global v128 (v128.const i32x4 1 2 3 4))
  (global f64 (f64.const 1.5))
  (global (ref null $a) (array.new_fixed $a 2 (i32.const 1) (i32.const 2)))
  (export "g" (func $g))
  (start $h)
  (elem (i32.const 0) $g $h)
  (elem func $g)
  (elem declare func $h)
  (elem (table $t2) (i32.const 0) (ref null func) (ref.func $g))
  (data (i32.const 0) "hello")
  (data "passive"))"""
START = 8


@cache
def rich_module() -> bytes:
    tmp = Path(__import__("tempfile").mkdtemp())
    (tmp / "rich.wat").write_text(RICH)
    return compile_wat(tmp / "rich.wat", tmp / "rich.wasm").read_bytes()


def sections(data: bytes) -> list[tuple[int, bytes]]:
    r = Reader(data, 8)
    out = []
    while not r.at_end():
        section_id = r.byte()
        out.append((section_id, r.bytes(r.uleb())))
    return out


def variants() -> list[tuple[str, bytes]]:
    out = []
    parts = sections(rich_module())
    for i, (section_id, body) in enumerate(parts):
        if section_id == 0:
            continue
        r = Reader(body)
        n = r.uleb()
        rest = body[r.pos :]
        bodies = {"longer": body + b"\x00", "shorter": body[:-1]}
        if section_id != START:
            bodies |= {
                "count+1": wb.uleb(n + 1) + rest,
                "count=0xffffffff": wb.uleb(2**32 - 1) + rest,
            }
            if n:
                bodies["count-1"] = wb.uleb(n - 1) + rest
        for label, changed in bodies.items():
            edited = [*parts[:i], (section_id, changed), *parts[i + 1 :]]
            data = wb.CORE_PREAMBLE + b"".join(wb.section(s, b) for s, b in edited)
            out.append((f"section{section_id}-{label}", data))
    return out


def wasm_tools_accepts(data: bytes, tmp_path: Path) -> bool:
    path = tmp_path / "m.wasm"
    path.write_bytes(data)
    argv = ["wasm-tools", "validate", "--features", "all", str(path)]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_the_rich_module_is_read_by_both(tmp_path: Path) -> None:
    assert wasm_tools_accepts(rich_module(), tmp_path)
    assert [s.id for s in parse(rich_module()).sections if s.id] == [
        1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11,
    ]  # fmt: skip


@pytest.mark.parametrize("label", [label for label, _ in variants()])
def test_a_count_that_disagrees_with_the_bytes_is_refused_by_both(
    label: str, tmp_path: Path
) -> None:
    data = dict(variants())[label]
    assert not wasm_tools_accepts(data, tmp_path)
    with pytest.raises(WasmParseError):
        parse(data)


def test_a_count_the_bytes_cannot_hold_is_refused_before_any_entry_is_read() -> None:
    with pytest.raises(WasmParseError, match=r"types count 4294967295 exceeds the 0 bytes left"):
        parse(wb.core_module(wb.section(1, wb.uleb(0xFFFFFFFF))))


def test_bodies_must_match_the_functions_declared() -> None:
    types = wb.vec_section(1, b"\x60\x00\x00")
    with pytest.raises(WasmParseError, match="2 functions declared but 1 function bodies"):
        parse(wb.core_module(types, wb.vec_section(3, b"\x00", b"\x00"),
                             wb.vec_section(10, b"\x02\x00\x0b")))  # fmt: skip
    with pytest.raises(WasmParseError, match="1 functions declared but 0 function bodies"):
        parse(wb.core_module(types, wb.vec_section(3, b"\x00")))


def test_a_data_count_needs_as_many_data_segments() -> None:
    with pytest.raises(WasmParseError, match="there is no data section"):
        parse(wb.core_module(wb.section(12, b"\x01")))


def test_a_nested_module_is_held_to_the_same_counts() -> None:
    inner = wb.core_module(wb.section(5, b"\x02\x00\x01"))
    with pytest.raises(WasmParseError, match="memories count 2 exceeds"):
        parse(wb.component(wb.section(1, inner)))


def test_a_component_section_count_must_fit_its_size() -> None:
    with pytest.raises(WasmParseError, match="aliases count 1000 exceeds"):
        parse(wb.component(wb.section(6, wb.uleb(1000))))


def test_function_bodies_of_every_size_prefix_length_are_stepped_over() -> None:
    sizes = [0, 1, 127, 128, 16_383, 16_384, 2_097_152]
    bodies = [wb.uleb(n) + b"\xff" * n for n in sizes]
    module = wb.core_module(
        wb.vec_section(1, b"\x60\x00\x00"),
        wb.vec_section(3, *[b"\x00"] * len(sizes)),
        wb.vec_section(10, *bodies),
    )
    assert parse(module).sections[-1].size == sum(map(len, bodies)) + 1
    longer = module + b"\x00"  # a stray byte after the code section is not a section
    with pytest.raises(WasmParseError):
        parse(longer)


def test_indexes_longer_than_five_bytes_are_refused() -> None:
    types = wb.vec_section(1, b"\x60\x00\x00")
    with pytest.raises(WasmParseError, match="too long"):
        parse(wb.core_module(types, wb.section(3, b"\x01\x80\x80\x80\x80\x80\x00")))
    with pytest.raises(WasmParseError, match="too large"):
        parse(wb.core_module(types, wb.section(3, b"\x01\x80\x80\x80\x80\x10")))
