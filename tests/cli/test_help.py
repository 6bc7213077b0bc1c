"""`--help` at 80 columns reads as `gh`'s and `cosign`'s does (issue 15): no type
placeholders, a flag shows no value, choices are listed, names are never cut, no line is
wider than the terminal, and examples are one per line."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main

from wasmctl import cli
from wasmctl.cli import EXAMPLES, app, run
from wasmctl.cli.audit import FORMATS, THRESHOLDS
from wasmctl.gate.formats import GateFormat

WIDTH = 80
COMMANDS = [
    [],
    *([name] for name in cli.COMMANDS),
    ["gate", "serve"],
    ["audit", "db"],
    ["audit", "db", "update"],
]
# Options taking one of a few words, checked in the command rather than by their type
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("gate", "--format"): tuple(GateFormat),
    ("audit", "--format"): FORMATS,
    ("audit", "--fail-on"): THRESHOLDS,
    ("gate serve", "--mode"): ("enforce", "warn"),
    ("gate serve", "--on-error"): ("deny", "allow"),
}


def _help(words: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert run([*words, "--help"]) == 0
    return capsys.readouterr().out


def _command(words: list[str]) -> Any:
    """The click command `words` name, `gate serve` and `audit db update` included."""
    group: Any = typer.main.get_command(app)
    ctx = group.make_context("wasmctl", [*words, "--help"], resilient_parsing=True)
    command = group
    rest = list(words)
    while rest:
        _, command, rest = command.resolve_command(ctx, rest)
    return command


def _id(words: list[str]) -> str:
    return " ".join(words) or "wasmctl"


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))


@pytest.mark.parametrize("words", COMMANDS, ids=_id)
def test_no_type_placeholders(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(words, capsys)
    assert re.findall(r"<[a-z][a-z_ \[\]|,]*>", out) == []
    assert "{" not in out.splitlines()[0]  # usage names arguments as TARGET, not {TARGET}


@pytest.mark.parametrize("words", COMMANDS, ids=_id)
def test_no_line_is_wider_than_the_terminal(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert [line for line in _help(words, capsys).splitlines() if len(line) > WIDTH] == []


@pytest.mark.parametrize("words", COMMANDS, ids=_id)
def test_every_option_name_is_shown_whole(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _help(words, capsys)
    for param in _command(words).params:
        if param.param_type_name != "option" or param.hidden:
            continue
        for opt in (*param.opts, *param.secondary_opts):
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w…-])", out), opt


@pytest.mark.parametrize("words", COMMANDS, ids=_id)
def test_a_flag_shows_no_value(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(words, capsys)
    for param in _command(words).params:
        if param.param_type_name == "option" and getattr(param, "is_flag", False):
            name = [o for o in param.opts if o.startswith("--")][-1]
            assert re.search(rf"{re.escape(name)}(  |\n)", out), f"{name} shows a value"


@pytest.mark.parametrize("words", COMMANDS, ids=_id)
def test_every_choice_of_an_option_is_listed(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _help(words, capsys)
    for param in _command(words).params:
        if param.param_type_name != "option":
            continue
        name = next(o for o in param.opts if o.startswith("--"))
        descriptor = getattr(param, "type_descriptor", None)
        choices = CHOICES.get((" ".join(words), name)) or tuple(
            getattr(c, "value", c) for c in (getattr(descriptor, "choices", None) or ())
        )
        if choices:
            assert f"{name} [{'|'.join(map(str, choices))}]" in out


def test_choice_options_with_no_type_are_all_known() -> None:
    """Each `CHOICES` entry names a real option: the table cannot go stale silently."""
    for words, name in CHOICES:
        command = _command(words.split())
        assert any(name in p.opts for p in command.params), (words, name)


def test_the_gate_format_choices_are_the_formats_it_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "--format [table|json|sarif]" in _help(["gate"], capsys)


def test_the_top_level_examples_are_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help([], capsys)
    examples = [line.strip() for line in EXAMPLES.splitlines() if line.startswith("  wasmctl")]
    assert len(examples) >= 5
    lines = [line.strip() for line in out.splitlines()]
    for example in examples:
        assert example in lines


def test_verify_says_its_bundle_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    out = " ".join(_help(["verify"], capsys).split())
    assert "write or read" not in out
    assert "--bundle PATH For a file: the bundle to verify it with" in out


def test_sign_says_its_bundle_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    out = " ".join(_help(["sign"], capsys).split())
    assert "--bundle PATH For a file: where to write its bundle" in out


def test_a_long_alias_puts_its_help_on_the_next_line(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _help(["verify"], capsys).splitlines()
    i = next(
        i for i, line in enumerate(lines) if "--certificate-github-workflow-repository" in line
    )
    assert lines[i].split() == [
        "--github-repository,", "--certificate-github-workflow-repository", "REPO"
    ]  # fmt: skip
    assert lines[i + 1].strip().startswith("Keyless: the GitHub repository")
