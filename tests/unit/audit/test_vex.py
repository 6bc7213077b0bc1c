"""OpenVEX in the audit (`wasmctl.audit.vex`): documents read as strictly as the OpenVEX
0.2.0 schema, statements matched to real findings (real modules, the real OSV records) by
vulnerability, product and package, the newest in force, and the document `--emit-vex`
writes checked against the schema by an independent validator."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.audit.test_findings import rust
from tests.unit.audit.test_reach import REGEX_NEW_LEGACY, rust_module
from wasmctl.audit import AuditOptions, audit_targets, osv
from wasmctl.audit.model import AuditReport, Place, Placed
from wasmctl.audit.vex import (
    CONTEXT,
    Justification,
    Status,
    VexError,
    VexSet,
    emit,
    parse,
    validate,
)

TESTDATA = Path(__file__).parents[4] / "shared" / "testdata" / "osv"
SCHEMA = Path(__file__).parents[3] / "wasmctl" / "audit" / "openvex-0.2.0.schema.json"
REGEX = "RUSTSEC-2022-0013"  # regex 1.5.4; alias CVE-2022-24713
SMALLVEC = "RUSTSEC-2021-0003"  # smallvec 1.6.0, lists smallvec::SmallVec::insert_many


@pytest.fixture(scope="module")
def real() -> osv.Database:
    return osv.load([TESTDATA])


def document(*statements: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@id": "https://vex.acme.example/app/1",
        "author": "ACME Security",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": list(statements),
        **fields,
    }


def statement(
    name: str, products: list[dict[str, Any]], status: str = "not_affected", **fields: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"vulnerability": {"name": name}, "products": products, "status": status}
    if status == "not_affected" and "impact_statement" not in fields:
        out["justification"] = "vulnerable_code_not_in_execute_path"
    if status == "affected" and "action_statement" not in fields:
        out["action_statement"] = "Upgrade regex to 1.5.5."
    return {**out, **fields}


def read(doc: Any, source: str = "vex.json") -> Any:
    return parse(json.dumps(doc).encode(), source)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audited(module: Path, database: osv.Database, *docs: dict[str, Any]) -> AuditReport:
    vex = VexSet(read(d, f"vex{i}.json") for i, d in enumerate(docs)) if docs else None
    return audit_targets([str(module)], database, AuditOptions(vex=vex))


def placed(report: AuditReport, advisory: str = REGEX) -> Placed:
    [found] = [p for p in report.placed() if p.finding.advisory.id == advisory]
    return found


# -- reading -----------------------------------------------------------------------------------


def test_a_document_is_read_with_its_statements_and_the_documents_timestamp() -> None:
    doc = read(
        document(
            statement(REGEX, [{"@id": "pkg:oci/app@sha256:" + "a" * 64}]),
            statement(
                "CVE-2022-24713",
                [{"@id": "pkg:oci/app@sha256:" + "a" * 64}],
                "affected",
                timestamp="2026-02-01T10:00:00.123456789+01:00",
            ),
        )
    )
    first, second = doc.statements
    assert doc.origin.author == "ACME Security" and doc.version == 1
    assert first.status is Status.NOT_AFFECTED
    assert first.justification is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
    assert first.timestamp == datetime(2026, 1, 1, tzinfo=UTC)  # inherited
    assert second.timestamp == datetime(2026, 2, 1, 9, 0, 0, 123456, tzinfo=UTC)  # its own
    assert second.action_statement == "Upgrade regex to 1.5.5."


PRODUCT = [{"@id": "pkg:oci/app@sha256:" + "a" * 64}]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "JSON object"),
        (document(), "non-empty list"),
        ({**document(statement(REGEX, PRODUCT)), "@context": "https://openvex.dev/ns"}, "@context"),
        ({k: v for k, v in document(statement(REGEX, PRODUCT)).items() if k != "author"}, "author"),
        ({**document(statement(REGEX, PRODUCT)), "version": "1"}, "version"),
        ({**document(statement(REGEX, PRODUCT)), "version": 0}, "version"),
        ({**document(statement(REGEX, PRODUCT)), "timestamp": "2026-01-01"}, "RFC 3339"),
        ({**document(statement(REGEX, PRODUCT)), "timestamp": 1767225600}, "timestamp"),
        ({**document(statement(REGEX, PRODUCT)), "statements": {}}, "statements"),
        (document({**statement(REGEX, PRODUCT), "vulnerability": REGEX}), "vulnerability"),
        (document({**statement(REGEX, PRODUCT), "vulnerability": {}}), "name"),
        (document({**statement(REGEX, PRODUCT), "products": PRODUCT[0]}), "products"),
        (document(statement(REGEX, [{"@id": 7}])), "@id"),
        (document(statement(REGEX, [{}])), "neither `@id` nor `identifiers`"),
        (document(statement(REGEX, PRODUCT, "exploitable")), "not one of"),
        (document(statement(REGEX, PRODUCT, justification="we checked")), "not one of"),
        (document({**statement(REGEX, PRODUCT), "justification": None}), "null"),
        (document(statement(REGEX, PRODUCT, "affected", action_statement=None)), "null"),
        (document(statement(REGEX, [{**PRODUCT[0], "subcomponent": []}])), "subcomponent"),
        (document(statement(REGEX, [{**PRODUCT[0], "hashes": {"sha256": "ab"}}])), "sha256"),
        (document({**statement(REGEX, PRODUCT), "products": []}), "names no products"),
        (
            document({k: v for k, v in statement(REGEX, PRODUCT).items() if k != "products"}),
            "names no products",
        ),
    ],
)
def test_a_malformed_document_is_an_input_error_naming_the_field(doc: Any, message: str) -> None:
    with pytest.raises(VexError, match=message) as raised:
        read(doc)
    assert "vex.json" in raised.value.message
    assert raised.value.exit_code == 2


def test_not_affected_needs_a_justification_or_an_impact_statement() -> None:
    bare = {"vulnerability": {"name": REGEX}, "products": PRODUCT, "status": "not_affected"}
    with pytest.raises(VexError, match="without a justification or an impact_statement"):
        read(document(bare))
    assert read(document({**bare, "impact_statement": "never called"})).statements[0].suppresses
    assert read(document({**bare, "justification": "component_not_present"})).statements


def test_affected_needs_an_action_statement_as_the_schema_says() -> None:
    bare = {"vulnerability": {"name": REGEX}, "products": PRODUCT, "status": "affected"}
    with pytest.raises(VexError, match="action_statement"):
        read(document(bare))


def test_not_json_not_utf8_too_deep_and_too_large_are_refused() -> None:
    with pytest.raises(VexError, match="not JSON"):
        parse(b"{not json", "vex.json")
    with pytest.raises(VexError, match="UTF-8"):
        parse(json.dumps(document(statement(REGEX, PRODUCT))).encode("utf-16"), "vex.json")
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    with pytest.raises(VexError, match="nested deeper"):
        read(document({**statement(REGEX, PRODUCT), "status_notes": deep}))
    with pytest.raises(VexError, match="larger than"):
        parse(b" " * ((4 << 20) + 1), "vex.json")


def test_an_attestations_subject_stands_in_for_missing_products() -> None:
    bare = {k: v for k, v in statement(REGEX, PRODUCT).items() if k != "products"}
    raw = json.dumps(document(bare)).encode()
    doc = parse(raw, "attestation x", subjects=["sha256:" + "b" * 64], signer="key abc")
    [only] = doc.statements
    assert [c.id for c in only.products] == ["sha256:" + "b" * 64]
    assert only.origin.signer == "key abc"


# -- matching real findings --------------------------------------------------------------------


def test_a_not_affected_statement_about_the_module_suppresses_its_finding(
    tmp_path: Path, real: osv.Database
) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})
    product = {"@id": f"sha256:{sha256(module)}"}
    report = audited(module, real, document(statement(REGEX, [product])))
    found = placed(report)
    assert found.place is Place.SUPPRESSED and found.vex is not None
    assert found.vex.origin.author == "ACME Security"
    assert report.verdict == "pass" and not report.failing
    assert audited(module, real).verdict == "deny"  # the same without it


@pytest.mark.parametrize(
    "product",
    [
        lambda digest: {"@id": f"sha256:{digest}"},
        lambda digest: {"@id": "pkg:x/y", "hashes": {"sha-256": digest}},
        lambda digest: {"identifiers": {"purl": f"pkg:generic/app.wasm?checksum=sha256:{digest}"}},
        lambda digest: {"@id": f"ghcr.io/acme/app@sha256:{digest}"},
    ],
    ids=["digest", "hashes", "purl-checksum", "reference"],
)
def test_a_module_is_named_by_its_digest_hash_or_checksum(
    tmp_path: Path, real: osv.Database, product: Any
) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})
    report = audited(module, real, document(statement(REGEX, [product(sha256(module))])))
    assert placed(report).place is Place.SUPPRESSED


def test_the_vulnerability_is_matched_by_an_alias_either_way(
    tmp_path: Path, real: osv.Database
) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})
    product = [{"@id": f"sha256:{sha256(module)}"}]
    by_cve = document(statement("CVE-2022-24713", product))
    by_alias = document(
        {
            **statement("GHSA-nothing", product),
            "vulnerability": {"name": "GHSA-nothing", "aliases": ["CVE-2022-24713"]},
        }
    )
    assert placed(audited(module, real, by_cve)).place is Place.SUPPRESSED
    assert placed(audited(module, real, by_alias)).place is Place.SUPPRESSED


@pytest.mark.parametrize(
    ("subcomponent", "suppressed"),
    [
        ("pkg:cargo/regex@1.5.4", True),
        ("pkg:cargo/regex", True),  # no version: every version
        ("pkg:cargo/Regex@1.5.4", True),
        ("pkg:cargo/regex@1.5.5", False),
        ("pkg:cargo/serde@1.5.4", False),
        ("pkg:golang/regex@1.5.4", False),
    ],
)
def test_subcomponents_must_name_the_findings_package(
    tmp_path: Path, real: osv.Database, subcomponent: str, suppressed: bool
) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})
    product = {"@id": f"sha256:{sha256(module)}", "subcomponents": [{"@id": subcomponent}]}
    found = placed(audited(module, real, document(statement(REGEX, [product]))))
    assert (found.place is Place.SUPPRESSED) is suppressed
    assert (found.vex is not None) is suppressed


def test_a_statement_about_another_product_says_nothing(tmp_path: Path, real: osv.Database) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})
    others = [
        {"@id": "sha256:" + "0" * 64},
        {"@id": "pkg:oci/app@sha256:" + sha256(module)},  # an artifact's digest, not a module's
        {"@id": "pkg:cargo/regex@1.5.4"},  # the package is no product
        {"@id": "app.wasm"},
    ]
    found = placed(audited(module, real, document(statement(REGEX, others))))
    assert found.place is Place.ACTIVE and found.vex is None


def test_a_go_package_is_named_with_or_without_the_v(tmp_path: Path, real: osv.Database) -> None:
    from tests.sbom_fixtures import go_module

    modinfo = (
        "path\texample.com/app\nmod\texample.com/app\tv1.0.0\th1:x=\n"
        "dep\tgolang.org/x/net\tv0.0.0-20210405180319-a5a99cb37ef4\th1:y=\n"
    )
    module = go_module(tmp_path, modinfo)
    sub = "pkg:golang/golang.org/x/net@0.0.0-20210405180319-a5a99cb37ef4"
    product = {"@id": f"sha256:{sha256(module)}", "subcomponents": [{"@id": sub}]}
    report = audited(module, real, document(statement("GO-2021-0238", [product])))
    assert placed(report, "GO-2021-0238").place is Place.SUPPRESSED
    # the toolchain's other findings are about `stdlib`: not this package
    assert any(p.place is Place.ACTIVE for p in report.placed())


@pytest.mark.parametrize("status", ["affected", "fixed", "under_investigation"])
def test_other_statuses_are_reported_and_suppress_nothing(
    tmp_path: Path, real: osv.Database, status: str
) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})
    product = [{"@id": f"sha256:{sha256(module)}"}]
    report = audited(module, real, document(statement(REGEX, product, status)))
    found = placed(report)
    assert found.place is Place.ACTIVE and found.vex is not None
    assert found.vex.status.value == status
    assert report.verdict == "deny"


def test_the_newest_statement_is_in_force(tmp_path: Path, real: osv.Database) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})
    product = [{"@id": f"sha256:{sha256(module)}"}]
    investigating = statement(REGEX, product, "under_investigation",
                              timestamp="2026-01-01T00:00:00Z")  # fmt: skip
    cleared = statement(REGEX, product, timestamp="2026-02-01T00:00:00Z")
    reopened = statement(REGEX, product, "affected", timestamp="2026-03-01T00:00:00Z")
    assert placed(audited(module, real, document(investigating, cleared))).place is (
        Place.SUPPRESSED
    )
    # order in the file does not matter, time does; across documents too
    assert placed(audited(module, real, document(cleared, investigating))).place is (
        Place.SUPPRESSED
    )
    later = placed(audited(module, real, document(cleared), document(reopened)))
    assert later.place is Place.ACTIVE and later.vex is not None
    assert later.vex.status is Status.AFFECTED
    # at equal times the statement read last
    same = {"timestamp": "2026-02-01T00:00:00Z"}
    last = placed(audited(module, real, document(cleared, {**reopened, **same})))
    assert last.vex is not None and last.vex.status is Status.AFFECTED


def test_an_ignore_still_wins_and_keeps_the_statement(tmp_path: Path, real: osv.Database) -> None:
    from wasmctl.audit.model import Ignore

    module = rust(tmp_path, {"regex": "1.5.4"})
    vex = VexSet([read(document(statement(REGEX, [{"@id": f"sha256:{sha256(module)}"}])))])
    report = audit_targets(
        [str(module)], real, AuditOptions(ignores=(Ignore(REGEX, "ours"),), vex=vex)
    )
    found = placed(report)
    assert found.place is Place.IGNORED and found.vex is not None


# -- --emit-vex ---------------------------------------------------------------------------------


@pytest.fixture
def absent(tmp_path: Path) -> Path:
    # RUSTSEC-2021-0003 lists smallvec::SmallVec::insert_many; the module has only Regex::new
    return rust_module(tmp_path, REGEX_NEW_LEGACY, {"smallvec": "1.6.0", "regex": "1.5.4"})


def test_emitted_vex_fits_the_openvex_schema_and_names_what_was_checked(
    absent: Path, real: osv.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    report = audited(absent, real)
    text = emit(report, author="ACME Security")
    assert text is not None
    doc = json.loads(text)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(doc, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert validate(doc) == []
    assert doc["timestamp"] == "2026-01-01T00:00:00Z" and doc["author"] == "ACME Security"
    proven = {p.finding.advisory.id for p in report.placed() if p.finding.reach.verdict == "absent"}
    assert proven and {s["vulnerability"]["name"] for s in doc["statements"]} == proven
    [first, *_] = doc["statements"]
    assert first["status"] == "not_affected"
    assert first["justification"] == "vulnerable_code_not_present"
    assert "insert_many" in first["impact_statement"]
    [product] = first["products"]
    assert product["hashes"]["sha-256"] == sha256(absent)
    assert product["subcomponents"] == [{"@id": "pkg:cargo/smallvec@1.6.0"}]


def test_emitted_vex_is_the_same_bytes_for_the_same_audit(
    absent: Path, real: osv.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = emit(audited(absent, real), author="ACME Security")
    second = emit(audited(absent, real), author="ACME Security")
    assert first is not None and first == second
    assert json.loads(first)["timestamp"] == "1970-01-01T00:00:00Z"  # as the SBOM writers do
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    assert emit(audited(absent, real), author="ACME Security") != first


def test_emitted_vex_read_back_suppresses_exactly_what_it_proved_absent(
    absent: Path, real: osv.Database
) -> None:
    before = audited(absent, real)
    text = emit(before, author="ACME Security")
    assert text is not None
    after = audit_targets(
        [str(absent)], real, AuditOptions(vex=VexSet([parse(text.encode(), "emitted.json")]))
    )
    proven = {p.finding.advisory.id for p in before.placed() if p.finding.reach.verdict == "absent"}
    assert {p.finding.advisory.id for p in after.placed(Place.SUPPRESSED)} == proven
    assert {p.finding.advisory.id for p in after.placed(Place.ACTIVE)} == {
        p.finding.advisory.id for p in before.placed(Place.ACTIVE)
    } - proven


def test_nothing_proven_absent_emits_nothing(tmp_path: Path, real: osv.Database) -> None:
    module = rust(tmp_path, {"regex": "1.5.4"})  # no name section: nothing is proven
    assert emit(audited(module, real), author="ACME Security") is None
