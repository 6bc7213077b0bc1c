"""action.yml's own step scripts, run by bash as a runner would run them.

tests/test_action.py exercises action/run.py; this runs the `run:` text of action.yml itself
(the install into a virtualenv, then the entry script), with each step's `env:` expressions
replaced by what GitHub would put there. The setup-python step is stood in for by this
Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_action import read_outputs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def _evaluate(value: str, context: Mapping[str, str]) -> str:
    def lookup(match: re.Match[str]) -> str:
        if match[1] not in context:
            raise AssertionError(f"the test does not simulate {match[0]}")
        return context[match[1]]

    return EXPRESSION.sub(lookup, value)


def _run_steps(context: Mapping[str, str], base_env: Mapping[str, str], cwd: Path) -> int:
    action: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    code = 0
    for step in action["runs"]["steps"]:
        if "run" not in step:
            continue  # actions/setup-python: this interpreter stands in for it
        env = {**base_env, **{k: _evaluate(v, context) for k, v in step.get("env", {}).items()}}
        code = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=cwd, env=env, check=False, timeout=600
        ).returncode
        if code != 0:
            break
    return code


def test_the_steps_install_wasmctl_and_run_a_denied_scan(tmp_path: Path) -> None:
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    output_file = runner_temp / "github_output"
    output_file.touch()
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    module = ROOT / "examples" / "modules" / "echo_server.wasm"
    context = {
        "inputs.command": "scan",
        "inputs.args": f"--preset no-network '{module}'",
        "inputs.version": "",
        "inputs.policy": "",
        "github.action_path": str(ROOT),
        "steps.python.outputs.python-path": sys.executable,
    }
    base_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),  # pip's cache
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(output_file),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    code = _run_steps(context, base_env, workspace)
    outputs = read_outputs(output_file)
    assert (code, outputs["verdict"], outputs["exit-code"]) == (1, "deny", "1")
