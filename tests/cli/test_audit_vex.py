"""`wasmctl audit` with OpenVEX at the command line (issue 16, part 4): `--vex FILE`,
verified `openvex` attestations on an `oci:` artifact (`--vex-key`), and `--emit-vex`.
What suppression does to the exit code, and that a suppressed finding is still listed, in
every format; matched against the real OSV records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.schemas import doc_schema, sarif_schema
from tests.unit.audit.test_findings import rust
from tests.unit.audit.test_reach import REGEX_NEW_LEGACY, rust_module
from tests.unit.audit.test_vex import REGEX, SCHEMA, document, sha256, statement
from wasmctl.cli import run

OSV = Path(__file__).parents[3] / "shared" / "testdata" / "osv"
DB = ["--db", str(OSV)]


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def regex_154(tmp_path: Path) -> Path:
    return rust(tmp_path, {"regex": "1.5.4"})


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def not_affected(module: Path, tmp_path: Path, **fields: Any) -> Path:
    """A VEX file: RUSTSEC-2022-0013 does not affect `module` (by its digest), in regex."""
    product = {
        "@id": f"sha256:{sha256(module)}",
        "subcomponents": [{"@id": "pkg:cargo/regex@1.5.4"}],
    }
    doc = document(
        statement(
            REGEX,
            [product],
            justification="vulnerable_code_not_in_execute_path",
            impact_statement="Every pattern is a constant.",
            **fields,
        )
    )
    return write(tmp_path / "vex.json", doc)


def audit_json(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run(["audit", *DB, "--fail-on", "any", "--format", "json", *argv])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, doc_schema("audit.schema.json"))
    return code, report


def finding(report: dict[str, Any], ident: str = REGEX) -> dict[str, Any]:
    [found] = [f for t in report["targets"] for f in t["findings"] if f["id"] == ident]
    return found


# -- from a file ------------------------------------------------------------------------------


def test_a_not_affected_statement_turns_exit_1_into_0_and_the_finding_stays_listed(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vex = not_affected(regex_154, tmp_path)
    code, without = audit_json(str(regex_154), capsys=capsys)
    assert code == 1 and finding(without)["status"] == "active"
    code, report = audit_json("--vex", str(vex), str(regex_154), capsys=capsys)
    assert code == 0 and report["verdict"] == "pass"
    suppressed = finding(report)
    assert suppressed["status"] == "suppressed" and suppressed["failing"] is False
    assert suppressed["vex"]["status"] == "not_affected"
    assert suppressed["vex"]["author"] == "ACME Security"
    assert suppressed["vex"]["justification"] == "vulnerable_code_not_in_execute_path"
    assert suppressed["vex"]["impactStatement"] == "Every pattern is a constant."
    assert suppressed["vex"]["source"] == str(vex)
    assert report["summary"]["suppressed"] == 1 and report["summary"]["failing"] == 0
    [read] = report["vex"]["documents"]
    assert read["source"] == str(vex) and read["target"] is None and read["statements"] == 1


def test_the_table_lists_the_suppressed_finding_with_the_statements_author_and_reason(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vex = not_affected(regex_154, tmp_path)
    assert run(["audit", *DB, "--fail-on", "any", "--vex", str(vex), str(regex_154)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "suppressed by VEX (not_affected)" in out
    assert REGEX in out and "regex@1.5.4" in out
    assert "not_affected (vulnerable_code_not_in_execute_path) by ACME Security" in out
    assert "Every pattern is a constant." in out
    assert "1 suppressed by VEX. PASS" in out


def test_a_statement_for_another_product_suppresses_nothing(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "other").mkdir()
    other = rust(tmp_path / "other", {"regex": "1.5.4", "itoa": "1.0.14"})  # other bytes
    vex = not_affected(other, tmp_path)
    code, report = audit_json("--vex", str(vex), str(regex_154), capsys=capsys)
    assert code == 1
    assert finding(report)["status"] == "active" and finding(report)["vex"] is None


@pytest.mark.parametrize("status", ["affected", "fixed", "under_investigation"])
def test_affected_fixed_and_under_investigation_are_reported_and_fail_as_before(
    regex_154: Path, tmp_path: Path, status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    product = [{"@id": f"sha256:{sha256(regex_154)}"}]
    vex = write(tmp_path / "vex.json", document(statement(REGEX, product, status)))
    code, report = audit_json("--vex", str(vex), str(regex_154), capsys=capsys)
    assert code == 1
    found = finding(report)
    assert found["status"] == "active" and found["failing"] is True
    assert found["vex"]["status"] == status
    assert run(["audit", *DB, "--vex", str(vex), str(regex_154)]) == 1
    assert f"VEX {status}" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json at all", "not JSON"),
        (
            json.dumps(
                {**document(statement(REGEX, [{"@id": "x"}])), "statements": "all"}
            ).encode(),
            "statements",
        ),
        (
            json.dumps(document(statement(REGEX, [{"@id": "x"}], "exploitable"))).encode(),
            "not one of not_affected",
        ),
        (
            json.dumps(
                document(
                    {
                        "vulnerability": {"name": REGEX},
                        "products": [{"@id": "x"}],
                        "status": "not_affected",
                    }
                )
            ).encode(),
            "without a justification or an impact_statement",
        ),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
        (b" " * (5 << 20), "larger than"),
    ],
    ids=["not-json", "wrong-type", "unknown-status", "no-justification", "deep", "huge"],
)
def test_a_malformed_vex_file_exits_2_with_what_is_wrong(
    regex_154: Path, tmp_path: Path, content: bytes, message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    vex = tmp_path / "vex.json"
    vex.write_bytes(content)
    assert run(["audit", *DB, "--vex", str(vex), str(regex_154)]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "vex.json" in err
    assert "Traceback" not in err


def test_a_missing_vex_file_exits_2(regex_154: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", *DB, "--vex", "nowhere.json", str(regex_154)]) == 2
    assert "nowhere.json" in capsys.readouterr().err


def test_sarif_carries_the_suppression_with_the_statement(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vex = not_affected(regex_154, tmp_path)
    capsys.readouterr()
    assert run(["audit", *DB, "-f", "sarif", "--vex", str(vex), str(regex_154)]) == 0
    log = json.loads(capsys.readouterr().out)
    jsonschema.validate(log, sarif_schema())
    [result] = log["runs"][0]["results"]
    [suppression] = result["suppressions"]
    assert suppression["kind"] == "external" and suppression["status"] == "accepted"
    assert (
        "not_affected (vulnerable_code_not_in_execute_path) by ACME Security"
        in (suppression["justification"])
    )
    assert "Every pattern is a constant." in suppression["justification"]
    assert result["properties"]["status"] == "suppressed"


@pytest.mark.parametrize(
    ("status", "state", "justification"),
    [
        ("not_affected", "not_affected", "code_not_reachable"),
        ("affected", "exploitable", None),
        ("fixed", "resolved", None),
        ("under_investigation", "in_triage", None),
    ],
)
def test_cyclonedx_takes_the_analysis_from_the_statement(
    regex_154: Path, tmp_path: Path, status: str, state: str, justification: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    product = [{"@id": f"sha256:{sha256(regex_154)}"}]
    vex = write(tmp_path / "vex.json", document(statement(REGEX, product, status)))
    capsys.readouterr()
    code = run(["audit", *DB, "-f", "cyclonedx", "--vex", str(vex), str(regex_154)])
    assert code == (0 if status == "not_affected" else 1)
    [vulnerability] = json.loads(capsys.readouterr().out)["vulnerabilities"]
    analysis = vulnerability["analysis"]
    assert analysis["state"] == state
    assert analysis.get("justification") == justification
    assert "ACME Security" in analysis["detail"]
    assert analysis["firstIssued"].startswith("2026-01-01T00:00:00")
    properties = {p["name"]: p["value"] for p in vulnerability["properties"]}
    assert properties["wasmctl:audit:vex:status"] == status


# -- from a verified attestation on an `oci:` artifact ----------------------------------------


def attest_vex(layout: str, doc: Any, prefix: Path) -> Path:
    """Sign `doc` into an OpenVEX attestation about `layout` with a new key, stored as
    `sbom --attest` stores one; the public key's path."""
    from wasmctl.audit.vex import CONTEXT
    from wasmctl.oci.reference import parse_reference
    from wasmctl.sign.keys import generate_key_pair, load_private_key, write_key_pair
    from wasmctl.sign.signer import KeySigning
    from wasmctl.sign.targets import sign_reference

    key, pub = write_key_pair(generate_key_pair(b""), prefix)
    signer = KeySigning(load_private_key(key.read_bytes(), b""))
    sign_reference(parse_reference(layout), signer, predicate_type=CONTEXT, predicate=doc)
    return pub


def built(module: Path, tmp_path: Path) -> str:
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(module), "-t", layout]) == 0
    return layout


def statement_about_the_subject() -> dict[str, Any]:
    """A statement with no products: in an attestation, about its subject (ATTESTING.md)."""
    bare = statement(REGEX, [], justification="vulnerable_code_not_present")
    return {k: v for k, v in bare.items() if k != "products"}


def test_a_verified_attestation_suppresses_the_finding_on_that_artifact(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = built(regex_154, tmp_path)
    pub = attest_vex(layout, document(statement_about_the_subject()), tmp_path / "vendor")
    code, report = audit_json(layout, capsys=capsys)
    assert code == 1  # without trust flags, attestations are not read
    assert finding(report)["status"] == "active" and not report["vex"]["documents"]
    code, report = audit_json("--vex-key", str(pub), layout, capsys=capsys)
    assert code == 0
    suppressed = finding(report)
    assert suppressed["status"] == "suppressed"
    assert suppressed["vex"]["justification"] == "vulnerable_code_not_present"
    assert suppressed["vex"]["signer"].startswith("key ")
    assert suppressed["vex"]["source"].startswith("attestation ")
    [read] = report["vex"]["documents"]
    assert read["target"] == layout and read["signer"] == suppressed["vex"]["signer"]
    assert run(["audit", *DB, "--vex-key", str(pub), layout]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "suppressed by VEX" in out and "signed by key" in out


def test_an_attestation_made_by_wasmctl_attest_type_openvex_is_read(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `attest --type openvex` stores it under cosign's predicate type, https://openvex.dev/ns
    from wasmctl.sign.keys import generate_key_pair, write_key_pair

    layout = built(regex_154, tmp_path)
    key, pub = write_key_pair(generate_key_pair(b""), tmp_path / "vendor")
    predicate = write(tmp_path / "vex.json", document(statement_about_the_subject()))
    argv = ["attest", layout, "--type", "openvex", "--predicate", str(predicate)]
    assert run([*argv, "--key", str(key)]) == 0
    code, report = audit_json("--vex-key", str(pub), layout, capsys=capsys)
    assert code == 0 and finding(report)["status"] == "suppressed"


def test_an_attestation_naming_the_artifacts_purl_applies(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = built(regex_154, tmp_path)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    product = [{"@id": f"pkg:oci/out@{digest.replace(':', '%3A')}?tag=v1"}]
    pub = attest_vex(layout, document(statement(REGEX, product)), tmp_path / "vendor")
    code, report = audit_json("--vex-key", str(pub), layout, capsys=capsys)
    assert code == 0 and finding(report)["status"] == "suppressed"
    # and in a file, for the same artifact
    capsys.readouterr()
    vex = write(tmp_path / "vex.json", document(statement(REGEX, product)))
    assert run(["audit", *DB, "--vex", str(vex), layout]) == 0


def test_an_attestation_signed_by_an_untrusted_key_is_reported_and_not_used(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wasmctl.sign.keys import generate_key_pair, write_key_pair

    layout = built(regex_154, tmp_path)
    attest_vex(layout, document(statement_about_the_subject()), tmp_path / "mallory")
    _, trusted = write_key_pair(generate_key_pair(b""), tmp_path / "vendor")
    code, report = audit_json("--vex-key", str(trusted), layout, capsys=capsys)
    assert code == 1
    assert finding(report)["status"] == "active" and finding(report)["vex"] is None
    [rejected] = report["vex"]["rejected"]
    assert rejected["target"] == layout and rejected["reason"]
    assert not report["vex"]["documents"]
    assert run(["audit", *DB, "--vex-key", str(trusted), layout]) == 1
    assert "VEX attestation not used" in capsys.readouterr().out


def test_a_verified_attestation_that_is_no_openvex_document_is_not_used(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = built(regex_154, tmp_path)
    broken = document({**statement_about_the_subject(), "status": "fine"})
    pub = attest_vex(layout, broken, tmp_path / "vendor")
    code, report = audit_json("--vex-key", str(pub), layout, capsys=capsys)
    assert code == 1
    [rejected] = report["vex"]["rejected"]
    assert "status" in rejected["reason"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--trusted-root", "root.json"],
        ["--vex-certificate-identity", "a@example.com"],  # no issuer
        ["--vex-key", "k.pub", "--vex-certificate-oidc-issuer", "https://issuer.example"],
        ["--emit-vex", "-"],
        ["--vex-author", " "],
    ],
)
def test_incomplete_vex_trust_flags_exit_2(
    regex_154: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audit", *DB, *argv, str(regex_154)]) == 2
    assert "Traceback" not in capsys.readouterr().err


# -- --emit-vex ---------------------------------------------------------------------------------


@pytest.fixture
def absent(tmp_path: Path) -> Path:
    # RUSTSEC-2021-0003 lists smallvec::SmallVec::insert_many, which the module lacks
    return rust_module(tmp_path, REGEX_NEW_LEGACY, {"smallvec": "1.6.0", "regex": "1.5.4"})


def test_emit_vex_writes_schema_valid_openvex_that_suppresses_exactly_the_absent_findings(
    absent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    emitted = tmp_path / "app.openvex.json"
    code, before = audit_json("--emit-vex", str(emitted), "--vex-author", "ACME", str(absent),
                              capsys=capsys)  # fmt: skip
    assert code == 1
    doc = json.loads(emitted.read_text(encoding="utf-8"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert doc["author"] == "ACME" and doc["timestamp"] == "2026-01-01T00:00:00Z"
    proven = {
        f["id"] for t in before["targets"] for f in t["findings"]
        if f["symbols"]["verdict"] == "absent"
    }  # fmt: skip
    assert proven == {s["vulnerability"]["name"] for s in doc["statements"]}
    code, after = audit_json("--vex", str(emitted), str(absent), capsys=capsys)
    suppressed = {f["id"] for t in after["targets"] for f in t["findings"]
                  if f["status"] == "suppressed"}  # fmt: skip
    assert suppressed == proven
    still = {f["id"] for t in after["targets"] for f in t["findings"] if f["status"] == "active"}
    assert still and not still & proven  # regex's advisory names no function: it stays
    assert code == 1
    first = emitted.read_bytes()
    assert run(["audit", *DB, "--emit-vex", str(emitted), "--vex-author", "ACME",
                str(absent)]) == 1  # fmt: skip
    assert emitted.read_bytes() == first


def test_emit_vex_writes_nothing_when_nothing_is_proven_absent(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emitted = tmp_path / "none.openvex.json"
    assert run(["audit", *DB, "--emit-vex", str(emitted), str(regex_154)]) == 1
    assert not emitted.exists()
    assert "not written" in capsys.readouterr().err
