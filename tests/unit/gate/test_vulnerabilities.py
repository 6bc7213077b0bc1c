"""The gate's `vulnerabilities` check: known vulnerabilities judged by the policy's
threshold and ignores, against the real OSV records, reported like every other check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.audit.test_findings import rust
from wasmctl.cli import run
from wasmctl.errors import PolicyError
from wasmctl.gate.policy import load_gate_policy, referenced_files

OSV = Path(__file__).parents[4] / "shared" / "testdata" / "osv"


def artifact(tmp_path: Path, version: str) -> str:
    module = rust(tmp_path, {"regex": version})
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(module), "-t", layout]) == 0
    return layout


def policy(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(f"version: 1\nvulnerabilities:\n  database: {OSV}\n{section}")
    return path


def gate(policy: Path, target: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()
    code = run(["gate", "--policy", str(policy), "--format", "json", target])
    report = json.loads(capsys.readouterr().out)
    [target_report] = report["targets"]
    [check] = [c for c in target_report["checks"] if c["check"] == "vulnerabilities"]
    return code, check


def test_a_vulnerable_crate_fails_the_check_with_the_advisory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, check = gate(policy(tmp_path, "  failOn: high\n"), artifact(tmp_path, "1.5.4"), capsys)
    assert code == 1 and check["status"] == "fail"
    assert "RUSTSEC-2022-0013" in check["message"] and "1.5.5" in check["message"]


def test_the_fixed_crate_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, check = gate(policy(tmp_path, "  failOn: high\n"), artifact(tmp_path, "1.5.5"), capsys)
    assert code == 0 and check["status"] == "pass"


def test_below_the_threshold_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, check = gate(
        policy(tmp_path, "  failOn: critical\n"), artifact(tmp_path, "1.5.4"), capsys
    )
    assert code == 0 and check["status"] == "pass"


def test_an_ignore_with_a_reason_passes_and_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = "  ignore:\n    - id: CVE-2022-24713\n      reason: patterns are ours\n"
    code, check = gate(policy(tmp_path, section), artifact(tmp_path, "1.5.4"), capsys)
    assert code == 0 and check["status"] == "pass"
    assert "patterns are ours" in json.dumps(check["details"]["ignored"])


def test_an_expired_ignore_does_not_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = (
        "  ignore:\n    - id: RUSTSEC-2022-0013\n      reason: until the upgrade\n"
        "      expires: 2020-01-01\n"
    )
    code, check = gate(policy(tmp_path, section), artifact(tmp_path, "1.5.4"), capsys)
    assert code == 1 and check["status"] == "fail"


def test_a_missing_database_is_an_error_not_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "nothing").mkdir()
    path = tmp_path / "gate.yaml"
    path.write_text("version: 1\nvulnerabilities:\n  database: nothing\n")
    capsys.readouterr()
    code = run(["gate", "--policy", str(path), artifact(tmp_path, "1.5.5")])
    assert code == 2
    assert "wasmctl audit db update" in capsys.readouterr().out + capsys.readouterr().err


def test_a_stale_database_fails_closed_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, check = gate(
        policy(tmp_path, "  maxDatabaseAge: 1m\n"), artifact(tmp_path, "1.5.5"), capsys
    )
    assert code == 3 and check["status"] == "error"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  failOn: severe\n", "failOn"),
        ("  maxDatabaseAge: soon\n", "duration"),
        ("  ignore:\n    - id: RUSTSEC-2022-0013\n", "reason"),
        ("  ignoreUnreachable: yes please\n", "ignoreUnreachable"),
        ("  threshold: high\n", "unknown key"),
    ],
)
def test_a_malformed_section_is_refused_when_the_policy_is_read(
    tmp_path: Path, section: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        load_gate_policy(policy(tmp_path, section))


def test_the_database_files_are_part_of_what_the_policy_depends_on(tmp_path: Path) -> None:
    # gate serve reloads the policy, and empties its verdict cache, when one changes
    files = referenced_files(load_gate_policy(policy(tmp_path, "  failOn: high\n")))
    assert {f.name for f in files} == {"all.zip"} and len(files) == 2
