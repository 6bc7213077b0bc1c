"""The audit report formats, rendered from findings of the real OSV records on modules made
here (a `.dep-v0` at vulnerable versions, a Go modinfo with an old toolchain and x/net):
JSON fits docs/audit.schema.json, SARIF the OASIS schema, CycloneDX the library's strict
1.6 schema with every vulnerability tied to the component of its package; the table keeps
names whole at 80 columns and shows every place a finding can be in."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.corpus import wasm_tools
from tests.sbom_fixtures import HELLO, deflate, go_module
from tests.schemas import doc_schema, sarif_schema
from tests.wasmbytes import custom_section
from wasmctl.audit import database_info, osv
from wasmctl.audit.findings import Finding, Package, packages
from wasmctl.audit.model import (
    AuditReport,
    Ignore,
    Place,
    TargetAudit,
    Threshold,
    place,
)
from wasmctl.audit.reach import Reach, Reachability
from wasmctl.audit.report import AuditFormat, render
from wasmctl.errors import InputError
from wasmctl.sbom import creation_time
from wasmctl.sbom import cyclonedx as sbom_cyclonedx
from wasmctl.sbom.facts import ModuleFacts, Subject, file_facts

TESTDATA = Path(__file__).parents[4] / "shared" / "testdata" / "osv"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
NEWEST = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # four days before NOW

REGEX = "RUSTSEC-2022-0013"  # regex 1.5.4, fixed in 1.5.5, CVSS 3.1 7.5 (high)
SMALLVEC = "RUSTSEC-2021-0003"  # smallvec 1.6.0, fixed in 1.6.1, CVSS 3.1 9.8; CVE-2021-25900
TIME = "RUSTSEC-2020-0071"  # time 0.1.43, CVSS 3.1 6.2 (medium)
ANSI_TERM = "RUSTSEC-2021-0139"  # ansi_term: unmaintained (informational)
CRATES = {"regex": "1.5.4", "smallvec": "1.6.0", "time": "0.1.43", "ansi_term": "0.12.1"}
GO_MODINFO = (
    "go\tgo1.16\n"
    "path\texample.com/app\n"
    "mod\texample.com/app\tv1.0.0\th1:x=\n"
    "dep\tgolang.org/x/net\tv0.0.0-20210226172049-e18ecbb05110\th1:y=\n"
)
X_NET = "golang.org/x/net@v0.0.0-20210226172049-e18ecbb05110"


@pytest.fixture(scope="module")
def real() -> osv.Database:
    return osv.load([TESTDATA])


def rust(directory: Path, crates: dict[str, str], name: str = "app.wasm") -> Path:
    """hello.wasm with a `.dep-v0` naming `crates` (from crates.io) under a local root."""
    info = {
        "format": 1,
        "packages": [
            {"name": "app", "version": "0.1.0", "source": "local", "root": True,
             "dependencies": list(range(1, len(crates) + 1))},
            *({"name": n, "version": v, "source": "crates.io"} for n, v in crates.items()),
        ],
    }  # fmt: skip
    path = directory / name
    path.write_bytes(HELLO.read_bytes() + custom_section(".dep-v0", deflate(info)))
    return path


def findings_of(
    facts: ModuleFacts, database: osv.Database, reach: dict[str, Reach] | None = None
) -> list[Finding]:
    """The advisories that apply to the packages of `facts`, with the reachability given
    per advisory id (built here, so these tests do not depend on the name-section reader)."""
    reach = reach or {}
    found = []
    for package in packages(facts):
        for advisory, affected in database.matching(
            package.ecosystem, package.name, package.version
        ):
            found.append(
                Finding(advisory, affected, package, reach=reach.get(advisory.id, NOT_LOOKED))
            )
    return found


NOT_LOOKED = Reach(Reachability.UNKNOWN, (), ())
REGEX_ABSENT = Reach(Reachability.ABSENT, ("regex::Regex::new", "regex::RegexBuilder::build"), ())
TIME_PRESENT = Reach(Reachability.PRESENT, ("time::at", "time::now"), ("time::now",))
IGNORE_SMALLVEC = Ignore(
    "CVE-2021-25900", "insert_many is never called", date(2027, 1, 31), "audit.yaml: ignore[0]"
)
EXPIRED = Ignore("RUSTSEC-2020-0071", "waiting for a release", date(2026, 6, 1), "--ignore")
UNUSED = Ignore("RUSTSEC-1999-0001", "an old one", None, "--ignore")


def target_audit(
    name: str,
    subject: Subject,
    findings: Iterable[Finding],
    ignores: tuple[Ignore, ...] = (),
    *,
    ignore_unreachable: bool = False,
) -> TargetAudit:
    return TargetAudit(
        target=name,
        findings=place(findings, ignores, today=TODAY, ignore_unreachable=ignore_unreachable),
        packages=tuple(p for m in subject.modules for p in packages(m)),
        subject=subject,
    )


def make_report(
    database: osv.Database,
    targets: Iterable[TargetAudit],
    ignores: tuple[Ignore, ...] = (),
    fail_on: Threshold = Threshold.ANY,
) -> AuditReport:
    return AuditReport(
        targets=tuple(targets),
        database=dataclasses.replace(
            database_info(database), newest=NEWEST, sources=(str(TESTDATA),)
        ),
        fail_on=fail_on,
        ignores=ignores,
        expired=tuple(i for i in ignores if i.expired(TODAY)),
        generated=NOW,
    )


@pytest.fixture(scope="module")
def rust_subject(tmp_path_factory: pytest.TempPathFactory) -> Subject:
    return Subject((file_facts(rust(tmp_path_factory.mktemp("rust"), CRATES)),))


@pytest.fixture(scope="module")
def rust_report(real: osv.Database, rust_subject: Subject) -> AuditReport:
    """Every place at once: regex hidden as unreachable, smallvec ignored by an alias,
    ansi_term informational, time active (its ignore expired), at --fail-on high."""
    ignores = (IGNORE_SMALLVEC, EXPIRED, UNUSED)
    found = findings_of(rust_subject.primary, real, {REGEX: REGEX_ABSENT, TIME: TIME_PRESENT})
    target = target_audit("dist/app.wasm", rust_subject, found, ignores, ignore_unreachable=True)
    return make_report(real, [target], ignores, Threshold.MEDIUM)


@pytest.fixture(scope="module")
def go_subject(tmp_path_factory: pytest.TempPathFactory) -> Subject:
    return Subject((file_facts(go_module(tmp_path_factory.mktemp("go"), GO_MODINFO)),))


@pytest.fixture(scope="module")
def go_report(real: osv.Database, go_subject: Subject) -> AuditReport:
    target = target_audit("edge-go.wasm", go_subject, findings_of(go_subject.primary, real))
    return make_report(real, [target])


def places(report: AuditReport) -> dict[str, Place]:
    return {p.finding.advisory.id: p.place for p in report.placed()}


def test_the_fixtures_put_a_finding_in_every_place(rust_report: AuditReport) -> None:
    found = places(rust_report)
    assert found[REGEX] is Place.UNREACHABLE
    assert found[SMALLVEC] is Place.IGNORED
    assert found[ANSI_TERM] is Place.INFORMATIONAL
    assert found[TIME] is Place.ACTIVE
    assert rust_report.expired == (EXPIRED,)


# -- every format -----------------------------------------------------------------------


def test_the_formats_are_table_json_sarif_and_cyclonedx() -> None:
    assert [f.value for f in AuditFormat] == ["table", "json", "sarif", "cyclonedx"]


def test_every_format_renders(rust_report: AuditReport) -> None:
    for fmt in AuditFormat:
        assert render(rust_report, fmt, now=NOW).strip(), fmt


def test_every_format_is_deterministic_and_independent_of_finding_order(
    rust_report: AuditReport, go_report: AuditReport
) -> None:
    for report in (rust_report, go_report):
        (target,) = report.targets
        shuffled = dataclasses.replace(
            report,
            targets=(dataclasses.replace(target, findings=tuple(reversed(target.findings))),),
        )
        assert len(target.findings) > 1
        for fmt in AuditFormat:
            once = render(report, fmt, now=NOW)
            assert render(report, fmt, now=NOW) == once, fmt
            assert render(shuffled, fmt, now=NOW) == once, fmt


# -- JSON ---------------------------------------------------------------------------------

REQUIRED = {"id", "aliases", "ecosystem", "package", "version", "fixed", "severity",
            "informational", "symbols", "summary", "where", "target", "status"}  # fmt: skip


def json_report(report: AuditReport) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render(report, AuditFormat.JSON, now=NOW))
    validator = jsonschema.Draft202012Validator(
        doc_schema("audit.schema.json"), format_checker=jsonschema.FormatChecker()
    )
    validator.validate(data)
    return data


def findings(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for t in data["targets"] for f in t["findings"]]


def test_the_audit_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(doc_schema("audit.schema.json"))


def test_json_fits_the_schema_and_carries_every_finding_field(
    rust_report: AuditReport, go_report: AuditReport
) -> None:
    for report in (rust_report, go_report):
        data = json_report(report)
        assert data["schema"] == "wasmctl.audit/v1"
        assert findings(data)
        for finding in findings(data):
            assert set(finding) >= REQUIRED, REQUIRED - set(finding)


def test_json_findings_are_exactly_the_reports(rust_report: AuditReport) -> None:
    data = json_report(rust_report)
    written = {(f["id"], f["package"], f["version"], f["where"], f["status"])
               for f in findings(data)}  # fmt: skip
    expected = {
        (p.finding.advisory.id, p.finding.package.name, p.finding.package.version,
         p.finding.package.where, p.place.value)
        for p in rust_report.placed()
    }  # fmt: skip
    assert written == expected
    assert len(findings(data)) == len(expected)
    for target in data["targets"]:
        assert {f["target"] for f in target["findings"]} == {target["target"]}


def test_json_states_severity_reach_and_ignores(rust_report: AuditReport) -> None:
    data = json_report(rust_report)
    by_id = {f["id"]: f for f in findings(data)}
    regex = by_id[REGEX]
    assert regex["fixed"] == ["1.5.5"]
    assert regex["aliases"] == ["CVE-2022-24713", "GHSA-m5pq-gvj9-9vr8"]
    assert regex["severity"] == {
        "rating": "high",
        "score": 7.5,
        "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
    }
    assert regex["symbols"] == {
        "verdict": "absent",
        "listed": ["regex::Regex::new", "regex::RegexBuilder::build"],
        "found": [],
    }
    assert regex["status"] == "unreachable" and regex["ignore"] is None
    assert by_id[TIME]["symbols"]["found"] == ["time::now"]
    assert by_id[ANSI_TERM]["informational"] == "unmaintained"
    assert by_id[SMALLVEC]["ignore"] == {
        "id": "CVE-2021-25900",
        "reason": "insert_many is never called",
        "expires": "2027-01-31",
        "source": "audit.yaml: ignore[0]",
    }
    assert data["ignores"] == [by_id[SMALLVEC]["ignore"]]
    assert [i["id"] for i in data["expiredIgnores"]] == ["RUSTSEC-2020-0071"]


def test_json_top_level_states_database_verdict_and_counts(rust_report: AuditReport) -> None:
    data = json_report(rust_report)
    assert data["verdict"] == "deny" and data["failOn"] == "medium"
    assert data["database"]["digest"] == f"sha256:{rust_report.database.digest}"
    assert data["database"]["records"] == rust_report.database.records
    assert data["database"]["newest"] == "2026-11-30T12:00:00Z"
    assert data["database"]["ageSeconds"] == 4 * 86_400
    assert data["summary"] == {
        "targets": 1,
        "errors": 0,
        "packages": len(CRATES),
        "findings": len(rust_report.placed()),
        "failing": 1,  # time, medium
        "active": len(rust_report.placed(Place.ACTIVE)),
        "informational": 1,
        "ignored": 1,
        "suppressed": 0,
        "unreachable": 1,
        "unmatched": 0,
    }
    failing = [f["id"] for f in findings(data) if f["failing"]]
    assert failing == [TIME]


def test_json_lists_unreadable_targets_and_unmatched_versions(
    real: osv.Database, tmp_path: Path
) -> None:
    subject = Subject((file_facts(rust(tmp_path, {"regex": "one-point-five"})),))
    (package,) = (p for p in packages(subject.primary) if p.name == "regex")
    readable = dataclasses.replace(
        target_audit("app.wasm", subject, []), unmatched=((package, "not SemVer"),)
    )
    broken = TargetAudit("broken.wasm", error="not a WebAssembly module")
    data = json_report(make_report(real, [readable, broken]))
    assert data["verdict"] == "error"
    assert [t["error"] for t in data["targets"]] == [None, "not a WebAssembly module"]
    assert data["unmatched"] == [
        {"target": "app.wasm", "ecosystem": "crates.io", "package": "regex",
         "version": "one-point-five", "where": package.where, "reason": "not SemVer"}
    ]  # fmt: skip
    assert data["summary"]["errors"] == 1 and data["summary"]["unmatched"] == 1


# -- SARIF --------------------------------------------------------------------------------


def sarif(report: AuditReport) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(render(report, AuditFormat.SARIF, now=NOW))
    jsonschema.Draft4Validator(sarif_schema()).validate(log)
    run: dict[str, Any] = log["runs"][0]
    assert len(log["runs"]) == 1
    return run


def test_sarif_has_a_rule_per_advisory(rust_report: AuditReport, go_report: AuditReport) -> None:
    for report in (rust_report, go_report):
        run = sarif(report)
        rules = run["tool"]["driver"]["rules"]
        ids = [r["id"] for r in rules]
        assert sorted(set(ids)) == ids
        assert set(ids) == {p.finding.advisory.id for p in report.placed()}
        for rule in rules:
            assert rule["helpUri"] == f"https://osv.dev/vulnerability/{rule['id']}"
            assert rule["shortDescription"]["text"]
        for result in run["results"]:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_security_severity_is_the_cvss_score_where_known(
    rust_report: AuditReport, go_report: AuditReport
) -> None:
    rules = {r["id"]: r for r in sarif(rust_report)["tool"]["driver"]["rules"]}
    assert rules[REGEX]["properties"]["security-severity"] == "7.5"
    assert rules[SMALLVEC]["properties"]["security-severity"] == "9.8"
    assert "security-severity" not in rules[ANSI_TERM]["properties"]
    for rule in sarif(go_report)["tool"]["driver"]["rules"]:  # Go's records rate nothing
        assert "security-severity" not in rule["properties"]
        assert rule["defaultConfiguration"]["level"] == "warning"


def test_sarif_levels_follow_severity(rust_report: AuditReport) -> None:
    levels = {r["ruleId"]: r["level"] for r in sarif(rust_report)["results"]}
    assert levels == {REGEX: "error", SMALLVEC: "error", TIME: "warning", ANSI_TERM: "note"}


def test_sarif_suppresses_ignored_and_hidden_findings(rust_report: AuditReport) -> None:
    results = {r["ruleId"]: r for r in sarif(rust_report)["results"]}
    (ignored,) = results[SMALLVEC]["suppressions"]
    assert ignored["kind"] == "external"
    assert "insert_many is never called" in ignored["justification"]
    assert "audit.yaml: ignore[0]" in ignored["justification"]
    (hidden,) = results[REGEX]["suppressions"]
    assert hidden["kind"] == "external"
    assert "--ignore-unreachable" in hidden["justification"]
    assert "regex::Regex::new" in hidden["justification"]
    assert "suppressions" not in results[TIME]
    assert "suppressions" not in results[ANSI_TERM]


def test_sarif_locates_the_artifact_and_the_module_in_it(rust_report: AuditReport) -> None:
    for result in sarif(rust_report)["results"]:
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "dist/app.wasm", "uriBaseId": "%SRCROOT%"}
        assert "region" not in physical  # binaries have no lines
        (logical,) = location["logicalLocations"]
        assert logical["fullyQualifiedName"] == rust_report.targets[0].subject.primary.name  # type: ignore[union-attr]


def test_sarif_fingerprints_are_stable_distinct_and_survive_an_upgrade(
    real: osv.Database, tmp_path: Path, rust_report: AuditReport
) -> None:
    prints = [r["partialFingerprints"]["wasmctlVulnerability/v1"]
              for r in sarif(rust_report)["results"]]  # fmt: skip
    assert len(set(prints)) == len(prints)
    assert all(re.fullmatch("[0-9a-f]{64}", p) for p in prints)
    # regex 1.5.4 -> 1.5.4 at another patch still vulnerable: the same alert
    subject = Subject((file_facts(rust(tmp_path, {"regex": "1.5.3"})),))
    report = make_report(real, [target_audit("dist/app.wasm", subject,
                                             findings_of(subject.primary, real))])  # fmt: skip
    older = {r["ruleId"]: r["partialFingerprints"]["wasmctlVulnerability/v1"]
             for r in sarif(report)["results"]}  # fmt: skip
    newer = {r["ruleId"]: r["partialFingerprints"]["wasmctlVulnerability/v1"]
             for r in sarif(rust_report)["results"]}  # fmt: skip
    assert older[REGEX] == newer[REGEX]


def test_sarif_reports_an_unreadable_target_as_a_failed_execution(
    real: osv.Database, rust_report: AuditReport
) -> None:
    broken = TargetAudit("broken.wasm", error="not a WebAssembly module")
    report = dataclasses.replace(rust_report, targets=(*rust_report.targets, broken))
    (invocation,) = sarif(report)["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and "not a WebAssembly module" in note["message"]["text"]
    assert sarif(rust_report)["invocations"][0]["executionSuccessful"] is True


# -- CycloneDX ----------------------------------------------------------------------------


def cyclonedx(report: AuditReport) -> dict[str, Any]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = render(report, AuditFormat.CYCLONEDX, now=NOW)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document: dict[str, Any] = json.loads(text)
    return document


def components(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every component of the BOM by bom-ref, the described one and nested ones too."""
    out = {}
    stack = [document["metadata"]["component"], *document.get("components", [])]
    while stack:
        component = stack.pop()
        out[component["bom-ref"]] = component
        stack += component.get("components", [])
    return out


def purl_names(purl: str) -> str:
    """`pkg:golang/golang.org/x/net@v0.0.0-...` -> `golang.org/x/net`."""
    from packageurl import PackageURL

    parsed = PackageURL.from_string(purl)
    return f"{parsed.namespace}/{parsed.name}" if parsed.namespace else parsed.name


def test_cyclonedx_ties_each_vulnerability_to_its_packages_component(
    rust_report: AuditReport, go_report: AuditReport
) -> None:
    for report in (rust_report, go_report):
        document = cyclonedx(report)
        by_ref = components(document)
        vulnerabilities = document["vulnerabilities"]
        assert len(vulnerabilities) == len(report.placed())
        placed = {(p.finding.advisory.id, p.finding.package.name): p for p in report.placed()}
        tied = set()
        for vulnerability in vulnerabilities:
            (affects,) = vulnerability["affects"]
            component = by_ref[affects["ref"]]
            if component is document["metadata"]["component"]:
                package = "stdlib"  # the toolchain is no component: the module built with it
            else:
                package = purl_names(component["purl"])
            version = placed[vulnerability["id"], package].finding.package.version
            if package != "stdlib":
                assert component["version"] == version
            assert affects["versions"] == [{"version": version, "status": "affected"}]
            tied.add((vulnerability["id"], package))
        assert tied == set(placed)
    assert any(name == "stdlib" for _, name in tied)


def test_cyclonedx_vulnerabilities_name_their_source_aliases_and_fix(
    rust_report: AuditReport, go_report: AuditReport
) -> None:
    rust = {v["id"]: v for v in cyclonedx(rust_report)["vulnerabilities"]}
    regex = rust[REGEX]
    assert regex["source"] == {
        "name": "RustSec",
        "url": "https://rustsec.org/advisories/RUSTSEC-2022-0013.html",
    }
    assert [r["id"] for r in regex["references"]] == ["CVE-2022-24713", "GHSA-m5pq-gvj9-9vr8"]
    (rating,) = regex["ratings"]
    assert (rating["method"], rating["score"], rating["severity"]) == ("CVSSv31", 7.5, "high")
    assert "1.5.5" in regex["recommendation"]
    assert regex["description"].startswith("Regexes with large repetitions")
    assert rust[ANSI_TERM]["ratings"] == [{"severity": "info", "source": rust[ANSI_TERM]["source"]}]
    for vulnerability in cyclonedx(go_report)["vulnerabilities"]:
        assert vulnerability["source"]["url"] == (f"https://pkg.go.dev/vuln/{vulnerability['id']}")
        assert "ratings" not in vulnerability  # Go's records rate nothing: nothing claimed


def test_cyclonedx_marks_ignored_and_hidden_without_claiming_not_affected(
    rust_report: AuditReport,
) -> None:
    vulnerabilities = {v["id"]: v for v in cyclonedx(rust_report)["vulnerabilities"]}
    ignored = vulnerabilities[SMALLVEC]
    assert "state" not in ignored["analysis"]
    assert "insert_many is never called" in ignored["analysis"]["detail"]
    properties = {(p["name"], p["value"]) for p in ignored["properties"]}
    assert ("wasmctl:audit:status", "ignored") in properties
    assert ("wasmctl:audit:ignore:reason", "insert_many is never called") in properties
    assert ("wasmctl:audit:ignore:expires", "2027-01-31") in properties
    hidden = vulnerabilities[REGEX]
    assert "state" not in hidden["analysis"]
    assert "--ignore-unreachable" in hidden["analysis"]["detail"]
    assert ("wasmctl:audit:reachability", "absent") in {
        (p["name"], p["value"]) for p in hidden["properties"]
    }
    assert "analysis" not in vulnerabilities[TIME]


def test_cyclonedx_is_the_sbom_with_vulnerabilities_added(
    rust_report: AuditReport, rust_subject: Subject
) -> None:
    audited = render(rust_report, AuditFormat.CYCLONEDX, now=NOW)
    (target,) = rust_report.targets
    # what `wasmctl sbom --with-vulnerabilities` renders: the same call, the same bytes
    assert audited == sbom_cyclonedx.render(
        rust_subject,
        creation_time(),
        vulnerabilities=target.findings,
        database=rust_report.database,
    )
    document = json.loads(audited)
    plain = json.loads(sbom_cyclonedx.render(rust_subject, creation_time()))
    del document["vulnerabilities"]
    document["metadata"].pop("properties")  # only the database's
    plain["metadata"].pop("properties", None)
    assert document == plain
    stated = {p["name"]: p["value"] for p in json.loads(audited)["metadata"]["properties"]}
    assert stated["wasmctl:audit:database:digest"] == f"sha256:{rust_report.database.digest}"


def test_cyclonedx_refuses_several_targets(rust_report: AuditReport) -> None:
    two = dataclasses.replace(rust_report, targets=rust_report.targets * 2)
    with pytest.raises(InputError, match="cyclonedx describes one target"):
        render(two, AuditFormat.CYCLONEDX, now=NOW)


def test_cyclonedx_ties_a_nested_modules_crate_to_the_nested_component(
    real: osv.Database, tmp_path: Path, corpus_by_name: dict[str, Any]
) -> None:
    core = rust(tmp_path, {"regex": "1.5.4"})
    component = tmp_path / "app.component.wasm"
    adapter = corpus_by_name["jco_adapter_command"].path
    wasm_tools("component", "new", core, "-o", component, "--adapt",
               f"wasi_snapshot_preview1={adapter}")  # fmt: skip
    subject = Subject((file_facts(component),))
    found = [f for f in findings_of(subject.primary, real) if f.advisory.id == REGEX]
    assert [f.package.where for f in found] == [f"{subject.primary.name}/0"]
    document = cyclonedx(make_report(real, [target_audit("c.wasm", subject, found)]))
    (vulnerability,) = document["vulnerabilities"]
    (affects,) = vulnerability["affects"]
    assert purl_names(components(document)[affects["ref"]]["purl"]) == "regex"
    (nested,) = (
        c
        for c in document["metadata"]["component"]["components"]
        if {"name": "wasmctl:wasm:position", "value": "/0"} in c.get("properties", [])
    )
    assert affects["ref"].startswith(nested["bom-ref"] + ":cargo:")


# -- table --------------------------------------------------------------------------------


def test_the_table_states_the_database(rust_report: AuditReport) -> None:
    first = render(rust_report, AuditFormat.TABLE, now=NOW).splitlines()[0]
    assert f"sha256:{rust_report.database.digest[:12]}" in first
    assert f"{rust_report.database.records:,} records" in first
    assert "4 days old" in first


def test_the_table_shows_every_place(rust_report: AuditReport) -> None:
    text = render(rust_report, AuditFormat.TABLE, now=NOW, width=100)
    vulnerabilities = text.index("vulnerabilities")
    informational = text.index("informational (")
    ignored = text.index("ignored\n")
    assert vulnerabilities < text.index(TIME) < informational < text.index(ANSI_TERM) < ignored
    assert ignored < text.index(SMALLVEC)
    assert "insert_many is never called" in text and "audit.yaml: ignore[0]" in text
    assert "until 2027-01-31" in text
    assert "1 finding hidden by --ignore-unreachable" in text
    assert f"{REGEX} (regex@1.5.4" in text
    assert "expired ignores" in text and "RUSTSEC-2020-0071 expired 2026-06-01" in text
    assert "RUSTSEC-1999-0001" in text.split("ignores that matched nothing:")[1]
    assert "medium 6.2" in text and "critical 9.8" in text and "unmaintained" in text
    assert "present" in text  # time's reachability
    assert text.rstrip().endswith("DENY")


def test_the_table_never_splits_a_name_at_80_columns(
    rust_report: AuditReport, go_report: AuditReport
) -> None:
    for report in (rust_report, go_report):
        text = render(report, AuditFormat.TABLE, now=NOW, width=80)
        lines = text.splitlines()
        names = {p.finding.advisory.id for p in report.placed()}
        names |= {f"{p.finding.package.name}@{p.finding.package.version}"
                  for p in report.placed()}  # fmt: skip
        for name in names:
            assert name in text, name
        for line in lines:
            assert len(line) <= 80 or " " not in line.strip(), line


def test_a_name_wider_than_the_table_stays_whole(go_report: AuditReport) -> None:
    text = render(go_report, AuditFormat.TABLE, now=NOW, width=40)
    assert X_NET in text
    assert "GO-2021-0238" in text


def test_the_table_shows_unreadable_targets_and_unmatched_versions(
    real: osv.Database, tmp_path: Path
) -> None:
    subject = Subject((file_facts(rust(tmp_path, {"regex": "one-point-five"})),))
    (package,) = (p for p in packages(subject.primary) if p.name == "regex")
    readable = dataclasses.replace(
        target_audit("app.wasm", subject, []), unmatched=((package, "not SemVer"),)
    )
    broken = TargetAudit("broken.wasm", error="not a WebAssembly module")
    text = render(make_report(real, [readable, broken]), AuditFormat.TABLE, now=NOW)
    assert "broken.wasm: ✗ not a WebAssembly module" in text
    assert "regex@one-point-five in" in text and "not SemVer" in text
    assert text.rstrip().endswith("ERROR")


def test_nothing_found_is_one_line_saying_what_was_audited(
    real: osv.Database, tmp_path: Path
) -> None:
    subject = Subject((file_facts(rust(tmp_path, {"regex": "1.5.5", "itoa": "1.0.14"})),))
    assert not findings_of(subject.primary, real)
    text = render(make_report(real, [target_audit("app.wasm", subject, [])]),
                  AuditFormat.TABLE, now=NOW)  # fmt: skip
    database, statement = text.splitlines()
    assert database.startswith("OSV database sha256:")
    assert statement == "No known vulnerabilities: 1 target, 2 packages audited. PASS"


def test_the_table_is_coloured_only_when_asked(rust_report: AuditReport) -> None:
    assert "\x1b[" not in render(rust_report, AuditFormat.TABLE, now=NOW)
    assert "\x1b[" in render(rust_report, AuditFormat.TABLE, now=NOW, color=True)


def test_the_table_escapes_control_characters_from_the_module(
    real: osv.Database, rust_subject: Subject
) -> None:
    advisory, affected = next(iter(real.candidates("crates.io", "regex")))
    hostile = Package("crates.io", "regex\x1b[2J\u202e", "1.5.4", "app\x07")
    report = make_report(
        real, [target_audit("app.wasm", rust_subject, [Finding(advisory, affected, hostile)])]
    )
    text = render(report, AuditFormat.TABLE, now=NOW)
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "regex\\x1b[2J\\u202e@1.5.4" in text
