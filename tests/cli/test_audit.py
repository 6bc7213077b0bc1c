"""`wasmctl audit` at the command line: exit codes, thresholds, ignores, the database's
presence and age, targets of every kind. Matched against the real OSV records."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from tests.registry import RegistryServer, unique_repo
from tests.sbom_fixtures import go_module
from tests.schemas import doc_schema
from tests.unit.audit.test_findings import rust
from wasmctl.cli import run

OSV = Path(__file__).parents[3] / "shared" / "testdata" / "osv"
DB = ["--db", str(OSV)]
GO_OLD = (
    "path\texample.com/edge\n"
    "mod\texample.com/edge\tv1.0.0\th1:x=\n"
    "dep\tgolang.org/x/net\tv0.0.0-20210405180319-a5a99cb37ef4\th1:y=\n"
)


@pytest.fixture
def regex_154(tmp_path: Path) -> Path:
    return rust(tmp_path, {"regex": "1.5.4"})


def test_a_vulnerable_crate_exits_1_and_names_the_advisory_and_the_fix(
    regex_154: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audit", *DB, str(regex_154)]) == 1
    out = capsys.readouterr().out
    assert "RUSTSEC-2022-0013" in out and "1.5.5" in out


def test_the_fixed_version_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", *DB, str(rust(tmp_path, {"regex": "1.5.5"}))]) == 0
    assert "RUSTSEC-2022-0013" not in capsys.readouterr().out


def test_json_validates_and_carries_every_required_field(
    regex_154: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audit", *DB, "--format", "json", str(regex_154)]) == 1
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, doc_schema("audit.schema.json"))
    found = [f for t in report["targets"] for f in t["findings"]]
    regex = next(f for f in found if f["id"] == "RUSTSEC-2022-0013")
    assert regex["package"] == "regex" and regex["version"] == "1.5.4"
    assert regex["fixed"] == ["1.5.5"] and regex["ecosystem"] == "crates.io"
    assert "CVE-2022-24713" in regex["aliases"]
    assert regex["severity"]["rating"] == "high" and regex["severity"]["score"] == 7.5
    assert regex["informational"] is None or regex["informational"] is False
    assert regex["symbols"]["verdict"] in ("present", "absent", "unknown")
    assert report["database"]["digest"]


@pytest.mark.parametrize(("threshold", "code"), [("high", 1), ("critical", 0), ("any", 1)])
def test_fail_on_compares_the_cvss_rating(regex_154: Path, threshold: str, code: int) -> None:
    # RUSTSEC-2022-0013 is CVSS 3.1 7.5: high
    assert run(["audit", *DB, "--fail-on", threshold, str(regex_154)]) == code


@pytest.mark.parametrize("ident", ["RUSTSEC-2022-0013", "CVE-2022-24713"])
def test_an_ignore_by_id_or_alias_passes_and_is_listed(
    regex_154: Path, ident: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audit", *DB, "--format", "json", "--ignore", ident, str(regex_154)]) == 0
    report = json.loads(capsys.readouterr().out)
    [ignored] = [f for t in report["targets"] for f in t["findings"] if f["status"] == "ignored"]
    assert ignored["id"] == "RUSTSEC-2022-0013"
    assert [i["id"] for i in report["ignores"]] == [ident]


def test_an_expired_ignore_ignores_nothing_and_says_so(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    ignores = tmp_path / "ignore.yaml"
    ignores.write_text(
        f"ignore:\n  - id: RUSTSEC-2022-0013\n    reason: no untrusted regexes\n"
        f"    expires: {yesterday}\n"
    )
    assert run(["audit", *DB, "--ignore-file", str(ignores), str(regex_154)]) == 1
    err = capsys.readouterr().err
    assert "RUSTSEC-2022-0013" in err and "expired" in err


def test_an_ignore_until_a_later_date_applies_with_its_reason(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    ignores = tmp_path / "ignore.yaml"
    ignores.write_text(
        f"ignore:\n  - id: RUSTSEC-2022-0013\n    reason: no untrusted regexes\n"
        f"    expires: {later}\n"
    )
    assert run(["audit", *DB, "--ignore-file", str(ignores), str(regex_154)]) == 0
    assert "no untrusted regexes" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text",
    [
        "ignore:\n  - id: RUSTSEC-2022-0013\n",  # no reason
        "ignore:\n  - RUSTSEC-2022-0013\n",  # a bare id
        "ignore:\n  - id: X\n    reason: r\n    expires: someday\n",
        "ignores: []\n",
        "ignore:\n  - id: X\n    reason: r\n    until: 2030-01-01\n",
    ],
)
def test_a_malformed_ignore_file_exits_2(
    regex_154: Path, tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ignores = tmp_path / "ignore.yaml"
    ignores.write_text(text)
    assert run(["audit", *DB, "--ignore-file", str(ignores), str(regex_154)]) == 2
    assert "ignore.yaml" in capsys.readouterr().err


def test_informational_advisories_are_listed_apart_and_do_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RUSTSEC-2021-0139: ansi_term is unmaintained, every version
    path = rust(tmp_path, {"ansi_term": "0.12.1"})
    assert run(["audit", *DB, "--format", "json", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    [found] = [f for t in report["targets"] for f in t["findings"]]
    assert found["id"] == "RUSTSEC-2021-0139"
    assert found["status"] == "informational" and found["informational"] == "unmaintained"


def test_a_go_module_with_an_old_x_net_and_toolchain_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = go_module(tmp_path, GO_OLD)  # producers name go1.23.4
    assert run(["audit", *DB, "--format", "json", str(path)]) == 1
    found = {
        (f["package"], f["id"])
        for t in json.loads(capsys.readouterr().out)["targets"]
        for f in t["findings"]
    }
    assert ("golang.org/x/net", "GO-2021-0238") in found
    assert any(package == "stdlib" for package, _ in found)


def test_a_missing_database_exits_2_with_the_command_that_fixes_it(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["audit", "--db", str(empty), str(regex_154)]) == 2
    assert "wasmctl audit db update" in capsys.readouterr().err


def test_a_database_older_than_max_db_age_exits_3(
    regex_154: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the test records' newest `modified` is days old: one minute is always exceeded
    assert run(["audit", *DB, "--max-db-age", "1m", str(regex_154)]) == 3
    assert "older" in capsys.readouterr().err
    assert run(["audit", *DB, "--max-db-age", "5200w", str(regex_154)]) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--fail-on", "severe"],
        ["--format", "xml"],
        ["--max-db-age", "a week"],
        ["--ignore", "two words"],
    ],
)
def test_bad_options_exit_2(regex_154: Path, argv: list[str]) -> None:
    assert run(["audit", *DB, *argv, str(regex_154)]) == 2


def test_a_malformed_module_exits_2_and_the_others_are_still_audited(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\x00asm\x01\x00\x00\x00\x02\x09\x01")
    assert run(["audit", *DB, str(bad)]) == 2
    # a finding is a verdict: it outranks an unreadable neighbour, as scan's do
    capsys.readouterr()
    assert run(["audit", *DB, "--format", "json", str(bad), str(regex_154)]) == 1
    report = json.loads(capsys.readouterr().out)
    first, second = report["targets"]
    assert "byte offset" in first["error"] and not first["findings"]
    assert any(f["id"] == "RUSTSEC-2022-0013" for f in second["findings"])


def test_a_directory_is_audited_recursively(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = tmp_path / "dist" / "a"
    nested.mkdir(parents=True)
    rust(nested, {"regex": "1.5.4"})
    assert run(["audit", *DB, "--format", "json", str(tmp_path / "dist")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [t["target"].endswith("app.wasm") for t in report["targets"]] == [True]


def test_a_layout_is_audited(
    regex_154: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(regex_154), "-t", layout]) == 0
    capsys.readouterr()
    assert run(["audit", *DB, "--format", "json", layout]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["targets"][0]["target"] == layout
    assert any(f["id"] == "RUSTSEC-2022-0013" for f in report["targets"][0]["findings"])


def test_cyclonedx_describes_one_target(
    regex_154: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audit", *DB, "--format", "cyclonedx", str(regex_154)]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["specVersion"] == "1.6"
    assert any(v["id"] == "RUSTSEC-2022-0013" for v in document["vulnerabilities"])
    assert run(["audit", *DB, "--format", "cyclonedx", str(regex_154), str(regex_154)]) == 2


def test_sbom_with_vulnerabilities_is_the_audit_document(
    regex_154: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audit", *DB, "--format", "cyclonedx", str(regex_154)]) == 1
    audited = capsys.readouterr().out
    assert run(["sbom", "--with-vulnerabilities", *DB, str(regex_154)]) == 0
    assert capsys.readouterr().out == audited


def test_db_without_a_subcommand_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "db", "--help"]) == 0
    assert "update" in capsys.readouterr().out


# -- `audit db update` at the command line, against a mirror on loopback ---------------------


def test_db_update_fetches_then_reports_not_modified_then_audits_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.audit.test_db import CRATES, Mirror

    target = tmp_path / "osv"
    with Mirror() as mirror:
        mirror.serve("/crates.io/all.zip", CRATES)
        argv = ["audit", "db", "update", "--ecosystem", "crates.io", "--source", mirror.url,
                "--db", str(target)]  # fmt: skip
        assert run(argv) == 0
        assert "downloaded" in capsys.readouterr().err
        assert run(argv) == 0
        assert "not modified" in capsys.readouterr().err
    module = rust(tmp_path, {"serde": "1.0.215"})
    assert run(["audit", "--db", str(target), str(module)]) == 0
    assert "40 records" in capsys.readouterr().out.replace(",", "")


def test_an_interrupted_db_update_exits_3_and_keeps_the_old_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.audit.test_db import CRATES, CRATES_NEWER, Mirror

    target = tmp_path / "osv"
    with Mirror() as mirror:
        argv = ["audit", "db", "update", "--ecosystem", "crates.io", "--source", mirror.url,
                "--db", str(target)]  # fmt: skip
        mirror.serve("/crates.io/all.zip", CRATES)
        assert run(argv) == 0
        before = (target / "crates.io" / "all.zip").read_bytes()
        mirror.serve("/crates.io/all.zip", CRATES_NEWER, cut_after=1000)
        assert run(argv) == 3
    assert "Traceback" not in capsys.readouterr().err
    assert (target / "crates.io" / "all.zip").read_bytes() == before
    left = sorted(p.name for p in (target / "crates.io").iterdir() if not p.name.startswith("."))
    assert left == ["all.zip", "metadata.json"]


# -- registry artifacts (Debian's registry on loopback) ---------------------------------------


def test_a_registry_artifact_is_audited(
    regex_154: Path, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    image = f"{registry.host}/{unique_repo('audit')}/regex:v1"
    assert run(["build", str(regex_154), "-t", image, "--plain-http", registry.host]) == 0
    capsys.readouterr()
    assert run(["audit", *DB, "--format", "json", "--plain-http", registry.host, image]) == 1
    [target] = json.loads(capsys.readouterr().out)["targets"]
    assert target["target"] == image
    assert [f["id"] for f in target["findings"]] == ["RUSTSEC-2022-0013"]


def test_an_unreachable_registry_exits_3(
    regex_154: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{unused.getsockname()[1]}"
    assert run(["audit", *DB, "--plain-http", host, f"{host}/app/regex:v1"]) == 3
    assert "Traceback" not in capsys.readouterr().err


# -- the reachability hint at the command line -------------------------------------------


def test_ignore_unreachable_hides_only_what_the_names_prove_absent_and_lists_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.audit.test_reach import INSERT_MANY_LEGACY, REGEX_NEW_LEGACY, rust_module

    # RUSTSEC-2021-0003 lists smallvec::SmallVec::insert_many; RUSTSEC-2022-0013 lists none
    crates = {"smallvec": "1.6.0", "regex": "1.5.4"}
    without_it = rust_module(tmp_path, REGEX_NEW_LEGACY, crates)
    argv = ["audit", *DB, "--format", "json", "--ignore-unreachable"]
    assert run([*argv, "--ignore", "RUSTSEC-2022-0013", str(without_it)]) == 0
    hidden = {
        f["id"]: f for t in json.loads(capsys.readouterr().out)["targets"] for f in t["findings"]
    }["RUSTSEC-2021-0003"]
    assert hidden["status"] == "unreachable" and hidden["symbols"]["verdict"] == "absent"
    assert run([*argv, "--format", "table", "--ignore", "RUSTSEC-2022-0013", str(without_it)]) == 0
    assert "RUSTSEC-2021-0003" in capsys.readouterr().out  # hidden, and said so
    # without the flag the hint hides nothing
    assert run(["audit", *DB, "--ignore", "RUSTSEC-2022-0013", str(without_it)]) == 1
    capsys.readouterr()
    (tmp_path / "present").mkdir()
    with_it = rust_module(tmp_path / "present", INSERT_MANY_LEGACY, crates)
    assert run([*argv, "--ignore", "RUSTSEC-2022-0013", str(with_it)]) == 1
    found = {
        f["id"]: f for t in json.loads(capsys.readouterr().out)["targets"] for f in t["findings"]
    }
    assert found["RUSTSEC-2021-0003"]["status"] == "active"
    assert found["RUSTSEC-2021-0003"]["symbols"]["verdict"] == "present"
