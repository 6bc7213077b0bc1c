"""A keyless OpenVEX attestation (through the loopback Fulcio and Rekor stand-ins) read by
`wasmctl audit` with the `--vex-certificate-*` flags and a trusted root, offline: used when
the identity and issuer match, listed and not used when they do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_audit_vex import built, statement_about_the_subject
from tests.sigstore_standin import DEFAULT_IDENTITY, GITHUB_ISSUER, SigstoreStandin
from tests.unit.audit.test_findings import rust
from tests.unit.audit.test_vex import REGEX, document
from wasmctl.cli import run

OSV = Path(__file__).parents[3] / "shared" / "testdata" / "osv"


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                 "SIGSTORE_ID_TOKEN", "GITLAB_CI", "BUILDKITE", "CIRCLECI"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def findings(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_a_keyless_vex_attestation_counts_only_for_its_identity(
    sigstore_standin: SigstoreStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wasmctl.audit.vex import CONTEXT
    from wasmctl.oci.reference import parse_reference
    from wasmctl.sign.signer import KeylessSigning
    from wasmctl.sign.targets import sign_reference

    layout = built(rust(tmp_path, {"regex": "1.5.4"}), tmp_path)
    config = sigstore_standin.write_trust_config(tmp_path / "trust-config.json")
    root = sigstore_standin.write_trusted_root(tmp_path / "trusted-root.json")
    doc = document(statement_about_the_subject())
    with KeylessSigning(trust_config=config, identity_token=sigstore_standin.identity_token()) as s:
        sign_reference(parse_reference(layout), s, predicate_type=CONTEXT, predicate=doc)
    argv = ["audit", "--db", str(OSV), "-f", "json", "--trusted-root", str(root)]
    capsys.readouterr()
    assert run([*argv, "--vex-certificate-identity", DEFAULT_IDENTITY,
                "--vex-certificate-oidc-issuer", GITHUB_ISSUER, layout]) == 0  # fmt: skip
    [finding] = findings(capsys)["targets"][0]["findings"]
    assert finding["id"] == REGEX and finding["status"] == "suppressed"
    assert DEFAULT_IDENTITY in finding["vex"]["signer"]
    assert run([*argv, "--vex-certificate-identity", "someone@else.example",
                "--vex-certificate-oidc-issuer", GITHUB_ISSUER, layout]) == 1  # fmt: skip
    report = findings(capsys)
    assert report["targets"][0]["findings"][0]["status"] == "active"
    [rejected] = report["vex"]["rejected"]
    assert DEFAULT_IDENTITY in rejected["reason"]  # what was found, beside what was asked
