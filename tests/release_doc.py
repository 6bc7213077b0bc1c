"""docs/release.md read as data: its workflow, gate policy, wasmctl command lines and
provenance step, so that tests run what the page shows instead of a copy of it.

Blocks are found by their first line (`# .github/workflows/release.yml`, `# deploy/gate.yaml`),
command lines in `sh` blocks (backslash continuations joined), in inline code spans that start
with `wasmctl `, and in the workflow's steps that use the wasmctl action (`command` and `args`,
with each `${{ }}` expression replaced by a value of what it stands for, from `EXPRESSIONS`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "release.md"
WORKFLOW_TITLE = "# .github/workflows/release.yml"
POLICY_TITLE = "# deploy/gate.yaml"
ACTION = re.compile(r"OWNER/wasmctl@[0-9a-f]{40}")
PROVENANCE_STEP = "Write its SLSA v1 provenance"

# What each expression of the workflow's `args` stands for in a tag push of acme/app v1.2.3.
EXPRESSIONS = {
    "github.server_url": "https://github.com",
    "github.repository": "acme/app",
    "github.sha": "0123456789abcdef0123456789abcdef01234567",
    "github.ref_name": "v1.2.3",
    "env.IMAGE": "ghcr.io/acme/app",
    "steps.build.outputs.digest": "sha256:" + "ab" * 32,
}
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language and text."""

    language: str
    text: str

    @property
    def title(self) -> str:
        return self.text.split("\n", 1)[0].strip()


@dataclass(frozen=True)
class CommandLine:
    """One wasmctl command line the page shows, and where."""

    where: str
    argv: tuple[str, ...]  # without the leading `wasmctl`

    @property
    def command(self) -> str:
        return self.argv[0]

    @property
    def args(self) -> tuple[str, ...]:
        return self.argv[1:]


def text() -> str:
    return DOC.read_text(encoding="utf-8")


def blocks() -> list[Block]:
    return [
        Block(m["language"], m["body"])
        for m in re.finditer(r"^```(?P<language>\w*)\n(?P<body>.*?)^```$", text(), re.M | re.S)
    ]


def block(title: str) -> str:
    """The one block whose first line is `title`."""
    [found] = [b.text for b in blocks() if b.title == title]
    return found


def workflow() -> dict[Any, Any]:
    """The workflow as PyYAML reads it (YAML 1.1: the key `on` is True)."""
    document: dict[Any, Any] = yaml.safe_load(block(WORKFLOW_TITLE))
    return document


def steps() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"]["release"]["steps"]
    return found


def policy_text() -> str:
    return block(POLICY_TITLE)


def substitute(value: str) -> str:
    """`value` with each `${{ expression }}` replaced by what it stands for; KeyError for
    an expression `EXPRESSIONS` does not know."""
    return _EXPRESSION.sub(lambda m: EXPRESSIONS[m[1]], value)


def action_steps() -> list[dict[str, Any]]:
    """The workflow's steps that run the wasmctl action, in order."""
    return [s for s in steps() if ACTION.fullmatch(str(s.get("uses", "")))]


def action_command_lines() -> list[CommandLine]:
    """The command line each wasmctl action step runs, as action/run.py builds it (its
    `policy` input becomes `--policy`)."""
    out = []
    for step in action_steps():
        inputs = step["with"]
        extra = ("--policy", inputs["policy"]) if "policy" in inputs else ()
        argv = (inputs["command"], *extra, *shlex.split(substitute(inputs.get("args", ""))))
        out.append(CommandLine(f"workflow step {step['name']!r}", argv))
    return out


def shell_command_lines() -> list[CommandLine]:
    """The `wasmctl` command lines of the page's `sh` blocks."""
    lines = (
        line
        for b in blocks()
        if b.language == "sh"
        for line in b.text.replace("\\\n", " ").splitlines()
    )
    return [
        CommandLine("sh block", tuple(shlex.split(line)[1:]))
        for line in lines
        if line.startswith("wasmctl ")
    ]


def _spans() -> list[str]:
    """The prose's inline code spans, outside fenced blocks, whitespace collapsed (a span
    may break across lines)."""
    prose = re.sub(r"^```.*?^```$", "", text(), flags=re.M | re.S)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def inline_command_lines() -> list[CommandLine]:
    """The prose's inline code spans that are wasmctl command lines (with arguments)."""
    return [
        CommandLine("inline", tuple(shlex.split(span)[1:]))
        for span in _spans()
        if span.startswith("wasmctl ") and len(span.split()) > 2
    ]


def mentioned_commands() -> list[str]:
    """The commands the prose names (`wasmctl verify`)."""
    return [span.split()[1] for span in _spans() if span.startswith("wasmctl ")]


def inline_options() -> list[str]:
    """Options the prose names on their own (`--source-tag v1.2.3`)."""
    return [span.split()[0] for span in _spans() if re.match(r"--[a-z]", span)]


def command_lines() -> list[CommandLine]:
    return [*action_command_lines(), *shell_command_lines(), *inline_command_lines()]


def verify_commands() -> list[tuple[str, ...]]:
    """The `wasmctl verify` command lines of the `sh` block: signatures, then provenance."""
    return [c.args for c in shell_command_lines() if c.command == "verify"]


def with_target(args: tuple[str, ...], target: str) -> list[str]:
    """A verify command line from the page, with its first word (the artifact) replaced."""
    assert not args[0].startswith("-"), args
    return [target, *args[1:]]


# -- the provenance step -------------------------------------------------------------------


def github_environment(
    *,
    repository: str = "acme/app",
    ref: str = "refs/tags/v1.2.3",
    sha: str = "0123456789abcdef0123456789abcdef01234567",
    workflow_path: str = ".github/workflows/release.yml",
    runner_environment: str = "github-hosted",
    **more: str,
) -> dict[str, str]:
    """The variables GitHub sets for a step of a run of `workflow_path` in `repository` at
    `ref` (a tag push by default); `more` adds or replaces variables by name."""
    return {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": repository,
        "GITHUB_REF": ref,
        "GITHUB_SHA": sha,
        "GITHUB_WORKFLOW_REF": f"{repository}/{workflow_path}@{ref}",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REPOSITORY_ID": "123456789",
        "GITHUB_REPOSITORY_OWNER_ID": "987654",
        "RUNNER_ENVIRONMENT": runner_environment,
        "GITHUB_RUN_ID": "1234567890",
        "GITHUB_RUN_ATTEMPT": "1",
        **more,
    }


def provenance_script() -> str:
    [step] = [s for s in steps() if s.get("name") == PROVENANCE_STEP]
    script: str = step["run"]
    return script


def run_provenance_step(env: Mapping[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run the page's provenance step as the runner runs a `run:` script
    (`bash --noprofile --norc -eo pipefail {0}`), in `workdir`, with `env` and a PATH only:
    it can depend on nothing else."""
    if shutil.which("jq") is None:
        pytest.fail("jq is not installed (apt-get install jq): the page's provenance step uses it")
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", provenance_script()],
        cwd=workdir,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def write_provenance(env: Mapping[str, str], workdir: Path) -> Path:
    """The provenance.json the page's step writes in `workdir` for `env`."""
    result = run_provenance_step(env, workdir)
    assert result.returncode == 0, result.stderr
    return workdir / "provenance.json"
