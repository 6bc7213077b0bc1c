"""`wasmctl sbom` for module files: what it finds inside, both formats, determinism."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import CorpusEntry, default_cache_dir, wasm_tools
from tests.sbom_fixtures import (
    GO_MODINFO,
    HELLO,
    RUST_PACKAGES,
    deflate,
    esbuild,
    go_module,
    rust_component,
    rust_module,
    zlib_bomb,
)
from wasmctl.cli import run

GOLDEN = Path(__file__).resolve().parents[2] / "assets" / "sbom"


@pytest.fixture(autouse=True)
def fixed_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1732579200")  # 2024-11-26T00:00:00Z


def sbom(path: Path, fmt: str = "cyclonedx-json", capsys: Any = None) -> dict[str, Any]:
    """Run `wasmctl sbom` and return the parsed document."""
    out = path.with_suffix(f".{fmt}.json")
    assert run(["sbom", str(path), "--format", fmt, "-o", str(out)]) == 0
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def cdx_validate(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None


def spdx_validate(path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    assert validate_full_spdx_document(parse_file(str(path))) == []


def components_by_purl(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["purl"]: c for c in bom.get("components", []) if "purl" in c}


def props(component: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in component.get("properties", []) if p["name"] == name]


# -- the module itself ------------------------------------------------------------------------


def test_a_command_module_is_an_application_with_both_hashes(tmp_path: Path) -> None:
    import hashlib

    module = tmp_path / "hello.wasm"
    module.write_bytes(HELLO.read_bytes())
    bom = sbom(module)
    component = bom["metadata"]["component"]
    assert component["type"] == "application"  # exports _start
    hashes = {h["alg"]: h["content"] for h in component["hashes"]}
    assert hashes["SHA-256"] == hashlib.sha256(HELLO.read_bytes()).hexdigest()
    assert hashes["SHA-512"] == hashlib.sha512(HELLO.read_bytes()).hexdigest()
    assert props(component, "wasmctl:wasm:kind") == ["module"]
    assert "stdio" in props(component, "wasmctl:capability")
    assert "wasi_snapshot_preview1:fd_write" in props(component, "wasmctl:wasm:import")
    assert "_start" in props(component, "wasmctl:wasm:export")
    assert bom["metadata"]["timestamp"] == "2024-11-26T00:00:00+00:00"


def test_a_reactor_is_a_library(wat: Any, tmp_path: Path) -> None:
    reactor = wat('(module (func (export "add") (param i32 i32) (result i32) local.get 0))')
    assert sbom(reactor)["metadata"]["component"]["type"] == "library"


# -- Rust (.dep-v0) ---------------------------------------------------------------------------


def test_rust_crates_become_cargo_components_with_their_graph(tmp_path: Path) -> None:
    bom = sbom(rust_module(tmp_path))
    crates = components_by_purl(bom)
    assert set(crates) == {f"pkg:cargo/{p['name']}@{p['version']}" for p in RUST_PACKAGES}
    assert crates["pkg:cargo/serde_derive@1.0.215"]["scope"] == "excluded"  # build-time
    assert "scope" not in crates["pkg:cargo/serde@1.0.215"]
    assert props(crates["pkg:cargo/wit-bindgen@0.36.0"], "wasmctl:cargo:source") == ["git"]
    ref = {c["bom-ref"]: c["purl"] for c in bom["components"]}
    graph = {ref.get(d["ref"], d["ref"]): sorted(ref[x] for x in d.get("dependsOn", []))
             for d in bom["dependencies"]}  # fmt: skip
    root = bom["metadata"]["component"]["bom-ref"]
    assert graph[root] == ["pkg:cargo/edge-app@0.3.1"]
    assert graph["pkg:cargo/serde_json@1.0.133"] == [
        "pkg:cargo/itoa@1.0.14", "pkg:cargo/memchr@2.7.4", "pkg:cargo/ryu@1.0.18",
        "pkg:cargo/serde@1.0.215",
    ]  # fmt: skip
    tools = {t["name"]: t.get("version") for t in bom["metadata"]["tools"]["components"]}
    assert tools["rustc"] == "1.83.0 (90b35a623 2024-11-26)" and "wasmctl" in tools
    language = props(bom["metadata"]["component"], "wasmctl:wasm:producers:language")
    assert language == ["Rust"]


def test_rust_crates_in_spdx_are_packages_with_relationships(tmp_path: Path) -> None:
    path = rust_module(tmp_path)
    doc = sbom(path, "spdx-json")
    spdx_validate(path.with_suffix(".spdx-json.json"))
    names = {p["SPDXID"]: p["name"] for p in doc["packages"]}
    relations = {(names.get(r["spdxElementId"], r["spdxElementId"]), r["relationshipType"],
                  names.get(r["relatedSpdxElement"], r["relatedSpdxElement"]))
                 for r in doc["relationships"]}  # fmt: skip
    assert ("hello", "DEPENDS_ON", "edge-app") in relations
    assert ("serde_json", "DEPENDS_ON", "itoa") in relations
    assert ("serde_derive", "BUILD_DEPENDENCY_OF", "serde") in relations
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "hello") in relations
    purls = {ref["referenceLocator"] for p in doc["packages"] for ref in p.get("externalRefs", [])}
    assert "pkg:cargo/anyhow@1.0.93" in purls


@pytest.mark.parametrize(
    ("version_info", "reason"),
    [
        ({"packages": [{"name": "a", "version": "1", "root": True, "dependencies": [1]},
                       {"name": "b", "version": "1", "dependencies": [0]}]}, "cycle"),
        ({"packages": [{"name": "a", "version": "1", "root": True},
                       {"name": "b", "version": "1", "root": True}]}, "2 root"),
        ({"packages": [{"name": "a", "version": "1", "root": True, "dependencies": [7]}]},
         "out of range"),
        ({"packages": "nope"}, "no package list"),
    ],
)  # fmt: skip
def test_malformed_dependency_data_is_bad_input(
    tmp_path: Path, version_info: object, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = rust_module(tmp_path, version_info)
    out = tmp_path / "out.json"
    assert run(["sbom", str(path), "-o", str(out)]) == 2
    assert reason in capsys.readouterr().err
    assert not out.exists()


def test_a_zlib_bomb_is_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    assert run(["sbom", str(zlib_bomb(tmp_path)), "-o", str(out)]) == 2
    assert "decompression bomb" in capsys.readouterr().err
    assert not out.exists()


# -- components ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def component(corpus_by_name: dict[str, CorpusEntry], tmp_path_factory: Any) -> Path:
    return rust_component(
        tmp_path_factory.mktemp("component"), corpus_by_name["jco_adapter_command"].path
    )


def test_nested_modules_are_subcomponents_with_their_own_hashes(component: Path) -> None:
    import hashlib

    bom = sbom(component)
    top = bom["metadata"]["component"]
    assert props(top, "wasmctl:wasm:kind") == ["component"]
    shown = json.loads(wasm_tools("metadata", "show", "--json", component))["component"]
    data = component.read_bytes()
    ranges = [c["module"]["range"] for c in shown["children"] if "module" in c]
    expected = {hashlib.sha256(data[r["start"] : r["end"]]).hexdigest() for r in ranges}
    nested = {h["content"] for c in top["components"] for h in c["hashes"] if h["alg"] == "SHA-256"}
    assert expected and expected <= nested
    # the crates of the nested Rust module are in the SBOM, depended on by that sub-component
    crates = components_by_purl(bom)
    assert "pkg:cargo/serde@1.0.215" in crates
    owner = next(c for c in top["components"] if props(c, "wasmctl:wasm:producers:language"))
    edges = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert [crates["pkg:cargo/edge-app@0.3.1"]["bom-ref"]] == edges[owner["bom-ref"]]


def walk_wasm_tools(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "module" in node:
        yield node["module"]
    else:
        yield node["component"]["metadata"]
        for child in node["component"]["children"]:
            yield from walk_wasm_tools(child)


def walk_cdx(component: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield component
    for child in component.get("components", []):
        yield from walk_cdx(child)


@pytest.mark.parametrize("fixture", ["rust", "component", "go"])
def test_facts_agree_with_wasm_tools_metadata_show(
    fixture: str, component: Path, tmp_path: Path
) -> None:
    path = {"rust": lambda: rust_module(tmp_path), "component": lambda: component,
            "go": lambda: go_module(tmp_path)}[fixture]()  # fmt: skip
    import hashlib

    data = path.read_bytes()
    shown = {
        hashlib.sha256(data[node["range"]["start"] : node["range"]["end"]]).hexdigest(): node
        for node in walk_wasm_tools(json.loads(wasm_tools("metadata", "show", "--json", path)))
    }
    ours = {
        next(h["content"] for h in c["hashes"] if h["alg"] == "SHA-256"): c
        for c in walk_cdx(sbom(path)["metadata"]["component"])
    }
    assert set(ours) == set(shown)  # the same modules and components, by their bytes
    for digest, theirs in shown.items():
        mine = ours[digest]
        if theirs["name"]:
            assert mine["name"] == theirs["name"]
        producers = sorted(f"{field}={tool} {version}".strip()
                           for field, tools in theirs["producers"] or []
                           for tool, version in tools.items())  # fmt: skip
        recorded = sorted(
            f"{p['name'].rsplit(':', 1)[1]}={p['value']}"
            for p in mine.get("properties", [])
            if p["name"].startswith("wasmctl:wasm:producers:")
        )
        assert recorded == producers
        if theirs["dependencies"]:
            packages = json.loads(theirs["dependencies"])["packages"]
            assert {p["name"] for p in packages} == {p["name"] for p in RUST_PACKAGES}


# -- Go ------------------------------------------------------------------------------------


def test_go_modinfo_becomes_golang_components(tmp_path: Path) -> None:
    bom = sbom(go_module(tmp_path))
    modules = components_by_purl(bom)
    assert set(modules) == {
        "pkg:golang/example.com/edge@v1.4.0",
        "pkg:golang/github.com/google/uuid@v1.6.0",
        "pkg:golang/golang.org/x/text@v0.20.0",  # the replacement is what was built
    }
    text = modules["pkg:golang/golang.org/x/text@v0.20.0"]
    assert props(text, "wasmctl:go:replaces") == ["golang.org/x/text v0.21.0"]
    main = modules["pkg:golang/example.com/edge@v1.4.0"]
    assert "wasip1" in props(main, "wasmctl:go:build:GOOS")
    assert "GOOS=wasip1" in GO_MODINFO


def test_the_real_esbuild_wasm_names_its_go_main_module(tmp_path: Path) -> None:
    path = tmp_path / "esbuild.wasm"
    os.symlink(esbuild(default_cache_dir()), path)
    bom = sbom(path)
    main = next(c for c in bom["components"] if c["name"] == "github.com/evanw/esbuild")
    assert main["purl"] == "pkg:golang/github.com/evanw/esbuild"  # (devel): no version
    assert props(main, "wasmctl:go:build:GOOS") == ["js"]
    language = props(bom["metadata"]["component"], "wasmctl:wasm:producers:language")
    assert language == ["Go go1.26.5"]
    assert "gojs" in {i.split(":")[0] for i in props(bom["metadata"]["component"],
                                                      "wasmctl:wasm:import")}  # fmt: skip


# -- formats, validation, determinism ---------------------------------------------------------


@pytest.mark.parametrize("fmt", ["cyclonedx-json", "spdx-json"])
def test_the_same_input_gives_the_same_bytes(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = rust_module(tmp_path)
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    assert run(["sbom", str(path), "-f", fmt, "-o", str(first)]) == 0
    assert run(["sbom", str(path), "-f", fmt, "-o", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    assert run(["sbom", str(path), "-f", fmt, "-o", str(second)]) == 0
    assert first.read_bytes() != second.read_bytes()  # only the time moved
    if fmt == "cyclonedx-json":
        cdx_validate(first.read_text())
        a, b = json.loads(first.read_text()), json.loads(second.read_text())
        assert a["serialNumber"] == b["serialNumber"]  # derived from the content


@pytest.mark.parametrize(
    ("fixture", "fmt"),
    [("hello", "cyclonedx-json"), ("hello", "spdx-json"), ("rust", "cyclonedx-json"),
     ("rust", "spdx-json"), ("go", "cyclonedx-json")],
)  # fmt: skip
def test_output_matches_the_snapshot(fixture: str, fmt: str, tmp_path: Path) -> None:
    """The exact bytes for fixed inputs (regenerate with WASMCTL_UPDATE_SNAPSHOTS=1)."""
    from wasmctl import __version__

    path = {"hello": lambda: HELLO, "rust": lambda: rust_module(tmp_path),
            "go": lambda: go_module(tmp_path)}[fixture]()  # fmt: skip
    out = tmp_path / "sbom.json"
    assert run(["sbom", str(path), "-f", fmt, "-o", str(out)]) == 0
    text = out.read_text().replace(f"wasmctl-{__version__}", "wasmctl-VERSION")
    text = text.replace(f'"version": "{__version__}"', '"version": "VERSION"')
    golden = GOLDEN / f"{fixture}.{fmt}.json"
    if os.environ.get("WASMCTL_UPDATE_SNAPSHOTS"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_deflate_fixture_round_trips() -> None:
    import zlib

    assert json.loads(zlib.decompress(deflate({"a": 1}))) == {"a": 1}


def test_sbom_help_has_examples() -> None:
    proc = subprocess.run(["wasmctl", "sbom", "--help"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 0 and "Examples" in proc.stdout


def test_wasm_metadata_fields_agree_with_wasm_tools(tmp_path: Path) -> None:
    """What `wasm-tools metadata add` writes is what the SBOM says, in both formats."""
    path = tmp_path / "described.wasm"
    wasm_tools(
        *("metadata", "add", HELLO, "-o", path, "--name", "described"),
        *("--authors", "Ada Lovelace, Acme Inc."),
        *("--description", "Says hello"),
        *("--licenses", "Apache-2.0 OR MIT"),
        *("--source", "https://github.com/acme/hello"),
        *("--homepage", "https://acme.example/hello"),
        *("--revision", "0f3c1d2"),
        *("--version", "1.2.3"),
        *("--sdk", "wasi-sdk=25.0"),
    )
    shown = json.loads(wasm_tools("metadata", "show", "--json", path))["module"]
    component = sbom(path)["metadata"]["component"]
    assert component["name"] == shown["name"] == "described"
    assert component["version"] == shown["version"] == "1.2.3"
    assert component["description"] == shown["description"]
    assert component["licenses"] == [{"expression": shown["licenses"]}]
    assert sorted(a["name"] for a in component["authors"]) == ["Acme Inc.", "Ada Lovelace"]
    references = {r["type"]: r["url"] for r in component["externalReferences"]}
    assert references == {"vcs": shown["source"], "website": shown["homepage"]}
    assert props(component, "wasmctl:wasm:revision") == [shown["revision"]]
    doc = sbom(path, "spdx-json")
    package = doc["packages"][0]
    assert package["versionInfo"] == "1.2.3"
    assert package["licenseDeclared"] == "Apache-2.0 OR MIT"
    assert package["homepage"] == shown["homepage"]
    spdx_validate(path.with_suffix(".spdx-json.json"))
