"""The scan reporters: JSON and SARIF fit their schemas; the table is safe to print."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from tests.schemas import doc_schema, sarif_schema
from wasmctl.scan import load_preset, scan_paths
from wasmctl.scan.report import ReportFormat, render

Wat = Callable[[str], Path]


@pytest.fixture
def mixed_report(wat: Wat, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A scan with a denied module, a warned one, an allowed one and an unparseable file."""
    folder = tmp_path / "dist"
    folder.mkdir()
    wat('(module (import "wasi_snapshot_preview1" "sock_accept" (func)))').rename(
        folder / "server.wasm"
    )
    wat('(module (import "env" "proxy_get_buffer_bytes" (func)))').rename(folder / "filter.wasm")
    wat("(module)").rename(folder / "empty.wasm")
    (folder / "broken.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00\x02\xff")
    return scan_paths([folder], [load_preset("no-network")])


def test_every_format_renders(mixed_report) -> None:  # type: ignore[no-untyped-def]
    for fmt in ReportFormat:
        assert render(mixed_report, fmt).strip()


def test_json_report_fits_its_documented_schema(mixed_report) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(render(mixed_report, ReportFormat.JSON))
    jsonschema.validate(data, doc_schema("scan-report.schema.json"))
    verdicts = {Path(t["path"]).name: t["verdict"] for t in data["targets"]}
    assert verdicts == {
        "broken.wasm": "error",
        "empty.wasm": "allow",
        "filter.wasm": "warn",
        "server.wasm": "deny",
    }
    assert data["verdict"] == "deny"
    assert data["summary"] == {"targets": 4, "allow": 1, "warn": 1, "deny": 1, "error": 1}


def test_sarif_validates_against_the_sarif_2_1_0_schema(mixed_report) -> None:  # type: ignore[no-untyped-def]
    log = json.loads(render(mixed_report, ReportFormat.SARIF))
    jsonschema.Draft4Validator(sarif_schema()).validate(log)
    (run,) = log["runs"]
    rules = {r["ruleId"] for r in run["results"]}
    assert rules == {"WASM001", "WASM003"} | {"WASM001"}  # warnings are WASM001 too
    for result in run["results"]:
        location = result["locations"][0]["physicalLocation"]
        assert "region" not in location  # binaries have no lines
        assert len(result["partialFingerprints"]["wasmctlFinding/v1"]) == 64
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    levels = sorted(r["level"] for r in run["results"])
    assert levels == ["error", "error", "warning"]


def test_sarif_fingerprints_are_stable_and_distinct(mixed_report) -> None:  # type: ignore[no-untyped-def]
    first = json.loads(render(mixed_report, ReportFormat.SARIF))["runs"][0]["results"]
    again = json.loads(render(mixed_report, ReportFormat.SARIF))["runs"][0]["results"]
    prints = [r["partialFingerprints"]["wasmctlFinding/v1"] for r in first]
    assert prints == [r["partialFingerprints"]["wasmctlFinding/v1"] for r in again]
    assert len(set(prints)) == len(prints)


def test_table_groups_by_capability_and_names_the_rule(mixed_report) -> None:  # type: ignore[no-untyped-def]
    text = render(mixed_report, ReportFormat.TABLE, width=160)
    assert "network.socket" in text and "wasi_snapshot_preview1:sock_accept" in text
    assert "deny[0] capability=network.*" in text
    assert "4 target(s) scanned against no-network" in text


def test_table_escapes_hostile_names(tmp_path: Path, wat: Wat) -> None:
    evil = wat('(module (import "env\\1b[2J" "\\e2\\80\\aeproxy_log" (func)))')
    target = tmp_path / "evil\x1b]0;title\x07.wasm"
    evil.rename(target)
    text = render(scan_paths([target], [load_preset("no-network")]), ReportFormat.TABLE)
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b[2J" in text and "\\u202e" in text
