"""docs/release.md does what it says: its command lines are wasmctl's, its workflow is a valid
GitHub workflow that signs before it publishes, its provenance step writes SLSA v1 provenance
that `wasmctl attest` takes, and its gate policy loads and admits that workflow's tag builds
only. tests/integration/test_attest_roundtrip.py gates the same in a real registry, keyless.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests import release_doc
from tests.integration.test_attest_roundtrip import COMMIT, PROVENANCE
from tests.release_doc import CommandLine
from tests.schemas import doc_schema
from wasmctl.cli import run
from wasmctl.gate.policy import PROVENANCE_CONDITIONS, GatePolicy, gate_policy_from_bytes
from wasmctl.sign.bundle import Statement, Subject
from wasmctl.sign.keys import generate_key_pair, write_key_pair
from wasmctl.sign.provenance import SLSA_V1, evaluate, read_provenance

ROOT = Path(__file__).parents[1]
HELLO = ROOT / "examples" / "modules" / "hello.wasm"
GITHUB_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
SHA_PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
# verify's keyless options (and their values), which a key-signed test replaces by --key
KEYLESS_OPTIONS = frozenset({"--certificate-identity-regexp", "--certificate-oidc-issuer",
                             "--github-repository", "--github-workflow-trigger"})  # fmt: skip


def _commands() -> dict[str, Any]:
    import typer.main

    from wasmctl.cli import app

    commands: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    return commands


@functools.cache
def help_options(command: str) -> frozenset[str]:
    """The options `wasmctl COMMAND --help` lists."""
    shown = subprocess.run(
        [sys.executable, "-m", "wasmctl", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    ).stdout
    options = shown.split("\nOptions:", 1)[1].split("\nExamples:", 1)[0]
    return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", options))


def _ids(lines: list[CommandLine]) -> list[str]:
    return [f"{line.where}: wasmctl {' '.join(line.argv)[:60]}" for line in lines]


# -- the command lines --------------------------------------------------------------------


COMMAND_LINES = release_doc.command_lines()


def test_the_page_shows_every_step_of_the_release() -> None:
    shown = [line.command for line in COMMAND_LINES]
    assert shown[:5] == ["build", "attest", "sign", "copy", "gate"]
    assert shown.count("verify") >= 2


@pytest.mark.parametrize("line", COMMAND_LINES, ids=_ids(COMMAND_LINES))
def test_every_option_of_a_command_line_is_in_its_help(line: CommandLine) -> None:
    assert line.command in _commands(), f"no command `wasmctl {line.command}`"
    given = {arg.split("=", 1)[0] for arg in line.args if re.match(r"--?[A-Za-z]", arg)}
    assert given - help_options(line.command) == set()


@pytest.mark.parametrize("line", COMMAND_LINES, ids=_ids(COMMAND_LINES))
def test_every_command_line_parses_with_its_arguments(line: CommandLine) -> None:
    """Options take the values they need and the arguments are the ones the command has,
    as click parses them (no conversion, so files need not exist)."""
    command = _commands()[line.command]
    parser = command.make_parser(command.context_class(command, info_name=line.command))
    values, extra, _ = parser.parse_args(list(line.args))
    assert extra == [], f"arguments wasmctl {line.command} does not take: {extra}"
    arguments = [p for p in command.params if p.param_type_name == "argument" and p.required]
    assert [p.name for p in arguments if values.get(p.name) in (None, ())] == []


def test_the_commands_and_options_the_prose_names_exist() -> None:
    commands = _commands()
    assert set(release_doc.mentioned_commands()) <= set(commands)
    every = set().union(*(help_options(name) for name in ("verify", "attest", "gate")))
    assert set(release_doc.inline_options()) - every == set()


def test_the_page_is_linked_from_the_readme_and_the_docs_index() -> None:
    assert "(docs/release.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(release.md)" in (ROOT / "docs" / "README.md").read_text(encoding="utf-8")


# -- the workflow ---------------------------------------------------------------------------


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its vendored schema, the network namespace cut where possible
    (as tests/test_action.py does)."""
    program = shutil.which("check-jsonschema")
    if program is None:
        pytest.fail("check-jsonschema is not installed (pip install check-jsonschema)")
    probe = shutil.which("unshare") and subprocess.run(
        ["unshare", "--net", "true"], capture_output=True, check=False
    )
    jail = ["unshare", "--net"] if probe and probe.returncode == 0 else []
    return subprocess.run(
        [*jail, program, "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_workflow_follows_the_github_workflows_schema(tmp_path: Path) -> None:
    path = tmp_path / "release.yml"
    path.write_text(release_doc.block(release_doc.WORKFLOW_TITLE), encoding="utf-8")
    result = _check_jsonschema("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_runs_on_a_tag_push_with_only_the_permissions_it_needs() -> None:
    workflow = release_doc.workflow()
    job = workflow["jobs"]["release"]
    assert workflow[True] == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {"contents": "read"}
    assert job["permissions"] == {"id-token": "write", "contents": "read", "packages": "write"}


def test_every_action_is_pinned_to_a_commit_and_no_run_script_interpolates() -> None:
    steps = release_doc.steps()
    assert [s["uses"] for s in steps if "uses" in s and not SHA_PINNED.fullmatch(s["uses"])] == []
    assert [s["name"] for s in steps if "${{" in s.get("run", "")] == []


def test_the_workflow_signs_in_a_layout_and_publishes_it_with_its_referrers() -> None:
    build, attest, sign, copy, gate = release_doc.action_command_lines()
    layout = build.args[build.args.index("-t") + 1]
    assert layout.startswith("oci:")
    assert attest.args[0] == sign.args[0] == layout
    assert attest.args[attest.args.index("--type") + 1] == "slsaprovenance1"
    assert "--key" not in attest.args + sign.args  # keyless: the workflow's identity
    assert copy.args == ("-r", layout, "ghcr.io/acme/app:v1.2.3")
    # the gate checks the digest that was built, signed and copied, with the page's policy
    digest = release_doc.EXPRESSIONS["steps.build.outputs.digest"]
    assert gate.args[-1] == f"ghcr.io/acme/app@{digest}"
    policy = gate.args[gate.args.index("--policy") + 1]
    assert f"# {policy}" == release_doc.POLICY_TITLE


# -- the provenance step ----------------------------------------------------------------------


def test_the_provenance_step_writes_what_github_writes_for_a_tag_build(tmp_path: Path) -> None:
    """With the variables of acme/app's release.yml run at v1.0.0, the step writes exactly
    the provenance the registry round trip attests and gates (what
    actions/attest-build-provenance writes for that run)."""
    env = release_doc.github_environment(ref="refs/tags/v1.0.0", sha=COMMIT)
    written = json.loads(release_doc.write_provenance(env, tmp_path).read_text(encoding="utf-8"))
    assert written == PROVENANCE


def _slsa_v1_problems(predicate: Any) -> list[str]:
    """Where `predicate` departs from SLSA provenance v1 (slsa.dev/spec/v1.0/provenance)
    and GitHub's workflow build type: required fields, their types, resource descriptors."""
    problems = []

    def need(value: Any, kind: type, where: str) -> bool:
        if not isinstance(value, kind) or not value:
            problems.append(f"{where}: wanted a non-empty {kind.__name__}, got {value!r}")
            return False
        return True

    def uri(value: Any, where: str) -> None:
        if need(value, str, where) and not re.match(r"[a-z][a-z0-9+.-]*:", value):
            problems.append(f"{where}: {value!r} is not an absolute URI")

    if not need(predicate, dict, "predicate"):
        return problems
    unknown = set(predicate) - {"buildDefinition", "runDetails"}
    if unknown:
        problems.append(f"predicate: unknown fields {sorted(unknown)}")
    definition, details = predicate.get("buildDefinition"), predicate.get("runDetails")
    if need(definition, dict, "buildDefinition"):
        uri(definition.get("buildType"), "buildDefinition.buildType")
        need(definition.get("externalParameters"), dict, "buildDefinition.externalParameters")
        need(definition.get("internalParameters"), dict, "buildDefinition.internalParameters")
        dependencies = definition.get("resolvedDependencies")
        if need(dependencies, list, "buildDefinition.resolvedDependencies"):
            for i, dependency in enumerate(dependencies):
                where = f"buildDefinition.resolvedDependencies[{i}]"
                if need(dependency, dict, where):
                    uri(dependency.get("uri"), f"{where}.uri")
                    digest = dependency.get("digest")
                    if need(digest, dict, f"{where}.digest"):
                        for algorithm, value in digest.items():
                            if not re.fullmatch(r"[0-9a-f]+", str(value)):
                                problems.append(f"{where}.digest.{algorithm}: not lower-case hex")
    if need(details, dict, "runDetails") and need(
        details.get("builder"), dict, "runDetails.builder"
    ):
        uri(details["builder"].get("id"), "runDetails.builder.id")
        metadata = details.get("metadata")
        if need(metadata, dict, "runDetails.metadata"):
            uri(metadata.get("invocationId"), "runDetails.metadata.invocationId")
    if problems:
        return problems
    # GitHub's build type (actions/buildtypes workflow/v1): what it defines, and nothing else
    external = definition["externalParameters"]
    if set(external) != {"workflow"} or set(external["workflow"]) != {"ref", "repository", "path"}:
        problems.append(f"externalParameters: {external!r} is not the build type's")
    github = definition["internalParameters"].get("github", {})
    wanted = {"event_name", "repository_id", "repository_owner_id", "runner_environment"}
    if set(definition["internalParameters"]) != {"github"} or set(github) != wanted:
        problems.append(f"internalParameters: {definition['internalParameters']!r}")
    return problems


def test_the_provenance_is_slsa_v1_of_githubs_workflow_build_type(tmp_path: Path) -> None:
    path = release_doc.write_provenance(release_doc.github_environment(), tmp_path)
    predicate = json.loads(path.read_text(encoding="utf-8"))
    assert _slsa_v1_problems(predicate) == []
    facts = read_provenance(_statement(predicate))
    assert (facts.builder_id, facts.build_type) == (
        "https://github.com/actions/runner/github-hosted",
        GITHUB_BUILD_TYPE,
    )
    assert (facts.source_repository, facts.source_ref, facts.entry_point) == (
        "github.com/acme/app",
        "refs/tags/v1.2.3",
        ".github/workflows/release.yml",
    )
    assert facts.source_commit == release_doc.github_environment()["GITHUB_SHA"]


def test_the_slsa_check_here_finds_what_is_missing() -> None:
    """The check above is not vacuous: SLSA's required fields, missing, are found."""
    broken = json.loads(json.dumps(PROVENANCE))
    del broken["runDetails"]["builder"]["id"]
    broken["buildDefinition"]["resolvedDependencies"][0]["digest"] = {"gitCommit": "XYZ"}
    assert len(_slsa_v1_problems(broken)) == 2


def test_the_provenance_step_stops_when_a_variable_is_missing(tmp_path: Path) -> None:
    env = release_doc.github_environment()
    del env["GITHUB_WORKFLOW_REF"]
    result = release_doc.run_provenance_step(env, tmp_path)
    assert result.returncode != 0
    assert "GITHUB_WORKFLOW_REF" in result.stderr
    assert not (tmp_path / "provenance.json").exists()


@pytest.fixture
def signed_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, Path]:
    """hello.wasm built into a layout as the workflow builds it; a cosign key pair (the
    workflow signs keyless; the keyless round trip is the integration test's)."""
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    monkeypatch.chdir(tmp_path)
    key, pub = write_key_pair(generate_key_pair(b"pw"), tmp_path / "cosign")
    layout = f"oci:{tmp_path / 'dist'}:release"
    assert run(["build", str(HELLO), "-t", layout]) == 0
    return layout, key, pub


def _keyed(args: Sequence[str], pub: Path) -> list[str]:
    """A verify command line of the page with its keyless options replaced by `--key`."""
    out, rest = [], iter(args)
    for arg in rest:
        if arg in KEYLESS_OPTIONS:
            next(rest)
        else:
            out.append(arg)
    return [*out, "--key", str(pub)]


@pytest.mark.parametrize(
    ("env", "verdict"),
    [({}, 0), ({"ref": "refs/heads/main"}, 1), ({"runner_environment": "self-hosted"}, 1)],
    ids=["tag", "branch", "self-hosted"],
)
def test_wasmctl_attest_takes_the_provenance_and_verify_judges_it_as_the_page_asks(
    signed_release: tuple[str, Path, Path],
    tmp_path: Path,
    env: dict[str, str],
    verdict: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layout, key, pub = signed_release
    provenance = release_doc.write_provenance(release_doc.github_environment(**env), tmp_path)
    attest = ["attest", layout, "--type", "slsaprovenance1", "--predicate", str(provenance)]
    assert run([*attest, "--key", str(key)]) == 0
    _, attested = release_doc.verify_commands()
    capsys.readouterr()
    assert run(["verify", *_keyed(release_doc.with_target(attested, layout), pub)]) == verdict
    if verdict:
        assert "wanted" in capsys.readouterr().out


# -- the gate policy --------------------------------------------------------------------------


def _policy(tmp_path: Path) -> GatePolicy:
    raw = release_doc.policy_text().encode("utf-8")
    return gate_policy_from_bytes(raw, tmp_path / "gate.yaml")


def test_the_gate_policy_loads_and_follows_its_schema(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    jsonschema.validate(dict(policy.raw), doc_schema("gate.schema.json"))
    [rule] = policy.rules.attestations
    assert rule.predicate_type == SLSA_V1
    assert rule.signers is None  # signed by the `signatures` identity: the workflow itself
    assert rule.provenance is not None
    assert policy.rules.pin == "digest"


def _identity(env: dict[str, str]) -> str:
    return f"https://github.com/{env['GITHUB_WORKFLOW_REF']}"


@pytest.mark.parametrize(
    ("env", "admitted"),
    [
        ({}, True),
        ({"ref": "refs/tags/v10.0.0-rc.1"}, True),
        ({"ref": "refs/heads/main"}, False),
        ({"ref": "refs/heads/v1"}, False),
        ({"ref": "refs/heads/main/refs/tags/v1"}, False),
        ({"ref": "refs/tags/release-1"}, False),
        ({"workflow_path": ".github/workflows/ci.yml"}, False),
        ({"repository": "acme/app-fork"}, False),
        ({"repository": "evil/app"}, False),
    ],
    ids=["tag", "pre-release-tag", "branch", "branch-named-like-a-tag",
         "branch-named-like-a-tag-ref", "other-tag", "other-workflow", "other-repository",
         "fork"],
)  # fmt: skip
def test_the_policy_admits_the_release_workflow_at_a_tag_only(
    tmp_path: Path, env: dict[str, str], admitted: bool
) -> None:
    """The signer identity and the provenance conditions, each on their own, admit exactly
    the release workflow's tag builds (a condition that failed is found in the provenance
    that workflow would write)."""
    environment = release_doc.github_environment(**env)
    [authority] = _policy(tmp_path).rules.signatures.keyless  # type: ignore[union-attr]
    assert authority.identity_regexp is not None
    matches = re.fullmatch(authority.identity_regexp, _identity(environment)) is not None
    assert matches is admitted
    [rule] = _policy(tmp_path).rules.attestations
    predicate = json.loads(
        release_doc.write_provenance(environment, tmp_path).read_text(encoding="utf-8")
    )
    results = evaluate(_statement(predicate), None, rule.provenance)
    assert all(r.passed for r in results) is admitted, [r.describe() for r in results]


@pytest.mark.parametrize(
    ("env", "failed"),
    [
        ({"ref": "refs/heads/main"}, "sourceRefRegExp"),
        ({"repository": "acme/other"}, "sourceUri"),
        ({"workflow_path": ".github/workflows/ci.yml"}, "entryPoint"),
        ({"runner_environment": "self-hosted"}, "builderId"),
    ],
    ids=["branch", "other-repository", "other-workflow", "self-hosted-runner"],
)
def test_each_provenance_condition_denies_what_it_is_there_for(
    tmp_path: Path, env: dict[str, str], failed: str
) -> None:
    [rule] = _policy(tmp_path).rules.attestations
    path = release_doc.write_provenance(release_doc.github_environment(**env), tmp_path)
    results = evaluate(_statement(json.loads(path.read_text())), None, rule.provenance)
    assert [r.condition for r in results if not r.passed] == [failed]


def _flag(condition: str) -> str:
    """A policy condition's verify option: `sourceRefRegExp` is `--source-ref-regexp`."""
    words = re.findall(r"[A-Z]?[a-z]+", condition.replace("RegExp", "Regexp"))
    return "--" + "-".join(w.lower() for w in words)


def test_the_verify_commands_ask_what_the_policy_asks(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    signed, attested = (dict(zip(a[1::2], a[2::2], strict=True))
                        for a in release_doc.verify_commands())  # fmt: skip
    attested_type = attested.pop("--attestation")
    [authority] = policy.rules.signatures.keyless  # type: ignore[union-attr]
    identity = {
        "--certificate-identity-regexp": authority.identity_regexp,
        "--certificate-oidc-issuer": authority.issuer,
        **{f"--{claim}": value for claim, value in authority.claims.items()},
    }
    assert signed == identity
    assert identity["--certificate-oidc-issuer"] == GITHUB_ISSUER
    raw = policy.raw["attestations"][0]
    conditions = {_flag(k): v for k, v in raw["provenance"].items()}
    assert set(raw["provenance"]) <= set(PROVENANCE_CONDITIONS)
    assert attested == identity | conditions
    assert attested_type == raw["predicateType"]


def _statement(predicate: dict[str, Any]) -> Statement:
    return Statement(
        "https://in-toto.io/Statement/v1",
        (Subject("ghcr.io/acme/app", {"sha256": "ab" * 32}),),
        SLSA_V1,
        predicate,
    )
