"""The reachability hint: a module's `name` section read for the functions an advisory lists.

Rust demangling is checked on the rustc-demangle crate's own test vectors, on real names
(the jco adapter's v0 names, against GNU c++filt when it is installed) and on hostile
symbols; the hint on modules made here (`hello.wasm` with a `.dep-v0` and a `name` section,
a Go module named as the Go linker names functions) and on the real esbuild.wasm, against
the real RustSec and Go records in ../shared/testdata/osv/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import default_cache_dir
from tests.sbom_fixtures import GO_END, GO_START, HELLO, deflate, esbuild
from tests.wasmbytes import custom_section, name, producers_payload, section, uleb, vec
from wasmctl.audit import osv
from wasmctl.audit.findings import audit
from wasmctl.audit.reach import (
    FunctionNames,
    Reach,
    Reachability,
    demangle,
    function_names,
    hint,
)
from wasmctl.errors import WasmParseError
from wasmctl.sbom.facts import file_facts
from wasmctl.wasm._reader import Reader
from wasmctl.wasm.parser import parse

TESTDATA = Path(__file__).parents[4] / "shared" / "testdata" / "osv"
PRESENT, ABSENT, UNKNOWN = Reachability.PRESENT, Reachability.ABSENT, Reachability.UNKNOWN

# `regex::Regex::new`, as regex 1.5 defines it (`regex::re_unicode::Regex::new`), named the
# three ways a Rust module's `name` section can hold it
REGEX_NEW_LEGACY = "_ZN5regex10re_unicode5Regex3new17h5e3ab1c1b8a3d2f0E"
REGEX_NEW_V0 = "_RNvMNtCs4Hcx5GbKTtL_5regex10re_unicodeNtB2_5Regex3new"
REGEX_NEW_BY_WASM_LD = "regex::re_unicode::Regex::new::h5e3ab1c1b8a3d2f0"
INSERT_MANY_LEGACY = "_ZN8smallvec17SmallVec$LT$A$GT$11insert_many17h0123456789abcdefE"
INSERT_MANY_V0 = "_RNvMs1_Cs9fT8Ac3oXz1_8smallvecINtB5_8SmallVecpE11insert_many"


@pytest.fixture(scope="module")
def real() -> osv.Database:
    return osv.load([TESTDATA])


def record(database: osv.Database, advisory: str, package: str) -> osv.Affected:
    ecosystem = "crates.io" if advisory.startswith("RUSTSEC") else "Go"
    [entry] = [e for a, e in database.candidates(ecosystem, package) if a.id == advisory]
    return entry


def rust_listing(*functions: str) -> osv.Affected:
    """An entry listing `functions` the way RustSec does."""
    specific = {"affects": {"arch": [], "os": [], "functions": list(functions)}}
    return osv.Affected("crates.io", "regex", (), frozenset(), specific)


def go_listing(imports: list[dict[str, Any]]) -> osv.Affected:
    return osv.Affected("Go", "example.com/m", (), frozenset(), {"imports": imports})


def names(*functions: str) -> FunctionNames:
    return FunctionNames(functions)


def go_names(*functions: str) -> FunctionNames:
    """A Go module's names: the runtime's, which every Go program links, and `functions`."""
    return FunctionNames(["runtime.main", "runtime.gopanic", *functions])


def name_payload(functions: dict[int, str | bytes], module: str | None = None) -> bytes:
    """A `name` section payload as linkers write it: the module name, then function names."""
    payload = section(0, name(module)) if module is not None else b""
    entries = [uleb(index) + name(text) for index, text in sorted(functions.items())]
    return payload + section(1, vec(entries))


def without_name_section(module: bytes) -> bytes:
    """`module` with its `name` custom section left out."""
    r = Reader(module, 8)
    kept = [module[:8]]
    while not r.at_end():
        start = r.pos
        section_id = r.byte()
        body = r.sub(r.uleb())
        if section_id != 0 or body.name() != "name":
            kept.append(module[start : body.end])
    return b"".join(kept)


def rust_module(tmp_path: Path, function: str, crates: dict[str, str]) -> Path:
    """hello.wasm whose one function is named `function` (its imports keep their names), with
    a `.dep-v0` naming `crates` from crates.io."""
    info = {
        "format": 1,
        "packages": [
            {"name": "app", "version": "0.1.0", "source": "local", "root": True,
             "dependencies": list(range(1, len(crates) + 1))},
            *({"name": n, "version": v, "source": "crates.io"} for n, v in crates.items()),
        ],
    }  # fmt: skip
    path = tmp_path / "app.wasm"
    path.write_bytes(
        without_name_section(HELLO.read_bytes())
        + custom_section(".dep-v0", deflate(info))
        + custom_section("name", name_payload({0: "fd_write", 1: "proc_exit", 2: function}))
    )
    return path


def go_module(wat: Callable[[str], Path], modinfo: str, functions: list[str]) -> Path:
    """A Go module: modinfo in a data segment, and functions named as the Go linker names
    them in a Wasm `name` section (wasm-tools writes the section from the `$` names)."""
    data = b"\x00runtime\x00" + GO_START + modinfo.encode() + GO_END
    escaped = "".join(f"\\{b:02x}" for b in data)
    defined = "".join(f"  (func ${f})\n" for f in functions)
    path = wat(
        f'(module (memory 1) (export "memory" (memory 0))\n{defined}'
        f'  (export "_start" (func 0))\n  (data (i32.const 1024) "{escaped}"))\n'
    )
    go = {"language": [("Go", "go1.16")], "processed-by": [("Go cmd/compile", "go1.16")]}
    path.write_bytes(path.read_bytes() + custom_section("producers", producers_payload(go)))
    return path


# -- demangling: the rustc-demangle crate's vectors (src/legacy.rs, src/v0.rs) -------------

LEGACY = [
    ("_ZN4testE", "test"),
    ("_ZN4test1a2bcE", "test::a::bc"),
    ("_ZN4$RP$E", ")"),
    ("_ZN8$RF$testE", "&test"),
    ("_ZN8$BP$test4foobE", "*test::foob"),
    ("_ZN9$u20$test4foobE", " test::foob"),
    ("_ZN35Bar$LT$$u5b$u32$u3b$$u20$4$u5d$$GT$E", "Bar<[u32; 4]>"),
    ("_ZN13test$u20$test4foobE", "test test::foob"),
    ("_ZN12test$BP$test4foobE", "test*test::foob"),
    ("_ZN13_$LT$test$GT$E", "<test>"),
    ("_ZN28_$u7b$$u7b$closure$u7d$$u7d$E", "{{closure}}"),
    ("_ZN15__STATIC_FMTSTRE", "__STATIC_FMTSTR"),
    ("_ZN71_$LT$Test$u20$$u2b$$u20$$u27$static$u20$as$u20$foo..Bar$LT$Test$GT$$GT$3barE",
     "<Test + 'static as foo::Bar<Test>>::bar"),
    ("_ZN3foo17h05af221e174051e9E", "foo"),
    ("_ZN3foo20h05af221e174051e9abcE", "foo"),
    ("_ZN3foo5h05afE", "foo"),
    ("_ZN17h05af221e174051e93fooE", "h05af221e174051e9::foo"),  # a hash, but not last
    ("_ZN3foo16ffaf221e174051e9E", "foo::ffaf221e174051e9"),  # no `h`: not a hash
    ("_ZN3foo17hg5af221e174051e9E", "foo::hg5af221e174051e9"),  # not hex: not a hash
    ("_ZN3fooE.llvm.9D1C9369@@16", "foo"),
    ("_ZN9backtrace3foo17hbb467fcdaea5d79bE.llvm.A5310EB9", "backtrace::foo"),
    ("_ZN4core5slice77_$LT$impl$u20$core..ops..index..IndexMut$LT$I$GT$$u20$for$u20$"
     "$u5b$T$u5d$$GT$9index_mut17haf9727c2edfbc47bE.exit.i.i",
     "core::slice::<impl core::ops::index::IndexMut<I> for [T]>::index_mut.exit.i.i"),
    ("_ZN88_$LT$core..result..Result$LT$$u21$$C$$u20$E$GT$$u20$as$u20$std..process.."
     "Termination$GT$6report17hfc41d0da4a40b3e8E",
     "<core::result::Result<!, E> as std::process::Termination>::report"),
    ("_ZN11issue_609253foo37Foo$LT$issue_60925..llv$u6d$..Foo$GT$3foo17h059a991a004536adE",
     "issue_60925::foo::Foo<issue_60925::llvm::Foo>::foo"),
    ("_ZN11utf8_idents157_$u10e1$$u10d0$$u10ed$$u10db$$u10d4$$u10da$$u10d0$$u10d3$_$u10d2$"
     "$u10d4$$u10db$$u10e0$$u10d8$$u10d4$$u10da$$u10d8$_$u10e1$$u10d0$$u10d3$$u10d8$$u10da$"
     "$u10d8$17h21634fd5714000aaE", "utf8_idents::საჭმელად_გემრიელი_სადილი"),
]  # fmt: skip

V0 = [
    ("_RNvC6_123foo3bar", "123foo::bar"),
    ("_RC4f128", "f128"),
    ("_RNqCs4fqI2P2rA04_11utf8_identsu30____7hkackfecea1cbdathfdh9hlq6y",
     "utf8_idents::საჭმელად_გემრიელი_სადილი"),
    ("_RNCNCNgCs6DXkGYLi8lr_2cc5spawn00B5_", "cc::spawn::{closure#0}::{closure#0}"),
    ("_RNCINkXs25_NgCsbmNqQUJIY6D_4core5sliceINyB9_4IterhENuNgNoBb_4iter8iterator8Iterator"
     "9rpositionNCNgNpB9_6memchr7memrchrs_0E0Bb_",
     "<core::slice::Iter<u8> as core::iter::iterator::Iterator>::rposition::"
     "<core::slice::memchr::memrchr::{closure#1}>::{closure#0}"),
    ("_RINbNbCskIICzLVDPPb_5alloc5alloc8box_freeDINbNiB4_5boxed5FnBoxuEp6OutputuEL_"
     "ECs1iopQbuBiw2_3std", "alloc::alloc::box_free::<dyn alloc::boxed::FnBox<(), Output = ()>>"),
    ("_RMC0DNtC5krate5Traitp1NKj0_EL_", "<dyn krate::Trait<N = 0>>"),
    ("_RMC0WmRm1_m9_", "<u32 is 1..=9>"),
    ("_RMC0WmORm1_m2_Rm5_m6_E", "<u32 is 1..=2 | 5..=6>"),
    ("_RMC0INtC8arrayvec8ArrayVechKj7b_E", "<arrayvec::ArrayVec<u8, 123>>"),
    ("_RC3foo.llvm.9D1C9369@@16", "foo"),
    ("_RNvC9backtrace3foo.llvm.A5310EB9", "backtrace::foo"),
    ("_RNvNtNtNtNtCs92dm3009vxr_4rand4rngs7adapter9reseeding4fork23FORK_HANDLER_REGISTERED.0.0",
     "rand::rngs::adapter::reseeding::fork::FORK_HANDLER_REGISTERED.0.0"),
]  # fmt: skip

CONSTANTS = [
    ("p", "_"), ("hb_", "11"), ("off00ff00ff00ff00ff_", "0xff00ff00ff00ff00ff"), ("s98_", "152"),
    ("anb_", "-11"), ("b0_", "false"), ("b1_", "true"), ("c76_", "'v'"), ("c22_", "'\"'"),
    ("ca_", "'\\n'"), ("c2202_", "'∂'"), ("e616263_", '{*"abc"}'), ("e27_", "{*\"'\"}"),
    ("e090a_", '{*"\\t\\n"}'), ("ee28882c3bc_", '{*"∂ü"}'), ("Re616263_", '"abc"'),
    ("Rp", "{&_}"), ("Rh7b_", "{&123}"), ("Rc58_", "{&'X'}"), ("RRRh0_", "{&&&0}"),
    ("RRRe_", '{&&""}'), ("QAE", "{&mut []}"), ("AE", "{[]}"), ("Ah1_h2_h3_E", "{[1, 2, 3]}"),
    ("AAh1_h2_EAh3_h4_EE", "{[[1, 2], [3, 4]]}"), ("TE", "{()}"), ("Tj0_E", "{(0,)}"),
    ("TRe616263_c78_RAh1_h2_h3_EE", "{(\"abc\", 'x', &[1, 2, 3])}"),
    ("VNvINtNtC4core6option6OptionjE4SomeTj0_E", "{core::option::Option::<usize>::Some(0)}"),
    ("VNtC3foo3BarS1sRe616263_2chc78_5sliceRAh1_h2_h3_EE",
     "{foo::Bar { s: \"abc\", ch: 'x', slice: &[1, 2, 3] }}"),
]  # fmt: skip


@pytest.mark.parametrize(("symbol", "expected"), LEGACY)
def test_legacy_symbols_demangle_as_rustc_demangle_prints_them(symbol: str, expected: str) -> None:
    assert demangle(symbol) == expected


@pytest.mark.parametrize(("symbol", "expected"), V0)
def test_v0_symbols_demangle_as_rustc_demangle_prints_them(symbol: str, expected: str) -> None:
    assert demangle(symbol) == expected


@pytest.mark.parametrize(("mangled", "value"), CONSTANTS)
def test_v0_const_generics_demangle_as_rustc_demangle_prints_them(mangled: str, value: str) -> None:
    assert demangle(f"_RIC0K{mangled}E") == f"::<{value}>"


def test_v0_backrefs_are_followed_and_each_copy_printed() -> None:
    # six nested pairs whose second halves are backrefs to the first: 2**6 copies of `_`
    pair = "(_, _)"
    for _ in range(5):
        pair = f"({pair}, {pair})"
    assert demangle("_RMC0TTTTTTpB8_EB7_EB6_EB5_EB4_EB3_E") == f"<{pair}>"


def test_regex_new_demangles_from_both_manglings() -> None:
    assert demangle(REGEX_NEW_LEGACY) == "regex::re_unicode::Regex::new"
    assert demangle(REGEX_NEW_V0) == "<regex::re_unicode::Regex>::new"
    assert demangle(INSERT_MANY_LEGACY) == "smallvec::SmallVec<A>::insert_many"
    assert demangle(INSERT_MANY_V0) == "<smallvec::SmallVec<_>>::insert_many"


@pytest.mark.parametrize(
    "symbol",
    [
        "test", "_ZN4test", "_ZNfooE", "_ZN3fooE.llvm moocow", "_ZN2222222222222222222222EE",
        "_ZN5*70527e27.ll34csaғE", "_ZN3foo3barEv",  # a C++ name: `foo::bar()`
        "_RMC0WmORm1_m2_Rm5_m6_",  # an or-pattern never closed
        "_R", "_RN", "_RNvC", "_RNvC3fo", "_RB_", "_RNvC0B0_", "_RC3foo\x00",
        "_RNvCu2_a_3foo",  # a Unicode identifier without its Punycode deltas
        "_RNvCu2_993foo",  # Punycode deltas past the last code point
        "_RNvCu4bb0c3foo",  # Punycode for a surrogate (U+DCC2), not a character
        "_RIC0B6_EC1x",  # a backref forward (to the instantiating crate `x`)
    ],
)  # fmt: skip
def test_what_is_not_a_well_formed_rust_symbol_demangles_to_none(symbol: str) -> None:
    assert demangle(symbol) is None


def backref(position: int) -> str:
    """`B` and a base-62 position (`_` for 0, else the number minus one, then `_`)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if position == 0:
        return "B_"
    n, out = position - 1, ""
    while True:
        n, d = divmod(n, 62)
        out = digits[d] + out
        if not n:
            return f"B{out}_"


def test_a_backref_explosion_stops_at_the_output_budget() -> None:
    # nested pairs, each half a backref to the pair inside: 2**depth copies of `_`
    def pairs(depth: int) -> str:
        return (
            "_RMC0"
            + "T" * depth
            + "p"
            + "".join(backref(at) + "E" for at in range(depth + 3, 3, -1))
        )

    assert demangle(pairs(6)) == demangle("_RMC0TTTTTTpB8_EB7_EB6_EB5_EB4_EB3_E")
    assert len(pairs(16)) < 100
    assert demangle(pairs(16)) is None  # 65 536 copies: past a budget proportional to 100


@pytest.mark.parametrize("leaf", ["R", "P", "TT", "A", "S"])
def test_thousands_of_nested_types_stop_at_the_depth_limit(leaf: str) -> None:
    symbol = "_RIC0" + leaf * (8000 // len(leaf)) + "pE"  # deeper than Python's recursion
    assert demangle(symbol) is None


def chain(links: int) -> str:
    """`::<_, _, ...>` where each argument after the first is a backref to the one before."""
    symbol, at = "_RIC0p", 3  # positions count from after `_R`: `p` is at 3
    for _ in range(links):
        symbol += backref(at)
        at = len(symbol) - 2 - len(backref(at))
    return symbol + "E"


def test_a_backref_chain_is_followed_up_to_the_depth_limit() -> None:
    assert demangle(chain(10)) == "::<" + ", ".join(["_"] * 11) + ">"
    assert demangle(chain(3000)) is None  # 3000 backrefs deep: no RecursionError


def name_payload_of(path: Path) -> bytes:
    data = path.read_bytes()
    [found] = [s for s in parse(data).custom_sections if s.name == "name"]
    return data[found.offset : found.offset + found.size]


def cxxfilt_reads_v0() -> bool:
    """GNU c++filt demangles v0 names since binutils 2.36."""
    if shutil.which("c++filt") is None:
        return False
    run = subprocess.run(["c++filt", "_RNvC3foo3bar"], capture_output=True, check=False)
    return run.stdout.strip() in (b"foo::bar", b"foo[0]::bar")


@pytest.mark.skipif(not cxxfilt_reads_v0(), reason="no c++filt that reads v0 names")
def test_the_real_v0_names_of_the_jco_adapter_demangle_as_cxxfilt_says(
    corpus_by_name: dict[str, Any],
) -> None:
    both = [corpus_by_name[f"jco_adapter_{kind}"].path for kind in ("command", "reactor")]
    found = function_names(name_payload_of(both[0])) | function_names(name_payload_of(both[1]))
    rust = sorted(n for n in found if n.startswith("_R"))
    assert len(rust) > 150
    peer = subprocess.run(
        ["c++filt"], input="\n".join(rust), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # c++filt prints crate disambiguators (`wasi_snapshot_preview1[11c22894596c3421]`)
    expected = [re.sub(r"\[[0-9a-f]+\]", "", line) for line in peer]
    assert [demangle(n) for n in rust] == expected


def test_a_real_adapter_name_is_found_by_its_method_path(corpus_by_name: dict[str, Any]) -> None:
    adapter = FunctionNames.of(name_payload_of(corpus_by_name["jco_adapter_command"].path))
    assert adapter is not None
    found = adapter.rust(("wasi_snapshot_preview1", "OutputStream", "check_write"))
    assert found == [
        "<wasi_snapshot_preview1::bindings::wasi::io::streams::OutputStream>::check_write"
        "::wit_import1"
    ]


# -- the `name` section -------------------------------------------------------------------


def test_function_names_are_read_from_subsection_1_and_the_rest_skipped() -> None:
    payload = name_payload({0: "fd_write", 1: "proc_exit", 7: "main"}, module="hello")
    payload += section(2, b"\x00")  # local names: skipped by their size
    assert function_names(payload) == {"fd_write", "proc_exit", "main"}


def test_names_that_are_not_utf8_are_read_with_replacement_characters() -> None:
    assert function_names(name_payload({0: b"caf\xe9", 1: b"\xff\xfe"})) == {
        "caf\ufffd",
        "\ufffd\ufffd",
    }


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (name_payload({0: "main"})[:-2], "a name cut short"),
        (b"\x01\x05\xff\xff\xff\xff\x0f", "four billion names in five bytes"),
        (b"\x01\x7f\x01\x00\x01a", "a subsection larger than the section"),
        (b"\x01\x05\x01\x00\x01a\x00", "trailing bytes in the function names"),
        (b"\x01\x06\x01\x00\xff\xff\xff\xff", "a name length past the end"),
        (b"\x01", "a subsection without its size"),
    ],
)
def test_a_malformed_name_section_raises_and_prepares_to_none(payload: bytes, why: str) -> None:
    with pytest.raises(WasmParseError):
        function_names(payload)
    assert FunctionNames.of(payload) is None, why


def test_a_section_naming_no_function_prepares_to_none() -> None:
    assert FunctionNames.of(section(0, name("hello"))) is None  # a module name only
    assert FunctionNames.of(name_payload({})) is None
    assert FunctionNames.of(None) is None


def test_facts_carry_the_name_section_payload_of_a_core_module(tmp_path: Path) -> None:
    data = HELLO.read_bytes()
    [found] = [s for s in parse(data).custom_sections if s.name == "name"]
    assert file_facts(HELLO).name_section == data[found.offset : found.offset + found.size]
    stripped = tmp_path / "stripped.wasm"
    stripped.write_bytes(without_name_section(data))
    assert file_facts(stripped).name_section is None


def test_a_component_carries_no_name_section_but_its_modules_do(
    corpus_by_name: dict[str, Any],
) -> None:
    facts = file_facts(corpus_by_name["hello_component"].path)
    assert facts.name_section is None
    assert any(m.name_section for m in facts.walk()[1:])


# -- Rust ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "shown"),
    [(REGEX_NEW_LEGACY, "regex::re_unicode::Regex::new"),
     (REGEX_NEW_V0, "<regex::re_unicode::Regex>::new"),
     (REGEX_NEW_BY_WASM_LD, "regex::re_unicode::Regex::new")],
)  # fmt: skip
def test_regex_new_is_present_however_the_module_names_it(
    tmp_path: Path, function: str, shown: str
) -> None:
    facts = file_facts(rust_module(tmp_path, function, {"regex": "1.5.4"}))
    reach = hint(rust_listing("regex::Regex::new"), FunctionNames.of(facts.name_section))
    assert reach == Reach(PRESENT, ("regex::Regex::new",), (shown,))


def test_a_real_rustsec_record_listing_functions_is_present_and_absent(
    tmp_path: Path, real: osv.Database
) -> None:
    crates = {"regex": "1.5.4", "smallvec": "1.6.0"}
    with_it = file_facts(rust_module(tmp_path, INSERT_MANY_LEGACY, crates))
    [finding] = [f for f in audit(with_it, real).findings if f.advisory.id == "RUSTSEC-2021-0003"]
    assert finding.affected.ecosystem_specific["affects"]["functions"] == [
        "smallvec::SmallVec::insert_many"
    ]
    present = hint(finding.affected, FunctionNames.of(with_it.name_section))
    assert present == Reach(
        PRESENT, ("smallvec::SmallVec::insert_many",), ("smallvec::SmallVec<A>::insert_many",)
    )
    without_it = file_facts(rust_module(tmp_path, REGEX_NEW_LEGACY, crates))
    absent = hint(finding.affected, FunctionNames.of(without_it.name_section))
    assert absent == Reach(ABSENT, ("smallvec::SmallVec::insert_many",), ())


def test_the_v0_name_of_insert_many_is_present_for_the_real_record(real: osv.Database) -> None:
    affected = record(real, "RUSTSEC-2021-0003", "smallvec")
    assert hint(affected, names(INSERT_MANY_V0)).verdict == PRESENT


def test_a_real_rustsec_record_listing_no_function_is_unknown(
    tmp_path: Path, real: osv.Database
) -> None:
    facts = file_facts(rust_module(tmp_path, REGEX_NEW_LEGACY, {"regex": "1.5.4"}))
    [finding] = [f for f in audit(facts, real).findings if f.advisory.id == "RUSTSEC-2022-0013"]
    reach = hint(finding.affected, FunctionNames.of(facts.name_section))
    assert reach == Reach(UNKNOWN, (), ())


def test_a_module_without_function_names_is_unknown(real: osv.Database) -> None:
    affected = record(real, "RUSTSEC-2021-0003", "smallvec")
    assert hint(affected, None) == Reach(UNKNOWN, ("smallvec::SmallVec::insert_many",), ())


def test_a_module_naming_no_rust_function_is_unknown_not_absent(real: osv.Database) -> None:
    affected = record(real, "RUSTSEC-2021-0003", "smallvec")
    imports_only = FunctionNames.of(file_facts(HELLO).name_section)  # fd_write, proc_exit
    assert imports_only is not None and len(imports_only) == 2
    assert hint(affected, imports_only).verdict == UNKNOWN
    assert hint(affected, names("fd_write", "core::panicking::panic")).verdict == ABSENT


def test_a_closure_of_a_listed_function_is_present() -> None:
    module = names("_RNCNvMNtCs4Hcx5GbKTtL_5regex10re_unicodeNtB4_5Regex3new0B6_")
    reach = hint(rust_listing("regex::Regex::new"), module)
    assert reach.found == ("<regex::re_unicode::Regex>::new::{closure#0}",)


def test_a_generic_instance_of_a_listed_function_is_present() -> None:
    module = names("smallvec::SmallVec<[u8; 16]>::grow::h0123456789abcdef")
    assert hint(rust_listing("smallvec::SmallVec::grow"), module).verdict == PRESENT


def test_a_method_in_a_trait_impl_counts_as_the_types_and_the_traits() -> None:
    by_wasm_ld = (  # a legacy name through LLVM's Itanium demangler: Rust's escapes stay
        "_$LT$bumpalo..collections..vec..Vec$LT$T$GT$$u20$as$u20$core..iter..traits.."
        "collect..IntoIterator$GT$::into_iter::h0123456789abcdef"
    )
    v0 = "<flatbuffers::primitives::ForwardsUOffset<T> as flatbuffers::follow::Follow>::follow"
    module = names(by_wasm_ld, v0)
    assert hint(rust_listing("bumpalo::collections::vec::Vec::into_iter"), module).found == (
        "<bumpalo::collections::vec::Vec<T> as core::iter::traits::collect::IntoIterator>"
        "::into_iter",
    )
    assert hint(rust_listing("flatbuffers::Follow::follow"), module).verdict == PRESENT


def test_a_method_inside_a_legacy_impl_block_counts_as_type_method() -> None:
    module = names("time::<impl time::Tm>::to_local::h0123456789abcdef")
    assert hint(rust_listing("time::Tm::to_local"), module).verdict == PRESENT


def test_every_method_of_a_listed_type_is_present() -> None:
    module = names("lock_api::mutex::MappedMutexGuard<R,T>::map::h0123456789abcdef")
    assert hint(rust_listing("lock_api::MappedMutexGuard"), module).verdict == PRESENT


def test_generic_arguments_in_a_listed_path_are_ignored() -> None:
    module = names("<diesel::pg::types::Text as diesel::deserialize::FromSql<T, DB>>::from_sql")
    listed = "diesel::deserialize::FromSql::<Text,Sqlite>::from_sql"
    assert hint(rust_listing(listed), module).verdict == PRESENT


def test_segments_compare_whole_and_the_crate_must_be_the_listed_one() -> None:
    module = names(
        "time::OffsetDateTime::now_local::h0123456789abcdef",
        "fancy_regex::Regex::new::h0123456789abcdef",
        "other::time::now::h0123456789abcdef",
    )
    assert hint(rust_listing("time::now"), module).verdict == ABSENT
    assert hint(rust_listing("regex::Regex::new"), module).verdict == ABSENT


def test_a_listed_crate_with_a_hyphen_is_its_path_with_an_underscore() -> None:
    module = names("futures_util::lock::mutex::MutexGuard<T>::map::h0123456789abcdef")
    assert hint(rust_listing("futures-util::lock::MutexGuard::map"), module).verdict == PRESENT


def test_each_name_is_demangled_once_however_many_advisories_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def counted(symbol: str) -> str | None:
        calls.append(symbol)
        return demangle(symbol)

    monkeypatch.setattr("wasmctl.audit.reach.demangle", counted)
    module = names(REGEX_NEW_LEGACY, REGEX_NEW_V0, INSERT_MANY_LEGACY, "_ZN4core3fmt5write17h0E")
    hint(rust_listing("regex::Regex::new"), module)
    assert sorted(calls) == sorted([REGEX_NEW_LEGACY, REGEX_NEW_V0])  # names that spell `regex`
    for _ in range(50):
        hint(rust_listing("regex::Regex::new"), module)
        hint(rust_listing("smallvec::SmallVec::grow"), module)
        hint(rust_listing("core::fmt::write"), module)
    assert sorted(calls) == sorted(set(calls))  # never twice
    assert len(calls) == 4  # each name asked for by some crate


def test_at_most_a_few_matching_names_are_shown() -> None:
    module = names(*(f"regex::re_unicode::Regex::new::{{{{closure}}}}::f{i}" for i in range(9)))
    reach = hint(rust_listing("regex::Regex::new"), module)
    assert reach.verdict == PRESENT and len(reach.found) == 5


def test_hostile_names_in_a_module_are_read_within_bounds() -> None:
    nested = "<regex::Regex as " * 200 + "X" + ">" * 200 + "::new"  # 200 qualified paths deep
    module = names(
        "_RIC0" + "R" * 20_000 + "pE",  # too long to demangle
        "_ZN" + "9" * 30 + "E",
        "regex::<<<<<<" + "::" * 1000,  # brackets that never close
        "regex::" + "<" * 5000 + ">" * 5000 + "::new",
        "regex::" + "x" * 100_000,
        nested,
    )
    reach = hint(rust_listing("regex::Regex::new"), module)
    assert reach.verdict == PRESENT  # the outermost `<regex::Regex as ...>::new`
    assert reach.found == (nested[:299] + "…",)


# -- Go -----------------------------------------------------------------------------------

OLD_GO = (
    "go\tgo1.16\n"
    "path\texample.com/app\n"
    "mod\texample.com/app\tv1.0.0\th1:x=\n"
    "dep\tgolang.org/x/net\tv0.0.0-20210226172049-e18ecbb05110\th1:y=\n"
)


def test_go_symbols_are_found_as_the_go_linker_names_functions(
    wat: Callable[[str], Path], real: osv.Database
) -> None:
    path = go_module(
        wat,
        OLD_GO,
        ["_rt0_wasm_js", "runtime.main", "main.main", "golang.org_x_net_html.Parse",
         "golang.org_x_net_html.__Tokenizer_.Next", "net_http.__Server_.Serve.func1"],
    )  # fmt: skip
    facts = file_facts(path)
    module = FunctionNames.of(facts.name_section)
    by_id = {f.advisory.id: hint(f.affected, module) for f in audit(facts, real).findings}
    html = by_id["GO-2021-0238"]  # golang.org/x/net/html: Parse, ParseFragment, ...
    assert html.verdict == PRESENT
    assert html.found == ("golang.org_x_net_html.Parse",)
    assert "golang.org/x/net/html.Parse" in html.listed
    zip_names = by_id["GO-2021-0067"]  # stdlib archive/zip: toValidName
    assert zip_names == Reach(ABSENT, ("archive/zip.toValidName",), ())


def test_a_method_is_present_through_a_pointer_or_a_value_receiver_and_its_closures(
    real: osv.Database,
) -> None:
    serve = record(real, "GO-2023-1571", "stdlib")  # net/http Server.Serve, ...
    assert "net/http.Server.Serve" in hint(serve, None).listed
    for name_ in ["net_http.__Server_.Serve", "net_http.Server.Serve",
                  "net_http.__Server_.Serve.func1", "net_http.__Server_.Serve_fm"]:  # fmt: skip
        assert hint(serve, go_names(name_)).found == (name_,)
    for name_ in ["net_http.__Server_.Serveother", "net_http.ServerX.Serve",
                  "net_http_httptest.__Server_.Serve", "net_http.__Server_.ServeTLSX"]:  # fmt: skip
        assert hint(serve, go_names(name_)).verdict == ABSENT, name_


def test_a_function_is_present_as_its_closures_and_generic_instances() -> None:
    listing = go_listing([{"path": "golang.org/x/exp/slices", "symbols": ["Sort", "List.Push"]}])
    for name_ in ["golang.org_x_exp_slices.Sort_go.shape.int_",
                  "golang.org_x_exp_slices.Sort_go.shape.struct___a_int__.func2",
                  "golang.org_x_exp_slices.Sort.deferwrap1",
                  "golang.org_x_exp_slices.__List_go.shape.string__.Push",
                  "golang.org_x_exp_slices.List_..._.Push"]:  # fmt: skip
        assert hint(listing, go_names(name_)).verdict == PRESENT, name_
    assert hint(listing, go_names("golang.org_x_exp_slices.SortFunc")).verdict == ABSENT


def test_a_path_listed_without_symbols_is_any_function_of_that_package(
    real: osv.Database,
) -> None:
    x509 = record(real, "GO-2022-0229", "stdlib")  # lists crypto/x509 without symbols
    assert hint(x509, go_names("crypto_x509.ParseCertificate")).verdict == PRESENT
    assert hint(x509, go_names("crypto_x509_pkix.Name.String")).verdict == ABSENT


def test_a_package_with_a_dot_in_its_last_element_is_found_escaped_or_not(
    real: osv.Database,
) -> None:
    yaml = record(real, "GO-2020-0036", "gopkg.in/yaml.v2")
    assert hint(yaml, go_names("gopkg.in_yaml.v2.Unmarshal")).verdict == PRESENT
    assert hint(yaml, go_names("gopkg.in_yaml_2ev2.__Decoder_.Decode")).verdict == PRESENT
    assert hint(yaml, go_names("gopkg.in_yaml_2ev3.Unmarshal")).verdict == ABSENT


def test_a_numbered_init_function_is_its_linker_name() -> None:
    listing = go_listing([{"path": "example.com/m", "symbols": ["init#1"]}])
    assert hint(listing, go_names("example.com_m.init.1")).verdict == PRESENT
    assert hint(listing, go_names("example.com_m.init.0")).verdict == ABSENT


def test_a_go_module_naming_no_runtime_function_is_unknown_not_absent() -> None:
    listing = go_listing([{"path": "example.com/m", "symbols": ["F"]}])
    assert hint(listing, names("fd_write", "example.com_m.G")).verdict == UNKNOWN
    assert hint(listing, go_names("example.com_m.G")).verdict == ABSENT


def test_the_real_esbuild_wasm_keeps_no_names_so_every_hint_is_unknown(
    real: osv.Database,
) -> None:
    facts = file_facts(esbuild(default_cache_dir()))  # shipped without a `name` section
    assert facts.name_section is None
    findings = audit(facts, real).findings
    assert findings  # go1.26.5's stdlib advisories
    hints = [hint(f.affected, FunctionNames.of(facts.name_section)) for f in findings]
    assert {h.verdict for h in hints} == {UNKNOWN}
    assert any(h.listed for h in hints)  # what would have been looked for is still said


# -- what lists nothing -------------------------------------------------------------------


def test_an_ecosystem_without_function_listings_is_unknown() -> None:
    npm = osv.Affected("npm", "left-pad", (), frozenset(), {"affects": {"functions": ["x"]}})
    assert hint(npm, names("x")) == Reach(UNKNOWN, (), ())


@pytest.mark.parametrize(
    "specific",
    [{}, {"affects": None}, {"affects": {"functions": "regex::Regex::new"}},
     {"affects": {"functions": [None, 3, ""]}}, {"imports": [{"path": 7}]}, {"imports": "x"}],
)  # fmt: skip
def test_a_listing_of_the_wrong_shape_lists_nothing(specific: dict[str, Any]) -> None:
    for ecosystem in ("crates.io", "Go"):
        affected = osv.Affected(ecosystem, "regex", (), frozenset(), specific)
        assert hint(affected, names("regex::Regex::new")) == Reach(UNKNOWN, (), ())
