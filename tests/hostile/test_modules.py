"""Hostile modules: section counts that lie, huge import and dependency lists, components
nested without end. Each case runs the real command line under resource limits
(tests/hostile/harness.py): a malformed module ends with exit 2 and nothing written, a large
but well-formed one finishes inside the limits. The limits are the bound, not a timer."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from tests.hostile.harness import expect, run_bounded
from tests.wasmbytes import (
    COMPONENT_PREAMBLE,
    core_module,
    custom_section,
    name,
    section,
    uleb,
    vec_section,
)

IMPORTS = 200_000
CRATES = 10_000
NESTING = 10_000
# Address space for a run over 200,000 imports: the report streams, so what a run holds
# is the parsed module and its verdicts (before: a gigabyte for `scan -f json`).
IMPORTS_MEMORY = 700 << 20


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    box = tmp_path / "box"
    box.mkdir()
    return box


def many_imports(count: int = IMPORTS) -> bytes:
    """A module importing `count` distinct functions of one type."""
    entries = [name("env") + name(f"f{i}") + b"\x00\x00" for i in range(count)]
    return core_module(vec_section(1, b"\x60\x00\x00"), vec_section(2, *entries))


def many_crates(count: int = CRATES) -> bytes:
    """A module whose `.dep-v0` lists `count` crates, each depending on up to three later
    ones (a DAG), the root on the first fifty."""
    packages: list[dict[str, object]] = [
        {"name": "app", "version": "1.0.0", "source": "local", "root": True,
         "dependencies": list(range(1, min(count, 51)))},
    ]  # fmt: skip
    for i in range(1, count):
        later = sorted({j for j in (i + 1, i * 7 % count, i * 13 % count) if i < j < count})
        packages.append({"name": f"crate-{i}", "version": f"1.{i}.0", "source": "crates.io",
                         "dependencies": later})  # fmt: skip
    payload = zlib.compress(json.dumps({"format": 1, "packages": packages}).encode(), 9)
    return core_module(vec_section(1, b"\x60\x00\x00")) + custom_section(".dep-v0", payload)


def nested_components(depth: int = NESTING) -> bytes:
    """A component holding a component holding ... `depth` levels, built inside out."""
    inner = COMPONENT_PREAMBLE
    for _ in range(depth):
        inner = COMPONENT_PREAMBLE + section(4, inner)
    return inner


# -- section counts -----------------------------------------------------------------------


def test_a_type_section_claiming_four_billion_types_is_not_built(sandbox: Path) -> None:
    (sandbox / "lie.wasm").write_bytes(core_module(section(1, uleb(0xFFFFFFFF))))
    outcome = run_bounded(["build", "lie.wasm", "-t", "oci:out:v1"], sandbox=sandbox, cpu=20)
    expect(outcome, 2, says="types count 4294967295")
    assert not (sandbox / "out").exists()


def test_a_section_with_bytes_after_its_entries_is_malformed(sandbox: Path) -> None:
    (sandbox / "tail.wasm").write_bytes(core_module(section(5, b"\x01\x00\x01\x00")))
    outcome = run_bounded(["build", "tail.wasm", "-t", "oci:out:v1"], sandbox=sandbox, cpu=20)
    expect(outcome, 2, says="memory section has 1 bytes after its last entry")
    assert not (sandbox / "out").exists()


def test_components_nested_ten_thousand_deep_are_refused(sandbox: Path) -> None:
    (sandbox / "deep.wasm").write_bytes(nested_components())
    for argv in (["inspect", "deep.wasm"], ["scan", "deep.wasm"], ["sbom", "deep.wasm"]):
        expect(run_bounded(argv, sandbox=sandbox, cpu=30), 2, says="nested deeper than")


# -- size -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "-f", "json", "many.wasm"],
        ["inspect", "many.wasm"],
        ["scan", "-f", "json", "many.wasm"],
        ["scan", "-f", "sarif", "many.wasm"],
        ["scan", "many.wasm"],
    ],
    ids=["inspect-json", "inspect-table", "scan-json", "scan-sarif", "scan-table"],
)
def test_two_hundred_thousand_imports_stay_inside_the_limits(
    sandbox: Path, argv: list[str]
) -> None:
    (sandbox / "many.wasm").write_bytes(many_imports())
    outcome = run_bounded(argv, sandbox=sandbox, memory=IMPORTS_MEMORY, cpu=60, wall=120)
    # The audit policy warns about unknown imports: exit 0, and every import is reported.
    expect(outcome, 0)
    assert f"f{IMPORTS - 1}" in outcome.stdout


def test_scan_json_of_two_hundred_thousand_imports_is_complete_json(sandbox: Path) -> None:
    (sandbox / "many.wasm").write_bytes(many_imports())
    outcome = run_bounded(
        ["scan", "-f", "json", "many.wasm"],
        sandbox=sandbox,
        memory=IMPORTS_MEMORY,
        cpu=60,
        wall=120,
    )
    expect(outcome, 0)
    (target,) = json.loads(outcome.stdout)["targets"]
    assert len(target["imports"]) == len(target["findings"]) == IMPORTS


@pytest.mark.parametrize("fmt", ["cyclonedx-json", "spdx-json"])
def test_ten_thousand_crates_make_an_sbom_in_linear_time(sandbox: Path, fmt: str) -> None:
    (sandbox / "crates.wasm").write_bytes(many_crates())
    # Before: quadratic in the crates, over 100 s for 10,000 and far past this bound.
    outcome = run_bounded(
        ["sbom", "-f", fmt, "crates.wasm", "-o", "sbom.json"],
        sandbox=sandbox,
        may_write=[sandbox / "sbom.json"],
        cpu=60,
        wall=150,
    )
    expect(outcome, 0)
    document = json.loads((sandbox / "sbom.json").read_text())
    listed = document["components"] if fmt == "cyclonedx-json" else document["packages"]
    assert len(listed) >= CRATES
