"""`generate-key-pair`, `sign` and `verify` on the command line: usage errors and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.vectors import CONFORMANCE, DEFAULT_IDENTITY, DEFAULT_ISSUER, PRODUCTION_ROOT
from wasmctl.cli import run

A_TXT = CONFORMANCE / "a.txt"
HAPPY = CONFORMANCE / "happy-path-v0.3" / "bundle.sigstore.json"
KEYLESS = ["--certificate-identity", DEFAULT_IDENTITY, "--certificate-oidc-issuer", DEFAULT_ISSUER]


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")


def verify(*args: str) -> int:
    return run(["verify", str(A_TXT), "--bundle", str(HAPPY), "--trusted-root",
                str(PRODUCTION_ROOT), *args])  # fmt: skip


def test_verify_needs_something_to_trust(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify() == 2
    assert "nothing to trust" in capsys.readouterr().err


def test_keyless_verify_needs_both_an_identity_and_an_issuer() -> None:
    assert verify("--certificate-identity", DEFAULT_IDENTITY) == 2
    assert verify("--certificate-oidc-issuer", DEFAULT_ISSUER) == 2
    assert verify(*KEYLESS) == 0


def test_a_key_and_an_identity_policy_are_exclusive(tmp_path: Path) -> None:
    pub = CONFORMANCE / "managed-key-happy-path" / "key.pub"
    assert verify("--key", str(pub), *KEYLESS) == 2


def test_an_invalid_regexp_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify("--certificate-identity-regexp", "(", "--certificate-oidc-issuer", "x") == 2
    assert "invalid regular expression" in capsys.readouterr().err


def test_a_missing_or_truncated_bundle_is_bad_input(tmp_path: Path) -> None:
    assert run(["verify", str(A_TXT), *KEYLESS, "--bundle", str(tmp_path / "none")]) == 2
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(HAPPY.read_bytes()[:500])
    assert run(["verify", str(A_TXT), *KEYLESS, "--bundle", str(truncated)]) == 2


def test_a_huge_bundle_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(64 << 20)
    assert run(["verify", str(A_TXT), *KEYLESS, "--offline", "--bundle", str(huge)]) == 2


def test_bundle_is_only_for_files(tmp_path: Path) -> None:
    assert run(["verify", f"oci:{tmp_path}/out:v1", *KEYLESS, "--bundle", "x.json"]) == 2
    assert run(["sign", f"oci:{tmp_path}/out:v1", "--key", "k", "--bundle", "x.json"]) == 2


def test_key_signing_refuses_keyless_options(tmp_path: Path) -> None:
    assert run(["sign", str(A_TXT), "--key", "cosign.key", "--identity-token", "t"]) == 2


def test_a_regexp_match_is_anchored(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify("--certificate-identity-regexp", "extremely-dangerous",
                  "--certificate-oidc-issuer", DEFAULT_ISSUER, "-f", "json") == 1  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert "whole string" in report["signatures"][0]["error"]
    issuer = r"https://token\.actions\..*"
    assert verify("--certificate-identity-regexp", ".*extremely-dangerous.*",
                  "--certificate-oidc-issuer-regexp", issuer) == 0  # fmt: skip


def test_json_output_goes_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert verify(*KEYLESS, "-f", "json", "-o", str(out)) == 0
    assert json.loads(out.read_text())["passed"] is True


def test_generate_key_pair_writes_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = str(tmp_path / "release")
    assert run(["generate-key-pair", "--output-key-prefix", prefix]) == 0
    key = tmp_path / "release.key"
    assert b"ENCRYPTED SIGSTORE PRIVATE KEY" in key.read_bytes()
    assert (key.stat().st_mode & 0o777) == 0o600
    before = key.read_bytes()
    assert run(["generate-key-pair", "--output-key-prefix", prefix]) == 2
    assert key.read_bytes() == before
    assert run(["generate-key-pair", "--output-key-prefix", prefix, "--force"]) == 0
    assert key.read_bytes() != before
    assert "pw" not in capsys.readouterr().err.split()


def test_without_a_password_and_no_terminal_key_commands_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COSIGN_PASSWORD")
    assert run(["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")]) == 2
    assert "COSIGN_PASSWORD" in capsys.readouterr().err
    assert not (tmp_path / "k.key").exists()


@pytest.mark.parametrize("command", ["sign", "verify", "generate-key-pair"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples" in out and f"wasmctl {command}" in out


def test_verify_help_says_regexps_are_anchored(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["verify", "--help"]) == 0
    assert "anchored" in capsys.readouterr().out


def test_top_level_help_has_examples_of_the_whole_chain(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("scan", "build", "sign", "sbom", "gate"):
        assert f"wasmctl {command}" in out


def test_shell_completion_completes_commands_and_options(tmp_path: Path) -> None:
    """typer's (click's) completion protocol, as the installed bash script calls it."""
    import os
    import subprocess
    import sys

    def complete(words: str) -> list[str]:
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        env = dict(os.environ, _WASMCTL_COMPLETE="complete_bash", COMP_WORDS=words,
                   COMP_CWORD=str(cword))  # fmt: skip
        proc = subprocess.run([sys.executable, "-m", "wasmctl"], env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        return proc.stdout.split()

    assert "gate" in complete("wasmctl ga")
    assert "--certificate-identity-regexp" in complete("wasmctl verify --certificate-identity")
    assert "no-network" in complete("wasmctl scan --preset ")
