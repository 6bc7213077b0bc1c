"""The offline OSV database and its matching, on the real RustSec and Go records in
../shared/testdata/osv/ and on synthetic records for what the real data lacks."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from wasmctl.audit import osv
from wasmctl.audit.versions import VersionError, go_toolchain, parse

TESTDATA = Path(__file__).parents[4] / "shared" / "testdata" / "osv"
CRATES = TESTDATA / "crates.io" / "all.zip"
GO = TESTDATA / "Go" / "all.zip"


@pytest.fixture(scope="module")
def real() -> osv.Database:
    return osv.load([TESTDATA])


def ids(found: list[tuple[osv.Advisory, osv.Affected]]) -> list[str]:
    return sorted(a.id for a, _ in found)


def test_both_real_databases_load_and_say_what_they_hold(real: osv.Database) -> None:
    assert real.records == 1206 + 4291
    assert real.withdrawn > 0  # withdrawn records are read, counted and left out
    assert len(real.digest) == 64
    assert real.candidates("crates.io", "regex") and real.candidates("Go", "stdlib")


def test_regex_1_5_4_is_affected_and_1_5_5_is_fixed(real: osv.Database) -> None:
    assert "RUSTSEC-2022-0013" in ids(real.matching("crates.io", "regex", "1.5.4"))
    assert "RUSTSEC-2022-0013" not in ids(real.matching("crates.io", "regex", "1.5.5"))
    [(advisory, entry)] = [
        (a, e) for a, e in real.candidates("crates.io", "regex") if a.id == "RUSTSEC-2022-0013"
    ]
    assert entry.fixed() == ("1.5.5",)
    assert "CVE-2022-24713" in advisory.aliases


def test_the_go_toolchain_is_stdlib_and_its_release_candidates_are_pre_releases(
    real: osv.Database,
) -> None:
    # GO-2021-0067: stdlib introduced 1.16.0-0, fixed 1.16.1
    assert "GO-2021-0067" in ids(real.matching("Go", "stdlib", "go1.16"))
    assert "GO-2021-0067" in ids(real.matching("Go", "stdlib", "go1.16rc1"))
    assert "GO-2021-0067" not in ids(real.matching("Go", "stdlib", "go1.16.1"))
    assert "GO-2021-0067" not in ids(real.matching("Go", "stdlib", "go1.15.8"))


def test_a_pseudo_version_is_before_the_fix_it_precedes(real: osv.Database) -> None:
    old = "v0.0.0-20210226172049-e18ecbb05110"
    assert "GO-2021-0238" in ids(real.matching("Go", "golang.org/x/net", old))  # fixed 20210520
    assert "GO-2021-0238" not in ids(real.matching("Go", "golang.org/x/net", "v0.33.0"))


# -- an independent reading of the real records ---------------------------------------------


def plain(version: str) -> tuple[int, ...] | None:
    """A release version as numbers; None for anything with a pre-release or build. A
    bound `X.Y.Z-0` (just below X.Y.Z) is X.Y.Z: only release versions are compared."""
    if version in ("0", "0.0.0-0"):
        return (-1,)
    parts = version.removeprefix("v").removesuffix("-0").split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def independently(records: list[dict[str, Any]], name: str, version: str) -> set[str]:
    """Which records name `name` at `version` as affected, read straight from the JSON:
    listed versions, and introduced/fixed pairs compared as tuples of numbers."""
    v = plain(version)
    assert v is not None
    found = set()
    for record in records:
        if record.get("withdrawn"):
            continue
        for entry in record.get("affected", []):
            if entry["package"]["name"] != name:
                continue
            if version in entry.get("versions", []):
                found.add(record["id"])
            for r in entry.get("ranges", []):
                events = [(k, plain(x)) for e in r["events"] for k, x in e.items()]
                assert all(x is not None for _, x in events), events
                state = False
                for kind, bound in sorted(events, key=lambda e: e[1] or ()):
                    assert bound is not None
                    if kind == "introduced" and v >= bound:
                        state = True
                    elif kind == "fixed" and v >= bound:
                        state = False
                if state:
                    found.add(record["id"])
    return found


@pytest.mark.parametrize(
    ("name", "versions"),
    [
        ("regex", ["1.5.4", "1.5.5", "1.0.0", "0.1.80"]),
        ("smallvec", ["0.6.9", "1.6.0", "1.6.1", "1.13.2"]),
        ("time", ["0.1.43", "0.2.22", "0.2.23", "0.3.36"]),
        ("tokio", ["1.8.0", "1.18.4", "1.38.0"]),
        ("hyper", ["0.14.9", "0.14.10", "1.0.0"]),
    ],
)
def test_rustsec_matches_agree_with_an_independent_reading(
    real: osv.Database, name: str, versions: list[str]
) -> None:
    with zipfile.ZipFile(CRATES) as z:
        records = [json.loads(z.read(n)) for n in z.namelist()]
    relevant = [r for r in records if any(a["package"]["name"] == name for a in r["affected"])]
    assert relevant
    for version in versions:
        ours = set(ids(real.matching("crates.io", name, version)))
        assert ours == independently(relevant, name, version), version


# -- what the real data lacks: synthetic records ----------------------------------------------


def record(rid: str, *ranges: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    affected: dict[str, Any] = {
        "package": {"ecosystem": "crates.io", "name": "demo"},
        "ranges": [{"type": "SEMVER", "events": events} for events in ranges],
    }
    if "versions" in extra:
        affected["versions"] = extra.pop("versions")
    return {"id": rid, "affected": [affected], **extra}


@pytest.fixture
def synthetic(tmp_path: Path) -> osv.Database:
    records = [
        record("LAST", [{"introduced": "1.0.0"}, {"last_affected": "1.2.0"}]),
        record("LIMIT", [{"introduced": "0"}, {"limit": "2.0.0"}]),
        record("LISTED", versions=["3.1.4"]),
        record("GONE", [{"introduced": "0"}], withdrawn="2024-01-01T00:00:00Z"),
        record("PRE", [{"introduced": "4.0.0-alpha.2"}, {"fixed": "4.0.0"}]),
        record("TWICE", [{"introduced": "5.0.0"}, {"fixed": "5.1.0"},
                         {"introduced": "5.2.0"}, {"fixed": "5.3.0"}]),
    ]  # fmt: skip
    for r in records:
        (tmp_path / f"{r['id']}.json").write_text(json.dumps(r))
    return osv.load([tmp_path])


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.9.0", {"LIMIT"}),
        ("1.0.0", {"LAST", "LIMIT"}),
        ("1.2.0", {"LAST", "LIMIT"}),  # last_affected is inclusive
        ("1.2.1", {"LIMIT"}),
        ("2.0.0", set()),  # limit is exclusive
        ("3.1.4", {"LISTED"}),
        ("3.1.5", set()),
        ("4.0.0-alpha.1", set()),  # before the pre-release that introduced it
        ("4.0.0-alpha.10", {"PRE"}),  # numeric pre-release identifiers compare as numbers
        ("4.0.0-beta", {"PRE"}),
        ("4.0.0", set()),
        ("5.0.5", {"TWICE"}),
        ("5.1.5", set()),
        ("5.2.0", {"TWICE"}),
        ("1.0.0+build.7", {"LAST", "LIMIT"}),  # build metadata does not count
    ],
)
def test_the_osv_evaluation_rules(
    synthetic: osv.Database, version: str, expected: set[str]
) -> None:
    assert set(ids(synthetic.matching("crates.io", "demo", version))) == expected


def test_withdrawn_records_are_counted_and_never_matched(synthetic: osv.Database) -> None:
    assert synthetic.withdrawn == 1 and synthetic.records == 6
    assert "GONE" not in ids(synthetic.candidates("crates.io", "demo"))


@pytest.mark.parametrize(
    ("ecosystem", "text", "expected"),
    [
        ("Go", "v1.2.3", "1.2.3"),
        ("Go", "v2.0.0+incompatible", "2.0.0"),
        ("Go", "v0.0.0-20210101000000-abcdef123456", "0.0.0-20210101000000-abcdef123456"),
        ("Go", "go1.22", "1.22.0"),
        ("Go", "go1.21rc2", "1.21.0-rc.2"),
        ("crates.io", "0", "0.0.0-0"),
    ],
)
def test_versions_are_normalised_before_comparing(ecosystem: str, text: str, expected: str) -> None:
    assert str(parse(ecosystem, text)) == expected


@pytest.mark.parametrize("text", ["latest", "1.2", "v1", "", "go", "gox1.2"])
def test_what_is_no_version_is_refused(text: str) -> None:
    with pytest.raises(VersionError):
        parse("Go", text) if not text.startswith("go") else go_toolchain(text)


# -- hostile databases ---------------------------------------------------------------------


def test_a_corrupt_zip_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "all.zip"
    bad.write_bytes(CRATES.read_bytes()[:5000])
    with pytest.raises(osv.DatabaseError, match="not a readable zip"):
        osv.load([bad])


def test_a_record_that_is_no_record_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"summary": "no id"}')
    with pytest.raises(osv.DatabaseError, match="not an OSV record"):
        osv.load([tmp_path])


def test_a_member_over_the_size_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "all.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("BIG.json", b" " * (5 << 20))  # compresses to almost nothing
    with pytest.raises(osv.DatabaseError, match="over 4 MiB"):
        osv.load([big])


# -- what an index is keyed by ----------------------------------------------------------------


def test_the_content_digest_is_that_of_the_files_the_records_came_from(tmp_path: Path) -> None:
    reader = osv.Reader([TESTDATA])
    database = osv.build(reader)
    assert reader.content == osv.content_digest([TESTDATA])
    assert database.digest == osv.load([TESTDATA]).digest
    (tmp_path / "A.json").write_text(json.dumps(record("A", [{"introduced": "0"}])))
    before = osv.content_digest([tmp_path])
    (tmp_path / "A.json").write_text(json.dumps(record("A", [{"introduced": "1.0.0"}])))
    assert osv.content_digest([tmp_path]) != before


def test_the_content_digest_is_known_only_after_every_record_is_read() -> None:
    reader = osv.Reader([CRATES])
    next(iter(reader))
    with pytest.raises(RuntimeError):
        _ = reader.content


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00"),
        ("2024-01-02T05:04:05.123456789+02:00", "2024-01-02T03:04:05.123456+00:00"),
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: not set
        ("2024-01-02T03:04:05", None),  # no offset: not RFC 3339
        ("2024-01-02", None),
        ("soon", None),
        (17, None),
    ],
)
def test_record_times_are_rfc_3339_in_utc(text: object, expected: str | None) -> None:
    parsed = osv.timestamp(text)
    assert (parsed.isoformat() if parsed else None) == expected


def test_a_star_limit_bounds_nothing_even_beside_another_limit(tmp_path: Path) -> None:
    # the schema's BeforeLimits: any limit "*" means the range has no upper bound
    star = record("STAR", [{"introduced": "1.0.0"}, {"limit": "*"}, {"limit": "2.0.0"}])
    (tmp_path / "STAR.json").write_text(json.dumps(star))
    database = osv.load([tmp_path])
    assert ids(database.matching("crates.io", "demo", "3.0.0")) == ["STAR"]
    assert ids(database.matching("crates.io", "demo", "0.9.0")) == []
