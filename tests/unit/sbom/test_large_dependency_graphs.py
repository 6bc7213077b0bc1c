"""SBOMs of modules with many embedded crates: linear work, and the same bytes the
libraries' own (quadratic) paths write."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.sbom_fixtures import rust_module
from wasmctl.errors import InternalError
from wasmctl.sbom import SbomFormat, render
from wasmctl.sbom.cyclonedx import _schema_validator
from wasmctl.sbom.deps import DependencyDataError, read_cargo_dependencies
from wasmctl.sbom.facts import Subject, file_facts


def crates(count: int) -> dict[str, Any]:
    packages: list[dict[str, Any]] = [
        {"name": "app", "version": "1.0.0", "source": "local", "root": True,
         "dependencies": list(range(1, min(count, 20)))},
    ]  # fmt: skip
    for i in range(1, count):
        later = sorted({j for j in (i + 1, i * 7 % count) if i < j < count})
        packages.append(
            {
                "name": f"crate-{i}",
                "version": "1.0.0",
                "source": "crates.io",
                "dependencies": later,
                **({"kind": "build"} if i % 9 == 0 else {}),
            }
        )
    return {"format": 1, "packages": packages}  # fmt: skip


@pytest.fixture(autouse=True)
def fixed_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1732579200")


def library_cyclonedx(subject: Subject) -> str:
    """The document as cyclonedx-python-lib's own outputter writes it, with
    `register_dependency` for every edge (the quadratic path, fine for a small graph)."""
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion

    from wasmctl.sbom import cyclonedx

    captured: dict[str, Any] = {}
    original = cyclonedx._check_graph

    def capture(bom: Any) -> None:
        captured["bom"] = bom
        original(bom)

    cyclonedx._check_graph = capture
    try:
        render(subject, SbomFormat.CYCLONEDX_JSON)
    finally:
        cyclonedx._check_graph = original
    bom = captured["bom"]
    graph = {d.ref: [c.ref for c in d.dependencies] for d in bom.dependencies}
    bom.dependencies = []
    described = {c.bom_ref: c for c in cyclonedx._all_components(bom)}
    for ref, children in graph.items():
        bom.register_dependency(described[ref], [described[c] for c in children])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2)
    return str(text) + "\n"


def test_cyclonedx_is_what_the_library_outputter_writes(tmp_path: Path) -> None:
    subject = Subject((file_facts(rust_module(tmp_path, crates(60))),))
    ours = render(subject, SbomFormat.CYCLONEDX_JSON).text
    assert ours == library_cyclonedx(subject)
    document = json.loads(ours)
    assert len(document["components"]) == 60
    assert sum(len(d.get("dependsOn", [])) for d in document["dependencies"]) > 60


@pytest.mark.parametrize("fmt", list(SbomFormat))
def test_two_thousand_crates_render_and_validate(tmp_path: Path, fmt: SbomFormat) -> None:
    subject = Subject((file_facts(rust_module(tmp_path, crates(2_000))),))
    document = json.loads(render(subject, fmt).text)
    listed = document["components" if fmt is SbomFormat.CYCLONEDX_JSON else "packages"]
    assert len(listed) >= 2_000


def test_the_linear_schema_check_still_refuses_repeated_items() -> None:
    component = {"type": "library", "name": "x", "bom-ref": "a"}
    document = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
                "components": [component, dict(component)]}  # fmt: skip
    errors = list(_schema_validator().iter_errors(document))
    assert any("non-unique" in e.message for e in errors)
    document["components"][1]["bom-ref"] = "b"
    assert not list(_schema_validator().iter_errors(document))


def test_spdx_validation_catches_a_relationship_to_nowhere(tmp_path: Path) -> None:
    from spdx_tools.spdx.model.relationship import Relationship, RelationshipType

    from wasmctl.sbom import spdx

    subject = Subject((file_facts(rust_module(tmp_path, crates(5))),))
    original = spdx._validate

    def dangling(document: Any) -> list[str]:
        document.relationships.append(
            Relationship("SPDXRef-Module-0", RelationshipType.DEPENDS_ON, "SPDXRef-Nowhere")
        )
        return original(document)

    spdx._validate = dangling
    try:
        with pytest.raises(InternalError, match="SPDXRef-Nowhere"):
            render(subject, SbomFormat.SPDX_JSON)
    finally:
        spdx._validate = original


def test_dependency_json_nested_without_end_is_bad_input() -> None:
    import zlib

    with pytest.raises(DependencyDataError, match="nested deeper"):
        read_cargo_dependencies(zlib.compress(b"[" * 100_000 + b"]" * 100_000))
