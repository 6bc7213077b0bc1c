"""Keyless signing end to end: wasmctl → sigstore-python → loopback Fulcio and Rekor.

The stand-ins (tests.sigstore_standin) are configured by a trust config the tests build with
their own CA, CT and log keys. What wasmctl signs is verified by `wasmctl verify` and by
sigstore-python's own `Verifier` (and CLI) with that trust root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_offline_verify import assert_untouched, guarded
from tests.registry import RegistryServer
from tests.sigstore_standin import DEFAULT_IDENTITY, GITHUB_ISSUER, SigstoreStandin
from wasmctl.cli import run

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"


@pytest.fixture
def trust(sigstore_standin: SigstoreStandin, tmp_path: Path) -> tuple[Path, Path]:
    """(client trust config for signing, trusted root for verifying)."""
    return (
        sigstore_standin.write_trust_config(tmp_path / "trust-config.json"),
        sigstore_standin.write_trusted_root(tmp_path / "trusted-root.json"),
    )


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                 "SIGSTORE_ID_TOKEN", "GITLAB_CI", "BUILDKITE", "CIRCLECI"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))


def identity_args(identity: str = DEFAULT_IDENTITY, issuer: str = GITHUB_ISSUER) -> list[str]:
    return ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]


def test_keyless_signature_of_a_registry_artifact_verifies_with_wasmctl_and_sigstore_python(
    sigstore_standin: SigstoreStandin,
    trust: tuple[Path, Path],
    registry: RegistryServer,
    repo_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier, policy

    config, root = trust
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    token = sigstore_standin.identity_token()
    logged_before = len(sigstore_standin.entries)
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    assert run(["sign", ref, "--identity-token", token, "--trust-config", str(config),
                "--plain-http", host]) == 0  # fmt: skip
    assert len(sigstore_standin.entries) == logged_before + 1
    assert sigstore_standin.entries[-1].kind == "dsse"
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err

    assert run(["verify", "-f", "json", ref, "--trusted-root", str(root), *identity_args(),
                "--github-repository", "acme/app", "--plain-http", host]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    [check] = report["signatures"]
    assert check["verified"] and check["transparencyLog"]
    assert check["signer"]["identities"] == [DEFAULT_IDENTITY]
    assert check["signer"]["issuer"] == GITHUB_ISSUER

    # sigstore-python, on its own, accepts the stored bundle; its statement is about the digest.
    from wasmctl.oci.reference import parse_reference
    from wasmctl.oci.source import RegistryOptions, open_source
    from wasmctl.sign.storage import find_candidates

    options = RegistryOptions(plain_http=frozenset({host}))
    with open_source(parse_reference(ref), options) as store:
        candidates, _ = find_candidates(store, report["digest"])
    [candidate] = candidates
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root)))
    payload_type, payload = verifier.verify_dsse(
        SigstoreBundle.from_json(candidate.data),
        policy.Identity(identity=DEFAULT_IDENTITY, issuer=GITHUB_ISSUER),
    )
    statement = json.loads(payload)
    assert payload_type == "application/vnd.in-toto+json"
    assert statement["predicateType"] == COSIGN_SIGN
    assert statement["subject"][0]["digest"]["sha256"] == report["digest"].split(":")[1]


def test_a_wrong_identity_or_foreign_root_exits_1_showing_what_was_found(
    sigstore_standin: SigstoreStandin,
    trust: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, root = trust
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", layout]) == 0
    token = sigstore_standin.identity_token()
    assert run(["sign", layout, "--identity-token", token, "--trust-config", str(config)]) == 0
    capsys.readouterr()
    wanted = "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main"
    code = run(["verify", layout, "--trusted-root", str(root), *identity_args(identity=wanted)])
    out = capsys.readouterr().out
    assert code == 1
    assert wanted in out  # what the policy asked for
    assert DEFAULT_IDENTITY in out  # what was found
    assert GITHUB_ISSUER in out

    with SigstoreStandin() as foreign:
        foreign_root = foreign.write_trusted_root(tmp_path / "foreign-root.json")
    assert run(["verify", layout, "--trusted-root", str(foreign_root), *identity_args()]) == 1


def test_keyless_file_signature_verifies_with_sigstore_pythons_cli(
    sigstore_standin: SigstoreStandin, trust: tuple[Path, Path], tmp_path: Path
) -> None:
    config, root = trust
    module = tmp_path / "hello.wasm"
    module.write_bytes(HELLO.read_bytes())
    token = sigstore_standin.identity_token()
    assert run(["sign", str(module), "--identity-token", token, "--trust-config", str(config)]) == 0
    bundle = tmp_path / "hello.wasm.sigstore.json"
    assert run(["verify", str(module), "--trusted-root", str(root), *identity_args()]) == 0
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "c"), XDG_DATA_HOME=str(tmp_path / "d"))
    peer = subprocess.run(
        [
            *(sys.executable, "-m", "sigstore", "--trust-config", str(config)),
            *("verify", "identity", "--bundle", str(bundle)),
            *("--cert-identity", DEFAULT_IDENTITY, "--cert-oidc-issuer", GITHUB_ISSUER),
            str(module),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert peer.returncode == 0, peer.stderr
    module.write_bytes(HELLO.read_bytes() + b"\x00")
    assert run(["verify", str(module), "--trusted-root", str(root), *identity_args()]) == 1


def test_ambient_github_actions_credentials_are_used(
    sigstore_standin: SigstoreStandin,
    trust: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, root = trust
    identity = "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"
    for name, value in sigstore_standin.github_actions_env(identity=identity).items():
        monkeypatch.setenv(name, value)
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", layout]) == 0
    tokens_before = sigstore_standin.requests["github-token"]
    assert run(["sign", layout, "--trust-config", str(config)]) == 0
    assert sigstore_standin.requests["github-token"] == tokens_before + 1
    assert f"Signing keyless as {identity}" in capsys.readouterr().err
    assert run(["verify", layout, "--trusted-root", str(root),
                "--certificate-identity-regexp", r"https://github\.com/acme/app/.*",
                "--certificate-oidc-issuer", GITHUB_ISSUER,
                "--github-ref", "refs/heads/main",
                "--github-repository", "acme/app"]) == 0  # fmt: skip
    assert run(["verify", layout, "--trusted-root", str(root),
                "--certificate-identity-regexp", r"https://github\.com/acme/app/.*",
                "--certificate-oidc-issuer", GITHUB_ISSUER,
                "--github-ref", "refs/tags/v1"]) == 1  # fmt: skip


def test_without_any_token_signing_is_bad_input(
    trust: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = trust
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", layout]) == 0
    assert run(["sign", layout, "--trust-config", str(config)]) == 2
    assert "--identity-token" in capsys.readouterr().err


def test_a_token_fulcio_refuses_is_a_remote_failure_and_stays_secret(
    sigstore_standin: SigstoreStandin,
    trust: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, _ = trust
    with SigstoreStandin() as foreign:
        token = foreign.identity_token()  # signed with another secret: Fulcio says 401
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", layout]) == 0
    capsys.readouterr()
    assert run(["sign", layout, "--identity-token", token, "--trust-config", str(config)]) == 3
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    assert "Fulcio" in captured.err or "certificate" in captured.err
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert len(index["manifests"]) == 1  # nothing was attached


def test_keyless_registry_verification_contacts_only_the_registry(
    sigstore_standin: SigstoreStandin,
    trust: tuple[Path, Path],
    registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
) -> None:
    config, root = trust
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    token = sigstore_standin.identity_token()
    assert run(["sign", ref, "--identity-token", token, "--trust-config", str(config),
                "--plain-http", host]) == 0  # fmt: skip
    args = ["verify", ref, "--trusted-root", str(root), *identity_args(), "--plain-http", host]
    result, connections = guarded(args, tmp_path, allow=host)
    assert result.returncode == 0, result.stderr + result.stdout
    assert connections and set(connections) == {host}
    assert_untouched(tmp_path)


def test_github_actions_without_the_id_token_permission_is_bad_input(
    trust: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, _ = trust
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # but no ACTIONS_ID_TOKEN_REQUEST_* variables
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", layout]) == 0
    assert run(["sign", layout, "--trust-config", str(config)]) == 2
    assert "id-token: write" in capsys.readouterr().err
