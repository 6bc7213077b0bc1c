"""The round trip of issue 16: SLSA v1 provenance attested on a Wasm artifact with a key and
keyless (through the loopback Fulcio and Rekor), carried to the real registry by
`copy -r`, then verified and gated there.

The release is made once for the module (`release`), as docs/release.md's workflow makes
it: build into a layout, sign and attest with both signers, copy to the registry. The
provenance is what GitHub's own attestations say of a tag build (`PROVENANCE`, which is
also what the page's provenance step writes for that run: tests/test_release_doc.py), and
the gate policy is written by `gate_policy`, whose `attestation` rule takes the conditions
on the provenance (`RELEASE_CONDITIONS`: builder, repository, tags only, workflow). A
second release (`branch_release`) is the same module built by the same workflow from a
branch, for the policy that wants tags to deny.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests import release_doc
from tests.registry import RegistryServer, unique_repo
from tests.schemas import doc_schema
from tests.sigstore_standin import (
    DEFAULT_IDENTITY,
    GITHUB_ISSUER,
    SigstoreStandin,
    github_workflow_claims,
)
from wasmctl.cli import run
from wasmctl.sign.keys import generate_key_pair, write_key_pair

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"
SLSA_V1 = "https://slsa.dev/provenance/v1"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"
AMBIENT = ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
           "SIGSTORE_ID_TOKEN", "GITLAB_CI", "BUILDKITE", "CIRCLECI")  # fmt: skip

# SLSA v1 provenance of a tag build by GitHub Actions, as actions/attest-build-provenance
# writes it (buildType https://actions.github.io/buildtypes/workflow/v1); the keyless
# signer below is this workflow (DEFAULT_IDENTITY: acme/app's release.yml at v1.0.0), and
# the commit built is the one its certificate names.
COMMIT = github_workflow_claims(DEFAULT_IDENTITY)["sha"]
PROVENANCE: dict[str, Any] = {
    "buildDefinition": {
        "buildType": "https://actions.github.io/buildtypes/workflow/v1",
        "externalParameters": {
            "workflow": {
                "ref": "refs/tags/v1.0.0",
                "repository": "https://github.com/acme/app",
                "path": ".github/workflows/release.yml",
            }
        },
        "internalParameters": {
            "github": {
                "event_name": "push",
                "repository_id": "123456789",
                "repository_owner_id": "987654",
                "runner_environment": "github-hosted",
            }
        },
        "resolvedDependencies": [
            {
                "uri": "git+https://github.com/acme/app@refs/tags/v1.0.0",
                "digest": {"gitCommit": COMMIT},
            }
        ],
    },
    "runDetails": {
        "builder": {"id": "https://github.com/actions/runner/github-hosted"},
        "metadata": {
            "invocationId": "https://github.com/acme/app/actions/runs/1234567890/attempts/1"
        },
    },
}


# What docs/release.md's gate policy asks of its release workflow's provenance.
RELEASE_CONDITIONS = {
    "builderId": "https://github.com/actions/runner/github-hosted",
    "sourceUri": "github.com/acme/app",
    "sourceRefRegExp": "refs/tags/v.*",
    "entryPoint": ".github/workflows/release.yml",
}
# The same workflow run on a branch: its keyless identity, and the commit it names.
BRANCH_IDENTITY = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
BRANCH_COMMIT = github_workflow_claims(BRANCH_IDENTITY)["sha"]


def provenance_at(ref: str, commit: str) -> dict[str, Any]:
    """`PROVENANCE` for the release workflow run at another ref and commit."""
    provenance = copy.deepcopy(PROVENANCE)
    definition = provenance["buildDefinition"]
    definition["externalParameters"]["workflow"]["ref"] = ref
    definition["resolvedDependencies"] = [
        {"uri": f"git+https://github.com/acme/app@{ref}", "digest": {"gitCommit": commit}}
    ]
    return provenance


@dataclass(frozen=True)
class Release:
    """An artifact released to the registry with its signatures and provenance."""

    ref: str
    host: str
    digest: str
    public_key: Path
    trusted_root: Path
    workdir: Path


def _environment(env: pytest.MonkeyPatch, workdir: Path) -> None:
    env.setenv("COSIGN_PASSWORD", "pw")
    env.setenv("REGISTRY_AUTH_FILE", str(workdir / "auth.json"))
    for name in AMBIENT:  # keyless signs with the stand-in's token, never the machine's
        env.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _environment(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def release(
    registry: RegistryServer,
    sigstore_standin: SigstoreStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    """Build hello.wasm into a layout; sign it and attest its provenance with a cosign key
    and keyless; `copy -r` it to the registry."""
    workdir = tmp_path_factory.mktemp("release")
    with pytest.MonkeyPatch.context() as env:
        _environment(env, workdir)
        key, pub = write_key_pair(generate_key_pair(b"pw"), workdir / "cosign")
        config = sigstore_standin.write_trust_config(workdir / "trust-config.json")
        root = sigstore_standin.write_trusted_root(workdir / "trusted-root.json")
        provenance = workdir / "provenance.json"
        provenance.write_text(json.dumps(PROVENANCE, indent=2))
        layout = f"oci:{workdir / 'out'}:v1.0.0"
        keyless = ["--identity-token", sigstore_standin.identity_token(),
                   "--trust-config", str(config)]  # fmt: skip
        attest = ["--type", "slsaprovenance1", "--predicate", str(provenance)]

        assert run(["build", str(HELLO), "-t", layout]) == 0
        for signer in (["--key", str(key)], keyless):
            assert run(["sign", layout, *signer]) == 0
            assert run(["attest", layout, *attest, *signer]) == 0

        host = registry.host
        ref = f"{host}/{unique_repo('attest-roundtrip')}:v1.0.0"
        assert run(["copy", "-r", layout, ref, "--plain-http", host]) == 0
        digest = _stored(ref, host)[0]
        yield Release(ref, host, digest, pub, root, workdir)


@pytest.fixture(scope="module")
def branch_release(
    release: Release,
    sigstore_standin: SigstoreStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    """The module built by the release workflow from `main` (a branch) and released as
    `release` is: signed and attested with the release's key and keyless by the workflow at
    the branch (`BRANCH_IDENTITY`), whose provenance says so; in a repository of its own."""
    workdir = tmp_path_factory.mktemp("branch-release")
    with pytest.MonkeyPatch.context() as env:
        _environment(env, workdir)
        key = release.public_key.with_suffix(".key")
        config = sigstore_standin.write_trust_config(workdir / "trust-config.json")
        provenance = workdir / "provenance.json"
        provenance.write_text(json.dumps(provenance_at("refs/heads/main", BRANCH_COMMIT)))
        layout = f"oci:{workdir / 'out'}:main"
        token = sigstore_standin.identity_token(BRANCH_IDENTITY)
        keyless = ["--identity-token", token, "--trust-config", str(config)]
        attest = ["--type", "slsaprovenance1", "--predicate", str(provenance)]

        assert run(["build", str(HELLO), "-t", layout]) == 0
        for signer in (["--key", str(key)], keyless):
            assert run(["sign", layout, *signer]) == 0
            assert run(["attest", layout, *attest, *signer]) == 0

        ref = f"{release.host}/{unique_repo('attest-roundtrip-branch')}:main"
        assert run(["copy", "-r", layout, ref, "--plain-http", release.host]) == 0
        digest = _stored(ref, release.host)[0]
        yield Release(ref, release.host, digest, release.public_key, release.trusted_root,
                      workdir)  # fmt: skip


def _stored(ref: str, host: str) -> tuple[str, list[tuple[dict[str, Any], bool]]]:
    """The artifact's digest, and each statement stored for it in the registry with whether
    it was signed keyless (its bundle carries a certificate)."""
    from wasmctl.oci.reference import parse_reference
    from wasmctl.oci.source import RegistryOptions
    from wasmctl.sign.bundle import Bundle
    from wasmctl.sign.targets import find_signature_candidates

    options = RegistryOptions(plain_http=frozenset({host}))
    found = find_signature_candidates(parse_reference(ref), options)
    out = []
    for candidate in found.candidates:
        bundle = Bundle.from_bytes(candidate.data)
        assert bundle.envelope is not None
        out.append((json.loads(bundle.envelope.payload), bundle.certificate is not None))
    return found.digest, out


def keyless_identity(**github: str) -> list[str]:
    """`verify`'s options trusting the release workflow, keyless."""
    args = ["--certificate-identity", DEFAULT_IDENTITY, "--certificate-oidc-issuer", GITHUB_ISSUER]
    for name, value in github.items():
        args += [f"--github-{name}", value]
    return args


def gate_policy(
    release: Release,
    *,
    keys: bool = True,
    keyless: bool = True,
    required: int | None = None,
    attestation: dict[str, Any] | None = None,
    signer: dict[str, Any] | None = None,
) -> Path:
    """A gate policy trusting the release's key and/or its workflow (keyless: the workflow
    at v1.0.0, or `signer`), and requiring a SLSA v1 provenance attestation by them;
    `attestation` adds to that rule."""
    signatures: dict[str, Any] = {"required": required or int(keys) + int(keyless)}
    if keys:
        signatures["keys"] = [str(release.public_key)]
    if keyless:
        signatures["keyless"] = [signer or {
            "identity": DEFAULT_IDENTITY,
            "issuer": GITHUB_ISSUER,
            "github": {"repository": "acme/app", "ref": "refs/tags/v1.0.0"},
        }]  # fmt: skip
    doc = {
        "version": 1,
        "signatures": signatures,
        "attestations": [{"predicateType": "slsaprovenance1", **(attestation or {})}],
        "trust": {"trustedRoot": str(release.trusted_root)},
    }
    jsonschema.validate(doc, doc_schema("gate.schema.json"))
    path = release.workdir / f"gate-{unique_repo('policy').rsplit('/', 1)[-1]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def gate(release: Release, policy: Path, capsys: pytest.CaptureFixture[str],
         ref: str | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    capsys.readouterr()
    code = run(["gate", "-f", "json", "--policy", str(policy), ref or release.ref,
                "--plain-http", release.host])  # fmt: skip
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, doc_schema("gate-report.schema.json"))
    return code, report


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [target] = report["targets"]
    return {c["check"]: c for c in target["checks"]}


# -- in the registry ----------------------------------------------------------------------------


def test_copy_r_carries_both_provenance_statements_about_the_artifact(release: Release) -> None:
    digest, statements = _stored(release.ref, release.host)
    provenance = [(s, keyless) for s, keyless in statements if s["predicateType"] == SLSA_V1]
    signatures = [keyless for s, keyless in statements if s["predicateType"] == COSIGN_SIGN]
    assert sorted(keyless for _, keyless in provenance) == [False, True]
    assert sorted(signatures) == [False, True]
    for statement, _ in provenance:
        assert statement["subject"][0]["digest"] == {"sha256": digest.removeprefix("sha256:")}
        assert statement["predicate"] == PROVENANCE


def test_the_provenance_verifies_there_with_the_key(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    key = ["--key", str(release.public_key)]
    assert run(["verify", "-f", "json", "--attestation", "slsaprovenance1", *key, release.ref,
                "--plain-http", release.host]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["predicateType"] == SLSA_V1
    assert report["digest"] == release.digest
    assert report["signers"] == 1  # the key's; the keyless one is not under this policy


def test_the_provenance_verifies_there_with_the_keyless_identity(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(release.trusted_root)
    verify = ["verify", "-f", "json", "--attestation", "slsaprovenance1", release.ref,
              "--trusted-root", root, "--plain-http", release.host]  # fmt: skip
    capsys.readouterr()
    identity = keyless_identity(repository="acme/app", ref="refs/tags/v1.0.0")
    assert run([*verify, *identity]) == 0
    [signer] = [c["signer"] for c in json.loads(capsys.readouterr().out)["signatures"]
                if c["verified"]]  # fmt: skip
    assert signer["identities"] == [DEFAULT_IDENTITY]
    assert run([*verify, *keyless_identity(ref="refs/heads/main")]) == 1


@pytest.mark.parametrize(
    ("keys", "keyless"), [(True, True), (True, False), (False, True)],
    ids=["key-and-keyless", "key", "keyless"],
)  # fmt: skip
def test_the_gate_admits_it_there(
    release: Release, keys: bool, keyless: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = gate(release, gate_policy(release, keys=keys, keyless=keyless), capsys)
    assert code == 0, report
    found = checks(report)
    assert found["signature"]["status"] == "pass"
    assert found["attestation"]["status"] == "pass"
    assert found["attestation"]["details"]["predicateType"] == SLSA_V1
    assert len(found["attestation"]["details"]["verified"]) == int(keys) + int(keyless)


def test_the_gate_denies_the_artifact_copied_without_its_referrers(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = f"{release.host}/{unique_repo('attest-roundtrip-bare')}:v1.0.0"
    assert run(["copy", release.ref, bare, "--plain-http", release.host]) == 0
    code, report = gate(release, gate_policy(release), capsys, ref=bare)
    assert code == 1
    found = checks(report)
    assert found["attestation"]["status"] == "fail"
    assert found["signature"]["status"] == "fail"


def test_the_gate_denies_provenance_by_a_signer_it_does_not_trust(
    release: Release, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signed by the key, the gate trusting only another key: the provenance is there and
    its statement is right, but nobody trusted signed it."""
    _, other = write_key_pair(generate_key_pair(b"pw"), tmp_path / "other")
    stranger = Release(release.ref, release.host, release.digest, other, release.trusted_root,
                       tmp_path)  # fmt: skip
    code, report = gate(release, gate_policy(stranger, keyless=False), capsys)
    assert code == 1
    assert checks(report)["attestation"]["status"] == "fail"


def test_the_provenance_here_is_what_the_conditions_will_be_asked_about() -> None:
    """What issue 16's conditions check, as the release's provenance states it: a test
    that adds conditions to `gate_policy(attestation=...)` can rely on these values."""
    provenance = copy.deepcopy(PROVENANCE)
    workflow = provenance["buildDefinition"]["externalParameters"]["workflow"]
    assert provenance["runDetails"]["builder"]["id"] == (
        "https://github.com/actions/runner/github-hosted"
    )
    assert workflow == {"ref": "refs/tags/v1.0.0", "repository": "https://github.com/acme/app",
                        "path": ".github/workflows/release.yml"}  # fmt: skip
    assert f"{workflow['repository']}/{workflow['path']}@{workflow['ref']}" == DEFAULT_IDENTITY


# -- provenance conditions, in the registry ---------------------------------------------------
# A loose keyless signer: the release workflow at any ref, so that the provenance's conditions,
# not the signer identity, are what tell a branch build from a tag build.
ANY_REF_SIGNER = {
    "identityRegExp": r"https://github\.com/acme/app/\.github/workflows/release\.yml@.*",
    "issuer": GITHUB_ISSUER,
    "github": {"repository": "acme/app"},
}
SIGNERS = [(True, True), (True, False), (False, True)]
SIGNER_IDS = ["key-and-keyless", "key", "keyless"]


def failed_conditions(check: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(condition, wanted, found) for each condition the check reports failed."""
    return sorted(
        {(c["condition"], c["wanted"], c["found"]) for c in check["details"].get("conditions", [])}
    )


@pytest.mark.parametrize(("keys", "keyless"), SIGNERS, ids=SIGNER_IDS)
def test_the_gate_admits_the_release_on_its_workflows_provenance_conditions(
    release: Release, keys: bool, keyless: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = gate_policy(release, keys=keys, keyless=keyless,
                         attestation={"provenance": RELEASE_CONDITIONS})  # fmt: skip
    code, report = gate(release, policy, capsys)
    assert code == 0, report
    attestation = checks(report)["attestation"]
    assert attestation["status"] == "pass"
    assert "meets the provenance conditions" in attestation["message"]
    assert attestation["details"]["provenance"] == RELEASE_CONDITIONS
    assert len(attestation["details"]["verified"]) == int(keys) + int(keyless)
    assert failed_conditions(attestation) == []


@pytest.mark.parametrize(
    ("condition", "wanted", "found"),
    [
        ("builderId", "https://github.com/acme/builder/.github/workflows/build.yml",
         "https://github.com/actions/runner/github-hosted"),
        ("sourceUri", "github.com/acme/other", "github.com/acme/app"),
    ],
    ids=["wrong-builder", "wrong-repository"],
)  # fmt: skip
def test_the_gate_denies_the_release_when_its_provenance_names_another(
    release: Release,
    condition: str,
    wanted: str,
    found: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both provenance statements verify (key and keyless) and say the same thing, which is
    not what the policy wants: exit 1, the signature still passing, and the reason given
    for each statement with the value found."""
    conditions = RELEASE_CONDITIONS | {condition: wanted}
    code, report = gate(release, gate_policy(release, attestation={"provenance": conditions}),
                        capsys)  # fmt: skip
    assert code == 1
    found_checks = checks(report)
    assert found_checks["signature"]["status"] == "pass"
    attestation = found_checks["attestation"]
    assert attestation["status"] == "fail"
    assert f"{condition} is {found}, wanted {wanted}" in attestation["message"]
    assert failed_conditions(attestation) == [(condition, wanted, found)]
    sources = {c["source"] for c in attestation["details"]["conditions"]}
    assert len(sources) == 2  # the key's statement and the keyless one


@pytest.mark.parametrize(
    ("keys", "keyless"), [(True, False), (False, True)], ids=["key", "keyless-any-ref"]
)
def test_the_gate_denies_a_branch_build_where_the_policy_wants_tags(
    branch_release: Release, keys: bool, keyless: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = gate_policy(branch_release, keys=keys, keyless=keyless, signer=ANY_REF_SIGNER,
                         attestation={"provenance": RELEASE_CONDITIONS})  # fmt: skip
    code, report = gate(branch_release, policy, capsys)
    assert code == 1
    found = checks(report)
    assert found["signature"]["status"] == "pass"  # the signer is trusted; the ref is not
    attestation = found["attestation"]
    assert attestation["status"] == "fail"
    wanted = "a match of refs/tags/v.* (whole value)"
    assert f"sourceRefRegExp is refs/heads/main, wanted {wanted}" in attestation["message"]
    assert failed_conditions(attestation) == [("sourceRefRegExp", wanted, "refs/heads/main")]


@pytest.mark.parametrize(
    ("keys", "keyless"), [(True, False), (False, True)], ids=["key", "keyless-any-ref"]
)
def test_the_branch_build_passes_when_the_policy_does_not_ask_for_tags(
    branch_release: Release, keys: bool, keyless: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """The denial above is the ref's alone: without `sourceRefRegExp` the same artifact,
    signers and statements pass."""
    conditions = {k: v for k, v in RELEASE_CONDITIONS.items() if k != "sourceRefRegExp"}
    policy = gate_policy(branch_release, keys=keys, keyless=keyless, signer=ANY_REF_SIGNER,
                         attestation={"provenance": conditions})  # fmt: skip
    code, report = gate(branch_release, policy, capsys)
    assert code == 0, report


# -- docs/release.md's policy and verify command lines, in the registry -----------------------


def release_page_policy(release: Release) -> Path:
    """docs/release.md's gate policy as it is, but for where this registry keeps the
    release (`registries`) and the stand-in's trusted root (`trust`)."""
    doc = yaml.safe_load(release_doc.policy_text())
    assert "trust" not in doc
    doc["registries"] = [release.ref.rsplit(":", 1)[0]]
    doc["trust"] = {"trustedRoot": str(release.trusted_root)}
    jsonschema.validate(doc, doc_schema("gate.schema.json"))
    path = release.workdir / f"release-page-{unique_repo('policy').rsplit('/', 1)[-1]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def pinned(release: Release) -> str:
    return f"{release.ref.rsplit(':', 1)[0]}@{release.digest}"


def test_the_release_pages_policy_admits_the_release(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = gate(release, release_page_policy(release), capsys, ref=pinned(release))
    assert code == 0, report
    found = checks(report)
    assert {found[name]["status"] for name in ("signature", "attestation", "pin", "registry")} == {
        "pass"
    }
    [keyless] = found["attestation"]["details"]["verified"]  # the key's is not trusted there
    assert keyless


def test_the_release_pages_policy_denies_the_branch_build(
    branch_release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = gate(branch_release, release_page_policy(branch_release), capsys,
                        ref=pinned(branch_release))  # fmt: skip
    assert code == 1
    found = checks(report)
    assert found["signature"]["status"] == "fail"  # the identity is the workflow at a branch
    assert found["attestation"]["status"] == "fail"


@pytest.mark.parametrize("which", ["signatures", "provenance"])
def test_the_release_pages_verify_commands_pass_on_the_release(
    release: Release, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = release_doc.verify_commands()[["signatures", "provenance"].index(which)]
    args = release_doc.with_target(command, pinned(release))
    local = ["--trusted-root", str(release.trusted_root), "--plain-http", release.host]
    assert run(["verify", *args, *local]) == 0, capsys.readouterr().out


def test_the_release_pages_provenance_verify_command_denies_the_branch_build(
    branch_release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    _, command = release_doc.verify_commands()
    args = release_doc.with_target(command, pinned(branch_release))
    local = ["--trusted-root", str(branch_release.trusted_root), "--plain-http",
             branch_release.host]  # fmt: skip
    capsys.readouterr()
    assert run(["verify", *args, *local]) == 1
    assert BRANCH_IDENTITY in capsys.readouterr().out
