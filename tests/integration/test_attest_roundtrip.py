"""The round trip of issue 16: SLSA v1 provenance attested on a Wasm artifact with a key and
keyless (through the loopback Fulcio and Rekor), carried to the real registry by
`copy -r`, then verified and gated there.

The release is made once for the module (`release`), as a release workflow would make it:
build into a layout, sign and attest with both signers, copy to the registry. The
provenance is what GitHub's own attestations say of a tag build (`PROVENANCE`), and the
gate policy is written by `gate_policy`, whose `attestation` rule is where conditions on
the provenance (builder id, source repository, ref) go once the gate has them.
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
) -> Path:
    """A gate policy trusting the release's key and/or its workflow (keyless), and
    requiring a SLSA v1 provenance attestation by them; `attestation` adds to that rule."""
    signatures: dict[str, Any] = {"required": required or int(keys) + int(keyless)}
    if keys:
        signatures["keys"] = [str(release.public_key)]
    if keyless:
        signatures["keyless"] = [{
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
