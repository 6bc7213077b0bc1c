"""`wasmctl --version` and `--help` import nothing of the registry, signing, SBOM or pydantic
(issue 15): start-up is what every command pays, and these two should pay only that. A run
builds only the command it runs, so it imports no other command's module.

Each case runs in a fresh interpreter, which lists what it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Packages and modules that are heavy, or that only some commands need.
HEAVY = (
    "httpx", "httpcore", "h11", "certifi",  # the registry client
    "wasmctl.oci.registry", "wasmctl.oci.source", "wasmctl.oci.transfer",
    "cryptography", "sigstore", "nacl", "wasmctl.sign.signer", "wasmctl.sign.verifier",
    "cyclonedx", "spdx_tools", "jsonschema", "jsonschema_rs",  # SBOMs
    "wasmctl.sbom.cyclonedx", "wasmctl.sbom.spdx", "wasmctl.sbom.facts",
    "pydantic", "pydantic_core",
)  # fmt: skip
# The modules that define the commands (wasmctl.cli.COMMANDS), and `gate serve`.
COMMAND_MODULES = tuple(
    f"wasmctl.cli.{name}"
    for name in (
        "attest",
        "audit",
        "build",
        "gate",
        "inspect",
        "registry",
        "sbom",
        "scan",
        "serve",
        "sign",
    )
)

LIST_IMPORTS = """
import json, sys
before = set(sys.modules)
from wasmctl.cli import run
code = run(sys.argv[1:])
print(json.dumps({"code": int(code), "modules": sorted(set(sys.modules) - before)}))
"""


def fresh_run(*argv: str) -> tuple[int, list[str], str]:
    """The exit code, the modules imported and the standard error of `wasmctl ARGV`."""
    done = subprocess.run(
        [sys.executable, "-c", LIST_IMPORTS, *argv],
        capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], list(result["modules"]), done.stderr


def imported(*argv: str) -> list[str]:
    code, modules, _ = fresh_run(*argv)
    assert code == 0
    return modules


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def command_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m in COMMAND_MODULES]


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["-h"]])
def test_version_and_help_import_nothing_heavy(argv: list[str]) -> None:
    modules = imported(*argv)
    assert "wasmctl.cli" in modules  # the list is real
    assert heavy(modules) == []


@pytest.mark.parametrize("command", ["push", "pull", "scan", "sbom", "sign", "attest", "gate"])
def test_a_commands_help_imports_nothing_heavy(command: str) -> None:
    # typer 0.29 coerces the group's own options through pydantic before a command's help
    # is shown: pyproject.toml keeps typer below it.
    assert heavy(imported(command, "--help")) == []


def test_version_imports_no_command() -> None:
    assert command_modules(imported("--version")) == []


def test_a_commands_help_imports_its_module_only() -> None:
    assert command_modules(imported("pull", "--help")) == ["wasmctl.cli.registry"]


def test_gate_serve_help_imports_its_module_and_what_it_uses_only() -> None:
    # serve's options come from the registry commands' (CaFile, PlainHttp)
    assert command_modules(imported("gate", "serve", "--help")) == [
        "wasmctl.cli.registry",
        "wasmctl.cli.serve",
    ]


def test_a_mistyped_command_is_suggested_without_building_any() -> None:
    code, modules, stderr = fresh_run("pul")
    assert code == 2
    assert "No such command 'pul'. Did you mean 'pull'?" in stderr
    assert command_modules(modules) == []
