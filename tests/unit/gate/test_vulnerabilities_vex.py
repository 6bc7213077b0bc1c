"""The gate's `vulnerabilities` check with OpenVEX (issue 16, part 4): the policy's `vex`
files (relative to the policy, read with it) and, with `vexAttestations`, the artifact's
openvex attestations that verify under the policy's `signatures`. Real modules, the real
OSV records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.cli.test_audit_vex import attest_vex, statement_about_the_subject
from tests.schemas import doc_schema
from tests.unit.audit.test_findings import rust
from tests.unit.audit.test_vex import REGEX, document, sha256, statement
from wasmctl.cli import run
from wasmctl.errors import PolicyError
from wasmctl.gate.policy import load_gate_policy, referenced_files

OSV = Path(__file__).parents[4] / "shared" / "testdata" / "osv"


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def module(tmp_path: Path) -> Path:
    return rust(tmp_path, {"regex": "1.5.4"})


@pytest.fixture
def layout(module: Path, tmp_path: Path) -> str:
    target = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(module), "-t", target]) == 0
    return target


def manifest_digest(tmp_path: Path) -> str:
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    digest: str = index["manifests"][0]["digest"]
    return digest


def policy(tmp_path: Path, section: str, top: str = "") -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(f"version: 1\n{top}vulnerabilities:\n  database: {OSV}\n{section}")
    return path


def vex_file(tmp_path: Path, products: list[dict[str, Any]], status: str = "not_affected") -> Path:
    (tmp_path / "vex").mkdir(exist_ok=True)
    path = tmp_path / "vex" / "app.openvex.json"
    path.write_text(json.dumps(document(statement(REGEX, products, status))))
    return path


def gate(policy: Path, target: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()
    code = run(["gate", "--policy", str(policy), "--format", "json", target])
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, doc_schema("gate-report.schema.json"))
    [target_report] = report["targets"]
    [check] = [c for c in target_report["checks"] if c["check"] == "vulnerabilities"]
    return code, check


def test_a_policy_vex_file_about_the_artifact_passes_the_check_and_lists_the_finding(
    layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = manifest_digest(tmp_path)
    vex_file(tmp_path, [{"@id": f"pkg:oci/app@{digest.replace(':', '%3A')}"}])
    code, check = gate(policy(tmp_path, ""), layout, capsys)
    assert code == 1 and check["status"] == "fail"  # no vex: the finding fails it
    code, check = gate(policy(tmp_path, "  vex: [vex/app.openvex.json]\n"), layout, capsys)
    assert code == 0 and check["status"] == "pass"
    assert "1 suppressed by VEX" in check["message"]
    [suppressed] = check["details"]["suppressed"]
    assert REGEX in suppressed and "not_affected" in suppressed and "ACME Security" in suppressed
    [stated] = check["details"]["vex"]
    assert stated["id"] == REGEX and stated["status"] == "not_affected"
    assert stated["justification"] == "vulnerable_code_not_in_execute_path"
    [read] = check["details"]["vexDocuments"]
    assert read["author"] == "ACME Security"


def test_a_policy_vex_file_about_the_module_passes_the_check(
    module: Path, layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vex_file(tmp_path, [{"@id": "module", "hashes": {"sha-256": sha256(module)}}])
    code, check = gate(policy(tmp_path, "  vex: [vex/app.openvex.json]\n"), layout, capsys)
    assert code == 0 and check["status"] == "pass"


def test_a_statement_for_another_artifact_suppresses_nothing_at_the_gate(
    layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vex_file(tmp_path, [{"@id": "pkg:oci/app@sha256%3A" + "0" * 64}])
    code, check = gate(policy(tmp_path, "  vex: [vex/app.openvex.json]\n"), layout, capsys)
    assert code == 1 and check["status"] == "fail"
    assert "suppressed" not in check["details"]


def test_an_affected_statement_is_reported_on_the_failing_finding(
    layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = manifest_digest(tmp_path)
    vex_file(tmp_path, [{"@id": digest}], "affected")
    code, check = gate(policy(tmp_path, "  vex: [vex/app.openvex.json]\n"), layout, capsys)
    assert code == 1 and "[VEX affected]" in check["message"]
    assert check["details"]["vex"][0]["actionStatement"] == "Upgrade regex to 1.5.5."


def test_a_malformed_policy_vex_file_stops_the_policy_loading_with_exit_2(
    layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vex").mkdir()
    (tmp_path / "vex" / "app.openvex.json").write_text('{"@context": 1}')
    path = policy(tmp_path, "  vex: [vex/app.openvex.json]\n")
    with pytest.raises(PolicyError, match=r"vulnerabilities\.vex: VEX document .*@context"):
        load_gate_policy(path)
    capsys.readouterr()
    assert run(["gate", "--policy", str(path), layout]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  vex: vex/app.openvex.json\n", "must be a list"),
        ("  vex: [missing.json]\n", "missing.json"),
        ("  vexAttestations: yes please\n", "vexAttestations"),
        ("  vexAttestations: true\n", "needs `signatures`"),
    ],
)
def test_a_malformed_vex_setting_is_refused_when_the_policy_is_read(
    tmp_path: Path, section: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        load_gate_policy(policy(tmp_path, section))


def test_the_vex_files_are_part_of_what_the_policy_depends_on(module: Path, tmp_path: Path) -> None:
    # gate serve reloads the policy, and empties its verdict cache, when one changes
    vex = vex_file(tmp_path, [{"@id": f"sha256:{sha256(module)}"}])
    files = referenced_files(load_gate_policy(policy(tmp_path, "  vex: [vex/app.openvex.json]\n")))
    assert vex.resolve() in files


# -- attestations, verified under the policy's `signatures` -------------------------------------


def signed_policy(tmp_path: Path, pub: Path, attestations: bool = True) -> Path:
    top = f"signatures:\n  keys: [{pub}]\n"
    return policy(tmp_path, "  vexAttestations: true\n" if attestations else "", top)


def test_a_verified_vex_attestation_passes_the_check(
    layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = attest_vex(layout, document(statement_about_the_subject()), tmp_path / "vendor")
    key = tmp_path / "vendor.key"
    assert run(["sign", "--key", str(key), layout]) == 0  # for the signature check
    code, check = gate(signed_policy(tmp_path, pub, attestations=False), layout, capsys)
    assert code == 1 and check["status"] == "fail"  # not asked to read them
    code, check = gate(signed_policy(tmp_path, pub), layout, capsys)
    assert code == 0 and check["status"] == "pass"
    [stated] = check["details"]["vex"]
    assert stated["signer"].startswith("key ") and stated["source"].startswith("attestation ")


def test_a_vex_attestation_by_a_key_the_policy_does_not_trust_is_not_used(
    layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wasmctl.sign.keys import generate_key_pair, write_key_pair

    attest_vex(layout, document(statement_about_the_subject()), tmp_path / "mallory")
    key, pub = write_key_pair(generate_key_pair(b""), tmp_path / "vendor")
    assert run(["sign", "--key", str(key), layout]) == 0
    code, check = gate(signed_policy(tmp_path, pub), layout, capsys)
    assert code == 1 and check["status"] == "fail"
    [rejected] = check["details"]["vexRejected"]
    assert rejected["source"] and rejected["reason"]  # where it is, and why not
