"""A gate policy that looks strict must be strict: no silent duplicates, no empty allow-lists
that allow everything, no missing version, no YAML that costs more than it weighs."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmctl.errors import PolicyError
from wasmctl.gate.policy import load_gate_policy


def policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pin: digest\n", "no `version`"),
        ("version: true\n", "unsupported gate policy version"),
        ("version: '1'\n", "unsupported gate policy version"),
        ("version: 1\nformats: []\n", "`formats` has an empty list"),
        ("version: 1\nregistries: []\n", "`registries` has an empty list"),
        ("version: 1\nregistries:\n", "`registries` has no value"),
        ("version: 1\nruntimeClasses: []\n", "`runtimeClasses` has an empty list"),
        ("version: 1\nsignatures:\n", "`signatures` has no value"),
        ("version: 1\nscan: {presets: []}\n", "`scan.presets` has an empty list"),
        ("version: 1\nattestations: []\n", "`attestations` has an empty list"),
        ("version: 1\nsignatures: {keys: []}\n", "`signatures.keys` has an empty list"),
        ("version: 1\ntrust: {offline: 'yes'}\n", "`trust.offline` must be true or false"),
        (
            "version: 1\noverrides: [{match: 'x/*', formats: []}]\n",
            "`overrides[0].formats` has an empty list",
        ),
        (
            "version: 1\nsignatures: {required: 2, keys: [k.pub]}\nsignatures: {keys: [k.pub]}\n",
            "duplicate key 'signatures'",
        ),
        ("version: 1\npin: digest\npin: tag\n", "duplicate key 'pin'"),
        (
            "version: 1\nsignatures:\n  keyless:\n    - {identity: a, issuer: b, "
            "github: {repository: [x]}}\n",
            "github.repository` must be a string",
        ),
    ],
)
def test_policies_that_look_strict_but_are_not_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_gate_policy(policy(tmp_path, text))


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    text = "version: 1\n" + "\n".join(levels) + "\n"
    with pytest.raises(PolicyError, match="aliases expand"):
        load_gate_policy(policy(tmp_path, text))


def test_a_deeply_nested_policy_is_refused(tmp_path: Path) -> None:
    text = "version: 1\nformats: " + "[" * 50_000 + "]" * 50_000 + "\n"
    with pytest.raises(PolicyError, match="nested deeper"):
        load_gate_policy(policy(tmp_path, text))


def test_small_aliases_still_work(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("unused until a gate runs")
    text = (
        "version: 1\nformats: &allowed [wasm, compat]\n"
        "overrides: [{match: 'oci:*', formats: *allowed, pin: record}]\n"
    )
    loaded = load_gate_policy(policy(tmp_path, text))
    assert loaded.rules.formats == ("wasm", "compat")
    assert loaded.overrides[0].rules.formats == ("wasm", "compat")


def test_a_policy_key_that_is_a_special_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.symlink_to("/dev/zero")
    with pytest.raises(PolicyError, match="is a device, not a regular file"):
        load_gate_policy(path)
