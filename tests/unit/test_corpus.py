"""Checks on the test corpus itself and on the wasm-tools ground-truth reader."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus import (
    VALIDATE_FEATURES,
    CorpusEntry,
    CorpusError,
    ImportSurface,
    Str,
    Surface,
    compact_7e_module,
    compact_mixed_module,
    corpus_names,
    parse_sexprs,
    surface_from_text,
    wasm_tools,
    wasm_tools_surface,
)

CompileWat = Callable[[str], Path]
Corpus = dict[str, CorpusEntry]
ORIGINS = {"wat", "c", "handmade", "pypi", "npm", "component-new"}


def module(imports: str = "", exports: str = "") -> Surface:
    """A core module surface from ``"mod.name:kind ..."`` and ``"name:kind ..."`` shorthands."""
    parsed_imports: list[ImportSurface] = []
    for spec in imports.split():
        where, _, kind = spec.rpartition(":")
        mod, _, name = where.partition(".")
        parsed_imports.append({"module": mod, "name": name, "kind": kind})
    return {
        "kind": "module",
        "imports": parsed_imports,
        "exports": [
            {"name": n, "kind": k} for n, _, k in (e.rpartition(":") for e in exports.split())
        ],
        "nested": [],
    }


def component(imports: str = "", exports: str = "", nested: list[Surface] | None = None) -> Surface:
    """A component surface from ``"name=kind ..."`` shorthands."""
    return {
        "kind": "component",
        "imports": [
            {"module": n, "name": "", "kind": k}
            for n, _, k in (i.rpartition("=") for i in imports.split())
        ],
        "exports": [
            {"name": n, "kind": k} for n, _, k in (e.rpartition("=") for e in exports.split())
        ],
        "nested": nested or [],
    }


EXPECTED: dict[str, Surface] = {
    "compact_7e": module(
        "wasi_snapshot_preview1.sock_accept:func wasi_snapshot_preview1.sock_recv:func",
        "run:func",
    ),
    "compact_mixed": module(
        "wasi_snapshot_preview1.proc_exit:func wasi_snapshot_preview1.sock_accept:func"
        " wasi_snapshot_preview1.fd_prestat_dir_name:func env.__memory_base:global"
        " env.__table_base:global env.memory:memory",
        "_start:func",
    ),
    "compact_7f": module(
        "wasi_snapshot_preview1.sock_accept:func wasi_snapshot_preview1.path_open:func"
        " env.memory:memory wasi_snapshot_preview1.sock_recv:func"
        " wasi_snapshot_preview1.sock_send:func"
    ),
    "imports_all_kinds": module(
        "env.add:func env.funcs:table env.points:table env.externs:table env.memory:memory"
        " env.shared_memory:memory env.memory64:memory env.base:global env.counter:global"
        " env.failure:tag"
    ),
    "exports_all_kinds": module(
        exports="answer:func funcs:table memory:memory counter:global failure:tag"
    ),
    "custom_sections": module(exports="double:func"),
    "pure_compute": module(exports="memory:memory add:func"),
    "wasi_hello": module(
        "wasi_snapshot_preview1.fd_write:func wasi_snapshot_preview1.proc_exit:func",
        "memory:memory _start:func",
    ),
    "component_tcp": component("wasi:sockets/tcp@0.2.0=instance"),
    "component_nested": component(
        exports="serve=func",
        nested=[
            module(exports="sock_accept:func"),
            module("wasi_snapshot_preview1.sock_accept:func", "memory:memory serve:func"),
            component("log=func", "log-again=func", [module("env.log:func", "flush:func")]),
        ],
    ),
    "component_exports": component(
        exports="add=func pair=type calc=instance math-impl=module empty=component",
        nested=[module(exports="add:func"), component()],
    ),
    "component_unbundled": component("codec=module plugin=component handle=type notify=func"),
    "component_values": component("greeting=value", "greeting-again=value"),
    "component_implements": component("primary=instance wasi:cli/stdout@0.2.0=instance"),
}


def validate(path: Path, *flags: str) -> None:
    """Run ``wasm-tools validate``; raises CorpusError when the file is invalid."""
    wasm_tools("validate", *flags, path)


def import_names(surface: Surface) -> set[tuple[str, str]]:
    return {(i["module"], i["name"]) for i in surface["imports"]}


# -- the corpus builds, and every file in it is valid -----------------------------


def test_build_produces_every_name_once(corpus: list[CorpusEntry]) -> None:
    names = [entry.name for entry in corpus]
    assert names == corpus_names()
    assert len(set(names)) == len(names)
    assert set(EXPECTED) <= set(names)
    for entry in corpus:
        assert entry.path.read_bytes()[:4] == b"\x00asm", entry.name
        assert entry.origin.split(":")[0] in ORIGINS, entry.origin


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_file_validates(corpus_by_name: Corpus, name: str) -> None:
    features = VALIDATE_FEATURES.get(name)
    validate(corpus_by_name[name].path, *(["--features", features] if features else []))


def test_feature_flags_are_still_needed(corpus_by_name: Corpus) -> None:
    for name in VALIDATE_FEATURES:
        with pytest.raises(CorpusError, match="not enabled"):
            validate(corpus_by_name[name].path)


@pytest.mark.parametrize(
    ("name", "leading_byte"),
    [("compact_7e", "0x7E"), ("compact_mixed", "0x7F"), ("compact_7f", "0x7F")],
)
def test_compact_fixtures_really_use_compact_imports(
    corpus_by_name: Corpus, name: str, leading_byte: str
) -> None:
    with pytest.raises(CorpusError, match=f"invalid leading byte {leading_byte}"):
        validate(corpus_by_name[name].path, "--features=-compact-imports")


@pytest.mark.parametrize(("name", "groups"), [("compact_7e", 1), ("compact_mixed", 4)])
def test_import_section_counts_groups_not_imports(
    corpus_by_name: Corpus, name: str, groups: int
) -> None:
    dump = wasm_tools("objdump", corpus_by_name[name].path)
    assert re.search(rf"^\s*imports\s.*\|\s*{groups} count$", dump, re.MULTILINE), dump


@pytest.mark.parametrize(
    ("make", "source"),
    [
        (
            compact_7e_module,
            """(module
              (type (func (param i32 i32 i32) (result i32)))
              (type (func))
              (import "wasi_snapshot_preview1" (item "sock_accept") (item "sock_recv")
                (func (type 0)))
              (func (type 1))
              (export "run" (func 2)))""",
        ),
        (
            compact_mixed_module,
            """(module
              (type (func (param i32 i32 i32) (result i32)))
              (type (func (param i32)))
              (type (func))
              (import "wasi_snapshot_preview1" "proc_exit" (func (type 1)))
              (import "wasi_snapshot_preview1"
                (item "sock_accept" (func (type 0)))
                (item "fd_prestat_dir_name" (func (type 0))))
              (import "env" (item "__memory_base") (item "__table_base") (global i32))
              (import "env" "memory" (memory 1))
              (func (type 2) i32.const 0 call 0)
              (export "_start" (func 3)))""",
        ),
    ],
)
def test_handmade_bytes_match_wasm_tools_encoding(
    wat: CompileWat, make: Callable[[], bytes], source: str
) -> None:
    assert make() == wat(source).read_bytes()


# -- the ground truth read from wasm-tools print ----------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_surface_of_fixture(corpus_by_name: Corpus, name: str) -> None:
    assert wasm_tools_surface(corpus_by_name[name].path) == EXPECTED[name]


@pytest.mark.parametrize("name", corpus_names())
def test_skeleton_and_full_print_agree(corpus_by_name: Corpus, name: str) -> None:
    path = corpus_by_name[name].path
    assert wasm_tools_surface(path) == wasm_tools_surface(path, skeleton=False)


def test_nested_component_hides_sock_accept_in_a_core_module(corpus_by_name: Corpus) -> None:
    surface = wasm_tools_surface(corpus_by_name["component_nested"].path)
    assert surface["imports"] == []
    hidden = [n for n in surface["nested"] if n["kind"] == "module" and n["imports"]]
    assert import_names(hidden[0]) == {("wasi_snapshot_preview1", "sock_accept")}


def test_c_programs(corpus_by_name: Corpus) -> None:
    sockets = wasm_tools_surface(corpus_by_name["sockets"].path)
    sock_calls = {"sock_accept", "sock_recv", "sock_send", "sock_shutdown"}
    assert {("wasi_snapshot_preview1", n) for n in sock_calls} <= import_names(sockets)
    forced = wasm_tools_surface(corpus_by_name["forced_import"].path)
    assert {("wasi_snapshot_preview1", "sock_open"), ("wasmedge_httpsreq", "send_data")} <= (
        import_names(forced)
    )
    hello = wasm_tools_surface(corpus_by_name["hello"].path)
    assert {i["module"] for i in hello["imports"]} == {"wasi_snapshot_preview1"}
    assert ("wasi_snapshot_preview1", "fd_write") in import_names(hello)
    assert {"name": "_start", "kind": "func"} in hello["exports"]


def test_graphviz(corpus_by_name: Corpus) -> None:
    surface = wasm_tools_surface(corpus_by_name["graphviz"].path)
    assert len(surface["imports"]) == 16
    assert {i["module"] for i in surface["imports"]} == {"wasi_snapshot_preview1"}
    assert ("wasi_snapshot_preview1", "path_open") in import_names(surface)
    assert {"name": "graphviz_render", "kind": "func"} in surface["exports"]


@pytest.mark.parametrize("flavour", ["command", "reactor"])
def test_jco_adapter(corpus_by_name: Corpus, flavour: str) -> None:
    surface = wasm_tools_surface(corpus_by_name[f"jco_adapter_{flavour}"].path)
    modules = {i["module"] for i in surface["imports"]}
    assert "__main_module__" in modules
    assert "wasi:cli/stdout@0.2.12" in modules
    assert all(m in {"__main_module__", "env"} or m.startswith("wasi:") for m in modules)
    exports = {e["name"] for e in surface["exports"]}
    assert {"fd_write", "path_open", "sock_accept"} <= exports
    assert ("wasi:cli/run@0.2.12#run" in exports) == (flavour == "command")


def test_hello_component(corpus_by_name: Corpus) -> None:
    surface = wasm_tools_surface(corpus_by_name["hello_component"].path)
    assert surface["kind"] == "component"
    assert all(
        i["kind"] == "instance" and re.fullmatch(r"wasi:[a-z-]+/[a-z-]+@0\.2\.\d+", i["module"])
        for i in surface["imports"]
    )
    assert "wasi:cli/stdout@0.2.12" in {i["module"] for i in surface["imports"]}
    assert surface["exports"] == [{"name": "wasi:cli/run@0.2.12", "kind": "instance"}]
    main = surface["nested"][0]
    assert ("wasi_snapshot_preview1", "fd_write") in import_names(main)
    assert {"name": "_start", "kind": "func"} in main["exports"]
    assert [n["kind"] for n in surface["nested"]].count("component") == 1


# -- the S-expression reader --------------------------------------------------------


def test_parse_sexprs_tokens() -> None:
    text = r"""(a "q\"b\\s\41\u{1F600}\t" $id $"quoted id" (; outer (; inner ;) ;) b ;; gone
        (@name "n") ...)"""
    [form] = parse_sexprs(text)
    assert form == ["a", 'q"b\\sA\U0001f600\t', "$id", "$quoted id", "b", ["@name", "n"], "..."]
    assert isinstance(form[1], Str)
    assert not isinstance(form[2], Str)


def test_parse_sexprs_keeps_non_utf8_bytes() -> None:
    # Bytes that are not UTF-8 survive as surrogateescape code points.
    assert parse_sexprs(r'("\ff\00")') == [["\udcff\x00"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('("open)', "unexpected character"),
        ("(a", "unbalanced"),
        ("a)", "unbalanced"),
        ("(; never closed", "unterminated block comment"),
        (r'("\q")', "bad escape"),
    ],
)
def test_parse_sexprs_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sexprs(text)


def test_surface_refuses_inline_export_abbreviation() -> None:
    with pytest.raises(ValueError, match="inline import/export"):
        surface_from_text('(module (func (export "f")))')


def test_surface_ignores_exports_that_are_not_top_level() -> None:
    text = """(component
      (type (instance (export "in-type" (func))))
      (import "i" (instance (export "in-import" (func))))
      (core instance (export "core-inline" (func 0)))
      (instance (export "inline" (func 0)))
      (export "top" (instance 0)))"""
    assert surface_from_text(text) == component("i=instance", "top=instance")


_names = st.text(max_size=12)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plain=st.tuples(_names, _names), items=st.lists(_names, min_size=1, max_size=3))
def test_surface_round_trips_arbitrary_names(
    wat: CompileWat, plain: tuple[str, str], items: list[str]
) -> None:
    def literal(text: str) -> str:
        return '"' + "".join(f"\\{byte:02x}" for byte in text.encode()) + '"'

    module_name, field = plain
    compact = " ".join(f"(item {literal(n)} (func))" for n in items)
    source = f"""(module
      (import {literal(module_name)} {literal(field)} (global i32))
      (import {literal(module_name)} {compact}))"""
    surface = wasm_tools_surface(wat(source))
    assert surface["imports"] == [
        {"module": module_name, "name": field, "kind": "global"},
        *({"module": module_name, "name": n, "kind": "func"} for n in items),
    ]
