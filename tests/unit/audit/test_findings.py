"""Which advisories apply to the crates and Go modules inside a module: fixtures made here
(cargo-auditable's `.dep-v0`, Go modinfo) matched against the real OSV records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.sbom_fixtures import HELLO, RUST_VERSION_INFO, deflate, go_module
from tests.wasmbytes import custom_section
from wasmctl.audit import osv
from wasmctl.audit.findings import audit, packages
from wasmctl.sbom.facts import file_facts

TESTDATA = Path(__file__).parents[4] / "shared" / "testdata" / "osv"


@pytest.fixture(scope="module")
def real() -> osv.Database:
    return osv.load([TESTDATA])


def rust(tmp_path: Path, crates: dict[str, str]) -> Path:
    """hello.wasm with a `.dep-v0` naming `crates` (from crates.io) under a local root."""
    names = list(crates)
    info = {
        "format": 1,
        "packages": [
            {"name": "app", "version": "0.1.0", "source": "local", "root": True,
             "dependencies": list(range(1, len(names) + 1))},
            *({"name": n, "version": crates[n], "source": "crates.io"} for n in names),
        ],
    }  # fmt: skip
    path = tmp_path / "app.wasm"
    path.write_bytes(HELLO.read_bytes() + custom_section(".dep-v0", deflate(info)))
    return path


def test_a_vulnerable_and_a_fixed_regex(tmp_path: Path, real: osv.Database) -> None:
    facts = file_facts(rust(tmp_path, {"regex": "1.5.4", "itoa": "1.0.14"}))
    old = audit(facts, real)
    assert "RUSTSEC-2022-0013" in {f.advisory.id for f in old.findings}
    [finding] = [f for f in old.findings if f.advisory.id == "RUSTSEC-2022-0013"]
    assert (finding.package.name, finding.package.version, finding.fixed) == (
        "regex",
        "1.5.4",
        ("1.5.5",),
    )
    assert finding.package.where == facts.name  # the top-level module: no nested position
    new = audit(file_facts(rust(tmp_path, {"regex": "1.5.5", "itoa": "1.0.14"})), real)
    assert "RUSTSEC-2022-0013" not in {f.advisory.id for f in new.findings}


def test_only_crates_io_crates_are_matched(tmp_path: Path) -> None:
    path = tmp_path / "edge.wasm"
    path.write_bytes(HELLO.read_bytes() + custom_section(".dep-v0", deflate(RUST_VERSION_INFO)))
    found = {p.name for p in packages(file_facts(path))}
    assert "wit-bindgen" not in found and "edge-app" not in found  # git and local
    assert {"serde", "serde_derive", "proc-macro2"} <= found  # build-time crates too


def test_an_old_go_toolchain_and_an_old_x_net(tmp_path: Path, real: osv.Database) -> None:
    modinfo = (
        "go\tgo1.16\n"
        "path\texample.com/app\n"
        "mod\texample.com/app\tv1.0.0\th1:x=\n"
        "dep\tgolang.org/x/net\tv0.0.0-20210226172049-e18ecbb05110\th1:y=\n"
        "dep\tgolang.org/x/text\tv0.3.0\th1:z=\n"
        "=>\tgolang.org/x/text\tv0.3.8\th1:w=\n"
    )
    result = audit(file_facts(go_module(tmp_path, modinfo)), real)
    by_package = {(f.package.name, f.advisory.id) for f in result.findings}
    assert ("stdlib", "GO-2021-0067") in by_package  # go1.16, fixed in 1.16.1
    assert ("golang.org/x/net", "GO-2021-0238") in by_package
    # x/text was replaced by v0.3.8: the replacement was built, and matched
    text = [p for p in result.packages if p.name == "golang.org/x/text"]
    assert [p.version for p in text] == ["v0.3.8"]


def test_a_version_that_is_no_semver_is_reported_not_passed(
    tmp_path: Path, real: osv.Database
) -> None:
    result = audit(file_facts(rust(tmp_path, {"regex": "one-point-five"})), real)
    assert not [f for f in result.findings if f.package.name == "regex"]
    assert any(p.name == "regex" for p, _ in result.unmatched)


def test_every_finding_is_one_the_records_say_applies(tmp_path: Path, real: osv.Database) -> None:
    crates = {"regex": "1.5.4", "smallvec": "1.6.0", "time": "0.1.43", "hyper": "0.14.9"}
    result = audit(file_facts(rust(tmp_path, crates)), real)
    assert result.findings
    for finding in result.findings:
        record = finding.advisory
        assert not record.withdrawn
        names = {e.name for e in record.affected}
        assert finding.package.name in names
        assert json.dumps(finding.fixed)  # serialisable upgrade targets


def test_a_crate_inside_a_components_nested_module_is_found_there(
    tmp_path: Path, real: osv.Database, corpus_by_name: dict[str, Any]
) -> None:
    import subprocess

    core = rust(tmp_path, {"regex": "1.5.4"})
    component = tmp_path / "app.component.wasm"
    adapter = corpus_by_name["jco_adapter_command"].path
    subprocess.run(
        ["wasm-tools", "component", "new", str(core), "-o", str(component),
         "--adapt", f"wasi_snapshot_preview1={adapter}"],
        check=True,
    )  # fmt: skip
    facts = file_facts(component)
    result = audit(facts, real)
    [finding] = [f for f in result.findings if f.advisory.id == "RUSTSEC-2022-0013"]
    assert finding.package.where != facts.name  # a nested module, by its position
    assert finding.package.where.startswith(facts.name + "/")


def test_a_package_listed_twice_in_one_record_is_one_finding_naming_every_fix(
    tmp_path: Path,
) -> None:
    # 25 of Go's records list a package in two `affected` entries (GO-2023-2185: stdlib)
    twice = {
        "id": "TWICE-1",
        "affected": [
            {"package": {"ecosystem": "crates.io", "name": "regex"},
             "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.5.5"}]}]},
            {"package": {"ecosystem": "crates.io", "name": "regex"},
             "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.5.0"},
                                                      {"fixed": "1.6.1"}]}]},
        ],
    }  # fmt: skip
    records = tmp_path / "db"
    records.mkdir()
    (records / "TWICE-1.json").write_text(json.dumps(twice))
    result = audit(file_facts(rust(tmp_path, {"regex": "1.5.4"})), osv.load([records]))
    [finding] = result.findings
    assert finding.fixed == ("1.5.5", "1.6.1")
