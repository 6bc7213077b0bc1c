"""The GitHub Action: action/run.py with GitHub's environment simulated, and action.yml's rules.

The simulated runner has what a real one gives a step: `$GITHUB_OUTPUT` and
`$GITHUB_STEP_SUMMARY` files, and the `INPUT_*` variables action.yml's `env:` sets. Runs
marked "real" start the installed wasmctl; the others hand `main()` a recording runner.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]
MODULES = ROOT / "examples" / "modules"
ACTION_YML = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")


def _load_entry() -> ModuleType:
    # action/ is not a package: the runner starts run.py as a script, so load it as a file.
    spec = importlib.util.spec_from_file_location("wasmctl_action_run", ROOT / "action" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


entry = _load_entry()


def read_outputs(path: Path) -> dict[str, str]:
    """Parse a `$GITHUB_OUTPUT` file the way the runner does (`name=value`, `name<<DELIM`)."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            else:
                raise AssertionError(f"output {name!r}: delimiter {delimiter!r} never closes")
            outputs[name] = "\n".join(value)
        else:
            name, _, single = line.partition("=")
            outputs[name] = single
    return outputs


@dataclass
class Recorder:
    """A runner that records argv and answers with a fixed result."""

    returncode: int = 0
    stdout: str = ""
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> Any:
        self.calls.append(list(argv))
        return entry.Completed(self.returncode, self.stdout)

    @property
    def wasmctl_args(self) -> list[str]:
        """The last call's arguments after `python -m wasmctl`."""
        (call,) = self.calls
        assert call[:3] == [sys.executable, "-m", "wasmctl"]
        return call[3:]


@dataclass
class Step:
    """One simulated step of a job: a workspace, its output and summary files."""

    workspace: Path
    output_file: Path
    summary_file: Path

    def env(self, command: str, args: str = "", **inputs: str) -> dict[str, str]:
        return {
            "GITHUB_OUTPUT": str(self.output_file),
            "GITHUB_STEP_SUMMARY": str(self.summary_file),
            "INPUT_COMMAND": command,
            "INPUT_ARGS": args,
            **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
        }

    def run(
        self, command: str, args: str = "", runner: Callable[..., Any] | None = None, **inputs: str
    ) -> tuple[int, dict[str, str]]:
        env = self.env(command, args, **inputs)
        code = entry.main(env) if runner is None else entry.main(env, runner=runner)
        return code, read_outputs(self.output_file)


@pytest.fixture
def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Step:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    output_file = runner_temp / "github_output"
    summary_file = runner_temp / "step_summary"
    output_file.touch()
    summary_file.touch()
    return Step(workspace, output_file, summary_file)


# -- Real runs of wasmctl ------------------------------------------------------------------


def test_build_outputs_the_digest_the_tag_points_at_and_the_tag(step: Step) -> None:
    code, outputs = step.run("build", f"{MODULES / 'hello.wasm'} -t oci:out:v1")
    index = json.loads((step.workspace / "out" / "index.json").read_text(encoding="utf-8"))
    (tagged,) = [
        m["digest"]
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "v1"
    ]
    assert (code, outputs["verdict"], outputs["exit-code"]) == (0, "pass", "0")
    assert outputs["digest"] == tagged
    assert outputs["reference"] == "oci:out:v1"


def test_sbom_outputs_the_file_it_wrote(step: Step) -> None:
    code, outputs = step.run("sbom", f"{MODULES / 'hello.wasm'} -o app.cdx.json")
    assert (code, outputs["verdict"]) == (0, "pass")
    assert outputs["sbom"] == "app.cdx.json"
    bom = json.loads((step.workspace / "app.cdx.json").read_text(encoding="utf-8"))
    assert bom["bomFormat"] == "CycloneDX"


def test_a_denied_scan_exits_1_with_verdict_deny(step: Step) -> None:
    # The self-test's expected-failure job: a socket server under no-network.
    code, outputs = step.run("scan", f"--preset no-network {MODULES / 'echo_server.wasm'}")
    assert (code, outputs["verdict"], outputs["exit-code"]) == (1, "deny", "1")


def test_an_unreadable_target_is_an_error_not_a_denial(step: Step) -> None:
    code, outputs = step.run("scan", "--preset no-network missing.wasm")
    assert (code, outputs["verdict"], outputs["exit-code"]) == (2, "error", "2")


def test_the_output_of_wasmctl_reaches_the_log(
    step: Step, capfd: pytest.CaptureFixture[str]
) -> None:
    _, outputs = step.run("build", f"{MODULES / 'hello.wasm'} -t oci:out:v1")
    assert outputs["digest"] in capfd.readouterr().out


def test_a_gate_passes_and_appends_its_summary(step: Step) -> None:
    step.run("build", f"{MODULES / 'hello.wasm'} -t oci:out:v1")
    policy = step.workspace / "gate.yaml"
    policy.write_text(
        "version: 1\npin: tag\nformats: [wasm]\nscan: {presets: [no-network]}\n", encoding="utf-8"
    )
    code, outputs = step.run("gate", "oci:out:v1", policy=str(policy))
    assert (code, outputs["verdict"], outputs["reference"]) == (0, "pass", "oci:out:v1")
    assert "oci:out:v1" in step.summary_file.read_text(encoding="utf-8")


# -- The command line the inputs become ---------------------------------------------------


def test_args_are_split_like_a_shell_but_never_run_by_one(step: Step) -> None:
    runner = Recorder()
    step.run("scan", "'my module.wasm' $(touch pwned) `id`", runner=runner)
    assert runner.wasmctl_args == ["scan", "my module.wasm", "$(touch", "pwned)", "`id`"]
    assert not (step.workspace / "pwned").exists()


def test_the_policy_input_becomes_a_policy_option(step: Step) -> None:
    runner = Recorder()
    step.run("scan", "dist/", runner=runner, policy="policies/edge.yaml")
    assert runner.wasmctl_args == ["scan", "--policy", "policies/edge.yaml", "dist/"]


def test_a_policy_for_a_command_without_one_is_refused(step: Step) -> None:
    runner = Recorder()
    code, outputs = step.run("build", "app.wasm -t oci:out:v1", runner=runner, policy="p.yaml")
    assert (code, outputs["verdict"], runner.calls) == (2, "error", [])


@pytest.mark.parametrize("command", ["", "--version", "-v", "scan; id", "Scan"])
def test_a_command_that_is_not_a_command_name_is_refused(step: Step, command: str) -> None:
    runner = Recorder()
    code, outputs = step.run(command, "app.wasm", runner=runner)
    assert (code, outputs["verdict"], runner.calls) == (2, "error", [])


def test_unbalanced_quotes_in_args_are_refused(step: Step) -> None:
    runner = Recorder()
    code, outputs = step.run("scan", "'app.wasm", runner=runner)
    assert (code, outputs["verdict"], runner.calls) == (2, "error", [])


def test_a_gate_appends_to_the_step_summary(step: Step) -> None:
    runner = Recorder()
    step.run("gate", "k8s/", runner=runner, policy="gate.yaml")
    assert runner.wasmctl_args == [
        "gate",
        "--policy",
        "gate.yaml",
        "--summary",
        str(step.summary_file),
        "k8s/",
    ]


def test_a_gate_keeps_a_summary_file_given_in_args(step: Step) -> None:
    runner = Recorder()
    step.run("gate", "k8s/ --summary mine.md", runner=runner, policy="gate.yaml")
    assert runner.wasmctl_args.count("--summary") == 1


def test_only_a_gate_gets_a_summary_option(step: Step) -> None:
    runner = Recorder()
    step.run("scan", "app.wasm", runner=runner)
    assert "--summary" not in runner.wasmctl_args


# -- Outputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("returncode", "verdict"), [(0, "pass"), (1, "deny"), (3, "error")])
def test_the_verdict_follows_the_exit_code(step: Step, returncode: int, verdict: str) -> None:
    code, outputs = step.run("verify", "oci:out:v1", runner=Recorder(returncode=returncode))
    assert (code, outputs["verdict"], outputs["exit-code"]) == (returncode, verdict, str(code))


@pytest.mark.parametrize(
    "args", ["-t oci:out:v1", "--tag oci:out:v1", "--tag=oci:out:v1", "-toci:out:v1"]
)
def test_build_reads_its_tag_in_every_spelling(step: Step, args: str) -> None:
    _, outputs = step.run("build", f"app.wasm {args}", runner=Recorder())
    assert outputs["reference"] == "oci:out:v1"


def test_build_takes_the_last_digest_line_it_printed(step: Step) -> None:
    digest = "sha256:" + "ab" * 32
    printed = f"note: sha256:{'00' * 32} is not alone on its line\n{digest}\n"
    _, outputs = step.run("build", "a.wasm -t oci:o", runner=Recorder(stdout=printed))
    assert outputs["digest"] == digest


@pytest.mark.parametrize("command", ["sign", "verify", "gate"])
def test_the_reference_is_the_one_target_after_its_options(step: Step, command: str) -> None:
    args = "--key cosign.pub --offline --plain-http localhost:5000 localhost:5000/app:v1"
    _, outputs = step.run(command, args, runner=Recorder())
    assert outputs["reference"] == "localhost:5000/app:v1"


def test_attest_outputs_the_artifact_it_attested(step: Step) -> None:
    args = "oci:dist:release --type slsaprovenance1 --predicate provenance.json --key cosign.key"
    _, outputs = step.run("attest", args, runner=Recorder())
    assert outputs["reference"] == "oci:dist:release"


def test_a_gate_of_kubernetes_manifests_has_no_reference(step: Step) -> None:
    _, outputs = step.run("gate", "deploy.yaml", runner=Recorder(), policy="gate.yaml")
    assert outputs["reference"] == ""


def test_a_gate_of_several_targets_has_no_reference(step: Step) -> None:
    _, outputs = step.run("gate", "oci:a:v1 oci:b:v1", runner=Recorder(), policy="gate.yaml")
    assert outputs["reference"] == ""


def test_sbom_reads_its_output_path(step: Step) -> None:
    _, outputs = step.run("sbom", "oci:out:v1 --output dist/app.cdx.json", runner=Recorder())
    assert outputs["sbom"] == "dist/app.cdx.json"


def test_an_output_value_may_span_lines(step: Step) -> None:
    entry.write_outputs(str(step.output_file), {"note": "one\ntwo\n\nthree"})
    assert read_outputs(step.output_file) == {"note": "one\ntwo\n\nthree"}


def test_outputs_are_appended_to_earlier_ones(step: Step) -> None:
    step.output_file.write_text("earlier=1\n", encoding="utf-8")
    step.run("scan", "app.wasm", runner=Recorder())
    assert read_outputs(step.output_file)["earlier"] == "1"


def test_the_flags_without_a_value_match_wasmctls_own() -> None:
    # run.py reads targets and option values without importing wasmctl; it must know
    # which options take no value, for every command whose arguments it reads.
    # (typer carries its own copy of click, so parameters are told apart by duck typing.)
    import typer

    from wasmctl.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    flags = {
        opt
        for name in ("build", "sbom", "sign", "attest", "verify", "gate")
        if (command := commands.get(name)) is not None
        for param in command.params
        if param.param_type_name == "option" and (param.is_flag or param.count)
        for opt in (*param.opts, *param.secondary_opts)
    }
    assert flags == entry.FLAGS - {"-h", "--help"}


# -- action.yml ----------------------------------------------------------------------------


def _action() -> dict[str, Any]:
    action: dict[str, Any] = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    return action


def _steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in document:
        steps: list[dict[str, Any]] = document["runs"]["steps"]
        return steps
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def test_no_run_script_interpolates_an_input() -> None:
    scripts = [step["run"] for step in _steps(_action()) if "run" in step]
    assert scripts
    assert not [script for script in scripts if "${{" in script]


def test_every_input_reaches_a_step_through_env_or_with() -> None:
    action = _action()
    handed_over = {
        value
        for step in _steps(action)
        for mapping in (step.get("env", {}), step.get("with", {}))
        for value in mapping.values()
    }
    missing = [name for name in action["inputs"] if f"${{{{ inputs.{name} }}}}" not in handed_over]
    assert missing == []


def test_the_declared_outputs_are_the_ones_run_py_writes() -> None:
    written = entry.Invocation("scan", (), ()).outputs(entry.Completed(0, ""))
    assert set(_action()["outputs"]) == set(written)


@pytest.mark.parametrize(
    "path", [ACTION_YML, *WORKFLOWS], ids=lambda p: str(Path(p).relative_to(ROOT))
)
def test_every_action_used_is_pinned_to_a_commit(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    used = [step["uses"] for step in _steps(document) if "uses" in step]
    unpinned = [uses for uses in used if uses != "./" and not SHA_PINNED.fullmatch(uses)]
    assert used
    assert unpinned == []


def test_the_workflows_grant_only_read_access_by_default() -> None:
    for path in WORKFLOWS:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["permissions"] == {"contents": "read"}, path.name


# -- Schemas (check-jsonschema's vendored copies: no network) ------------------------------


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    program = shutil.which("check-jsonschema")
    if program is None:
        pytest.fail("check-jsonschema is not installed (pip install check-jsonschema)")
    # With the network namespace cut where possible, so "vendored, offline" is proven.
    jail = ["unshare", "--net"] if _can_cut_network() else []
    return subprocess.run(
        [*jail, program, "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _can_cut_network() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def test_action_yml_follows_the_github_actions_schema() -> None:
    result = _check_jsonschema("vendor.github-actions", ACTION_YML)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflows_follow_the_github_workflows_schema() -> None:
    assert WORKFLOWS
    result = _check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_workflow_follows_the_github_workflows_schema_and_pins_actions() -> None:
    example = ROOT / "examples" / "workflows" / "wasm-release.yml"
    result = _check_jsonschema("vendor.github-workflows", example)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = yaml.safe_load(example.read_text())["jobs"]["release"]["steps"]
    assert all(re.search(r"@[0-9a-f]{40}$", s["uses"]) for s in steps if "uses" in s)
    assert all("${{" not in s.get("run", "") for s in steps)
