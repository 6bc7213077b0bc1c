"""The documentation keeps up with the code: every class, option and command is described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wasmctl.cli import app
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


@pytest.mark.parametrize("command", [c.name for c in app.registered_commands])
def test_every_command_option_appears_in_the_readme(command: str) -> None:
    import typer.main

    readme = (ROOT / "README.md").read_text()
    assert f"## `wasmctl {command}" in readme
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for param in click_command.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in readme, f"{command} {opt} is not in README.md"
