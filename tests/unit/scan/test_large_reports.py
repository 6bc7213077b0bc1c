"""Scans of modules with very many imports: one table lookup per import, reports written
as they are made, byte for byte what the one-string renderers write."""

from __future__ import annotations

import itertools
import json
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from tests.wasmbytes import core_module, name, vec_section
from wasmctl._render import iter_json
from wasmctl.scan import AUDIT, load_preset, scan_paths
from wasmctl.scan.capabilities import IMPORT_RULES, _first_import_rule
from wasmctl.scan.report import ReportFormat, render, render_chunks
from wasmctl.scan.report.json import report_data
from wasmctl.scan.report.sarif import sarif_log
from wasmctl.scan.report.table import RICH_ROW_LIMIT


def probes() -> tuple[set[str], set[str]]:
    """Module and import names made from every pattern of the table, wildcards filled in
    several ways (with a NUL and a newline too)."""
    modules, names = {"", "env", "x", "env\x00x"}, {"", "x", "a\x00b\nc"}
    for rule in IMPORT_RULES:
        for pattern, bag in ((rule.module, modules), (rule.name, names)):
            bag |= {pattern.replace("*", fill) for fill in ("", "x", "a/b:c\x00d")}
            bag.add(pattern.replace("?", "q"))
    return modules, names


def test_the_table_lookup_finds_the_first_matching_row() -> None:
    modules, names = probes()
    for module, import_name in itertools.product(modules, names):
        expected = next(
            (r for r in IMPORT_RULES
             if fnmatchcase(module, r.module) and fnmatchcase(import_name, r.name)),
            None,
        )  # fmt: skip
        assert _first_import_rule(module, import_name) is expected, (module, import_name)


@pytest.mark.parametrize(
    "value",
    [{}, [], {"a": []}, {"a": {}}, [[[]]], "s", 1, None, True,
     {"a": [1, {"b": None, "c": "x\ny\u00e9\u2028\"\\"}], "d": {"e": [[], [1, 2.5, False]]}},
     [{"k": "v", "n": 1}, {"k": None}], {"x": [{"y": {"z": []}}]}],
)  # fmt: skip
def test_streamed_json_is_what_json_dumps_writes(value: object) -> None:
    assert "".join(iter_json(value)) == json.dumps(value, indent=2, ensure_ascii=False)


def test_streamed_json_takes_generators_for_lists() -> None:
    rows = ({"i": i} for i in range(3))
    assert "".join(iter_json({"rows": rows, "empty": iter(())})) == json.dumps(
        {"rows": [{"i": i} for i in range(3)], "empty": []}, indent=2
    )


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module importing 3,000 functions: unknown ones and WASI ones."""
    entries = [name("env") + name(f"f{i}") + b"\x00\x00" for i in range(2_000)]
    entries += [name("wasi_snapshot_preview1") + name(f"sock_{i}") + b"\x00\x00"
                for i in range(1_000)]  # fmt: skip
    path = tmp_path_factory.mktemp("many") / "many.wasm"
    path.write_bytes(core_module(vec_section(1, b"\x60\x00\x00"), vec_section(2, *entries)))
    return path


@pytest.mark.parametrize("preset", [None, "no-network"])
def test_json_and_sarif_reports_stream_the_same_text(many: Path, preset: str | None) -> None:
    report = scan_paths([many], [load_preset(preset) if preset else AUDIT])
    as_data = json.dumps(report_data(report), indent=2, ensure_ascii=False) + "\n"
    assert "".join(render_chunks(report, ReportFormat.JSON)) == as_data
    assert render(report, ReportFormat.JSON) == as_data
    sarif = json.dumps(sarif_log(report), indent=2, ensure_ascii=False) + "\n"
    assert "".join(render_chunks(report, ReportFormat.SARIF)) == sarif
    assert len(json.loads(as_data)["targets"][0]["imports"]) == 3_000


def test_a_long_table_is_written_as_plain_columns(many: Path) -> None:
    report = scan_paths([many], [AUDIT])
    assert len(report.targets[0].imports) > RICH_ROW_LIMIT
    text = render(report, ReportFormat.TABLE)
    lines = text.splitlines()
    assert lines[1].split() == ["capability", "import", "kind", "result", "decided", "by"]
    assert "env:f1999" in text
    assert "wasi_snapshot_preview1:sock_999" in text
    assert "1 target(s) scanned" in lines[-1]
