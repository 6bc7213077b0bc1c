"""Property tests: mutated, truncated and random inputs raise only `WasmParseError`, quickly."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import wasmbytes as wb
from tests.corpus import compile_wat
from wasmctl.errors import WasmParseError
from wasmctl.wasm import parse

SEED_SOURCES = {
    "imports": """(module
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" (item "sock_accept" (func)) (item "path_open" (func)))
        (import "env" "mem" (memory 1 2 shared))
        (import "env" "g" (global (mut i64)))
        (memory (export "memory") 1)
        (func (export "_start")))""",
    "component": """(component
        (import "wasi:sockets/tcp@0.2.0" (instance))
        (import "f" (func))
        (core module $m (import "env" "f" (func)) (func (export "g")))
        (component $c (import "wasi:cli/stdout@0.2.0" (instance)) (core module))
        (export "m" (core module $m)))""",
}

PROPERTY_SETTINGS = settings(
    max_examples=400,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)


@cache
def seeds() -> tuple[bytes, ...]:
    """Valid binaries to mutate: compiled WAT plus hand-made compact groups."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in SEED_SOURCES.items():
            wat = Path(tmp, f"{name}.wat")
            wat.write_text(source, encoding="utf-8")
            out.append(compile_wat(wat, Path(tmp, f"{name}.wasm")).read_bytes())
    group = wb.name("wasi_snapshot_preview1") + wb.name("") + b"\x7e\x00\x00"
    group += wb.vec([wb.name("sock_accept"), wb.name("sock_recv")])
    out.append(
        wb.core_module(wb.section(1, wb.vec([b"\x60\x00\x00"])), wb.section(2, wb.vec([group])))
    )
    return tuple(out)


def parses_or_refuses(data: bytes) -> None:
    """The property: a module comes back, or exactly WasmParseError is raised."""
    try:
        parse(data)
    except WasmParseError as e:
        assert e.offset >= 0
        assert e.offset <= len(data)


seed_index = st.integers(min_value=0, max_value=len(SEED_SOURCES))


@PROPERTY_SETTINGS
@given(index=seed_index, cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_modules(index: int, cut: int) -> None:
    data = seeds()[index]
    parses_or_refuses(data[: cut % (len(data) + 1)])


@PROPERTY_SETTINGS
@given(
    index=seed_index,
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    ),
)
def test_mutated_modules(index: int, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seeds()[index])
    for position, value in edits:
        data[8 + position % (len(data) - 8)] = value
    parses_or_refuses(bytes(data))


@PROPERTY_SETTINGS
@given(
    index=seed_index,
    position=st.integers(min_value=0, max_value=10_000),
    insert=st.binary(min_size=1, max_size=16),
    delete=st.integers(min_value=0, max_value=16),
)
def test_spliced_modules(index: int, position: int, insert: bytes, delete: int) -> None:
    data = seeds()[index]
    at = 8 + position % (len(data) - 7)
    parses_or_refuses(data[:at] + insert + data[at + delete :])


@PROPERTY_SETTINGS
@given(
    preamble=st.sampled_from([wb.CORE_PREAMBLE, wb.COMPONENT_PREAMBLE]),
    body=st.binary(max_size=512),
)
def test_random_bodies(preamble: bytes, body: bytes) -> None:
    parses_or_refuses(preamble + body)
