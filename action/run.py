"""The GitHub Action's entry: inputs in (environment variables), one wasmctl run, outputs out.

action.yml hands every input over through `env:` and nothing here goes through a shell: `args`
is split with shlex into an argv, so quotes group words and `$(...)` stays text. `main()` takes
the environment and the process runner as arguments, so tests run it without GitHub.

Outputs, written to `$GITHUB_OUTPUT` in the `name<<DELIMITER` form (safe for any value):
`verdict` (pass, deny or error), `exit-code`, `digest` (build), `reference` (build's tag; the
target of sign, attest, verify, gate), `sbom` (sbom's output file). The process exits with
wasmctl's own exit code.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

# wasmctl's exit codes (README, "Exit codes"): 0 ok, 1 denied; everything else is a failure
# to decide (bad input, registry, bug), which a gate must not read as a pass.
VERDICTS = {0: "pass", 1: "deny"}
BAD_INPUT = 2

COMMAND = re.compile(r"[a-z][a-z0-9-]*")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
POLICY_COMMANDS = frozenset({"gate", "scan"})
REFERENCE_COMMANDS = frozenset({"sign", "attest", "verify", "gate"})
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# The options of build, sbom, sign, attest, verify and gate that take no value; every other
# option takes one. tests/test_action.py checks this against wasmctl's own CLI, so it cannot
# drift.
FLAGS = frozenset({"-h", "--help", "--index", "--offline", "--with-vulnerabilities"})


@dataclass(frozen=True)
class Completed:
    """What the action needs from a finished run: its exit code and what it printed."""

    returncode: int
    stdout: str


Runner = Callable[[Sequence[str]], Completed]


def tee_run(argv: Sequence[str]) -> Completed:
    """Run `argv`, streaming its stdout to ours line by line while keeping a copy.

    stderr is inherited, so progress and diagnostics reach the log as they happen.
    """
    kept: list[str] = []
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, encoding="utf-8", errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            kept.append(line)
    return Completed(proc.returncode, "".join(kept))


class InputError(Exception):
    """An input the action cannot turn into a wasmctl command line."""


@dataclass(frozen=True)
class Invocation:
    """One wasmctl command line, from the action's inputs."""

    command: str
    args: tuple[str, ...]
    extra: tuple[str, ...]  # options the action adds (--policy, --summary)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Invocation:
        command = env.get("INPUT_COMMAND", "").strip()
        if not COMMAND.fullmatch(command):
            # Also refuses "--version" or "-v": a command, not an option, comes first.
            raise InputError(f"`command` must be a wasmctl command such as scan, got {command!r}")
        try:
            args = tuple(shlex.split(env.get("INPUT_ARGS", "")))
        except ValueError as e:
            raise InputError(f"`args` cannot be split into words: {e}") from e
        extra: list[str] = []
        policy = env.get("INPUT_POLICY", "").strip()
        if policy:
            if command not in POLICY_COMMANDS:
                raise InputError(f"`policy` applies to gate and scan only, not to {command}")
            extra += ["--policy", policy]
        summary = env.get("GITHUB_STEP_SUMMARY", "")
        if command == "gate" and summary and not _option_values(args, "--summary"):
            extra += ["--summary", summary]
        return cls(command, args, tuple(extra))

    def argv(self, program: Sequence[str]) -> list[str]:
        # The action's options go before the user's, where a `--` in args cannot hide them.
        return [*program, self.command, *self.extra, *self.args]

    def outputs(self, result: Completed) -> dict[str, str]:
        """The step's outputs for this command and its result."""
        digest = reference = sbom = ""
        if self.command == "build":
            digests = [line for line in result.stdout.splitlines() if DIGEST.fullmatch(line)]
            digest = digests[-1] if digests else ""
            reference = _last(_option_values(self.args, "-t", "--tag"))
        elif self.command == "sbom":
            sbom = _last(_option_values(self.args, "-o", "--output"))
        elif self.command in REFERENCE_COMMANDS:
            targets = _positionals(self.args)
            # A gate's target may be Kubernetes manifests: a path, not a reference.
            if len(targets) == 1 and not (
                self.command == "gate" and targets[0].endswith(MANIFEST_SUFFIXES)
            ):
                reference = targets[0]
        return {
            "verdict": VERDICTS.get(result.returncode, "error"),
            "exit-code": str(result.returncode),
            "digest": digest,
            "reference": reference,
            "sbom": sbom,
        }


def _tokens(args: Sequence[str]) -> Iterator[tuple[str | None, str]]:
    """(option, value) pairs and (None, positional) pairs, as click would read them."""
    rest = iter(args)
    for token in rest:
        if token == "--":
            yield from ((None, positional) for positional in rest)
        elif token.startswith("--") and "=" in token:
            name, _, value = token.partition("=")
            yield name, value
        elif token in FLAGS:
            yield token, ""
        elif token.startswith("--"):
            yield token, next(rest, "")
        elif token.startswith("-") and len(token) > 2:  # -tVALUE
            yield token[:2], token[2:]
        elif token.startswith("-") and token != "-":
            yield token, next(rest, "")
        else:
            yield None, token


def _option_values(args: Sequence[str], *names: str) -> list[str]:
    return [value for name, value in _tokens(args) if name in names]


def _positionals(args: Sequence[str]) -> list[str]:
    return [value for name, value in _tokens(args) if name is None]


def _last(values: Sequence[str]) -> str:
    return values[-1] if values else ""


def write_outputs(path: str, outputs: Mapping[str, str]) -> None:
    """Append outputs to a `$GITHUB_OUTPUT` file; a fresh delimiter cannot occur in a value."""
    with open(path, "a", encoding="utf-8") as file:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def annotate(level: str, message: str) -> None:
    """A workflow command (`::error::`), with the escaping GitHub's toolkit applies."""
    escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    sys.stdout.write(f"::{level}::{escaped}\n")


def main(env: Mapping[str, str], runner: Runner = tee_run) -> int:
    """Run the command the inputs in `env` describe; write its outputs; return its exit code."""
    output_file = env.get("GITHUB_OUTPUT", "")
    try:
        invocation = Invocation.from_env(env)
    except InputError as e:
        annotate("error", str(e))
        if output_file:
            write_outputs(output_file, {"verdict": "error", "exit-code": str(BAD_INPUT)})
        return BAD_INPUT
    sys.stderr.write(f"$ {shlex.join(invocation.argv(['wasmctl']))}\n")
    sys.stderr.flush()
    result = runner(invocation.argv([sys.executable, "-m", "wasmctl"]))
    if output_file:
        write_outputs(output_file, invocation.outputs(result))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(os.environ))
