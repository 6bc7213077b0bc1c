"""The documentation keeps up with the code: every class, option and command is described."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from wasmctl.cli import COMMANDS, app
from wasmctl.scan import PRESETS
from wasmctl.scan.capabilities import Capability
from wasmctl.scan.model import RuleId

ROOT = Path(__file__).parents[1]


def test_every_capability_class_is_documented() -> None:
    text = (ROOT / "docs" / "capabilities.md").read_text()
    documented = set(re.findall(r"^\| `([a-z.-]+)` \|", text, re.MULTILINE))
    assert documented == {c.value for c in Capability}


def test_every_preset_and_finding_rule_is_documented() -> None:
    text = (ROOT / "docs" / "policy.md").read_text()
    for preset in PRESETS:
        assert f"| `{preset}` |" in text
    for rule in RuleId:
        assert f"| {rule.value} |" in text


def test_the_presets_are_the_files_of_the_presets_folder() -> None:
    folder = ROOT / "wasmctl" / "scan" / "presets"
    assert {p.stem for p in folder.glob("*.yaml")} == set(PRESETS)


def test_the_readme_lists_every_preset_in_order() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("Presets: "))
    assert re.findall(r"`([a-z0-9-]+)`", line) == list(PRESETS)


def _preset_enums(node: Any) -> list[list[str]]:
    """Every `enum` under a `presets` property of a JSON schema."""
    found = []
    if isinstance(node, dict):
        presets = node.get("properties", {}).get("presets", {})
        if "enum" in presets.get("items", {}):
            found.append(presets["items"]["enum"])
        for value in node.values():
            found += _preset_enums(value)
    elif isinstance(node, list):
        for value in node:
            found += _preset_enums(value)
    return found


def test_the_gate_policy_schema_allows_exactly_the_presets() -> None:
    schema = json.loads((ROOT / "docs" / "gate.schema.json").read_text())
    enums = _preset_enums(schema)
    assert len(enums) == 2  # the gate's scan, and an override's
    assert all(enum == list(PRESETS) for enum in enums)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_option_appears_in_the_readme(command: str) -> None:
    import typer.main

    readme = (ROOT / "README.md").read_text()
    assert f"## `wasmctl {command}" in readme
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for param in click_command.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in readme, f"{command} {opt} is not in README.md"
