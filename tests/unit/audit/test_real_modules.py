"""Real third-party modules audited against the real OSV records, checked against an
independent reading of the same records written here.

The modules are esbuild.wasm (npm `esbuild-wasm`, Go js/wasm) and every member of the test
corpus that carries something OSV can name: cargo-auditable's `.dep-v0`, Go modinfo, or a
Go toolchain in the `producers` section. Of the corpus, none does (the jco adapters are
Rust with no `.dep-v0`, graphviz has no producers at all); that is pinned below, and a
member that does would be audited here too.

The independent reading shares nothing with `wasmctl.audit`: the zips are read with
`zipfile` and `json`, versions are ordered by a tuple of their numeric parts with SemVer's
pre-release rules spelled out (no `semver`), and a version is matched by the OSV schema's
"Evaluation" pseudocode as written (ossf/osv-schema docs/schema.md: `IsVulnerable`,
`IncludedInRanges`, `BeforeLimits`), withdrawn records skipped.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import CorpusEntry, default_cache_dir
from tests.sbom_fixtures import GO_END, GO_START, esbuild
from wasmctl.audit import osv
from wasmctl.audit.findings import Audit, Package, audit, packages
from wasmctl.sbom.facts import ModuleFacts, file_facts

TESTDATA = Path(__file__).parents[4] / "shared" / "testdata" / "osv"
ECOSYSTEMS = ("crates.io", "Go")

# What esbuild-wasm 0.28.2's esbuild.wasm was built with, read by hand from its bytes:
# `producers` says `language Go go1.26.5`; the modinfo names only the main module at
# `(devel)` and no `dep` line (esbuild has no dependencies linked into js/wasm) and, as
# the go command writes it, no `go` line.
ESBUILD_TOOLCHAIN = "go1.26.5"
# The stdlib advisories whose Go 1.26 line is fixed in 1.26.6, checked one by one in
# Go/all.zip: each has `introduced 1.26.0-0`, `fixed 1.26.6`.
ESBUILD_ADVISORIES = {
    "GO-2026-5026": "CVE-2026-39821",  # Punycode labels (vendored x/net/idna)
    "GO-2026-5942": "CVE-2026-46600",  # SVCB/HTTPS RR panic (vendored dnsmessage)
    "GO-2026-5972": "CVE-2026-33818",  # encoding/asn1 recursion depth
    "GO-2026-6088": "CVE-2026-56859",  # encoding/xml recursion depth
    "GO-2026-6089": "CVE-2026-56853",  # net/http ReadHeaderTimeout
    "GO-2026-6090": "CVE-2026-56862",  # crypto/tls post-handshake messages
    "GO-2026-6091": "CVE-2026-56858",  # html/template JS regexp context
    "GO-2026-6218": "CVE-2026-56860",  # net/url resolvePath
}
# Fixed in exactly 1.26.5 (`fixed` is exclusive: 1.26.5 is not affected), and a range of
# 1.26 release candidates only (`1.26.0-rc.1` to `1.26.0-rc.3`, below 1.26.0).
ESBUILD_NOT_AFFECTED = ("GO-2026-4970", "GO-2026-5856", "GO-2026-4337")


# -- an independent reading of the records ----------------------------------------------

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")
_GO_RELEASE = re.compile(r"go(\d+)\.(\d+)(?:\.(\d+))?")


def order(version: str) -> tuple[Any, ...]:
    """A sort key that orders versions as SemVer 2.0 §11 does, as far as these records
    need: numeric major.minor.patch, a pre-release before its release, pre-release fields
    compared left to right (numbers numerically and below words, a longer list above its
    prefix), build metadata ignored. `"0"` is OSV's "before every version"."""
    if version == "0":
        return (-1,)
    found = _SEMVER.fullmatch(version)
    if found is None:
        raise ValueError(f"not a version this reading can order: {version!r}")
    major, minor, patch, pre = found.groups()
    core = (int(major), int(minor), int(patch))
    if pre is None:
        return (*core, 1, ())
    fields = tuple((0, int(f), "") if f.isdigit() else (1, 0, f) for f in pre.split("."))
    return (*core, 0, fields)


def osv_version(package: Package) -> str:
    """The version as OSV's records write it: Go's toolchain `go1.26.5` is stdlib `1.26.5`,
    Go module versions lose their `v`; crates as they are."""
    if package.ecosystem == "Go" and package.name == "stdlib":
        found = _GO_RELEASE.fullmatch(package.version)
        if found is None:  # rc/beta toolchains: none in these modules
            raise ValueError(f"not a Go release this reading knows: {package.version!r}")
        major, minor, patch = found.groups()
        return f"{major}.{minor}.{patch or 0}"
    if package.ecosystem == "Go":
        return package.version.removeprefix("v")
    return package.version


def included_in_ranges(v: str, ranges: list[dict[str, Any]]) -> bool:
    for r in ranges:
        if r["type"] != "SEMVER":  # all of this data is SEMVER; anything else is news
            raise ValueError(f"a {r['type']} range this reading does not evaluate")
        events = [next(iter(e.items())) for e in r["events"]]
        if not before_limits(v, events):
            continue
        vulnerable = False
        for kind, bound in sorted(events, key=lambda e: order(e[1]) if e[1] != "*" else (9e9,)):
            if kind == "introduced" and order(v) >= order(bound):
                vulnerable = True
            elif (kind == "fixed" and order(v) >= order(bound)) or (
                kind == "last_affected" and order(v) > order(bound)
            ):
                vulnerable = False
        if vulnerable:
            return True
    return False


def before_limits(v: str, events: list[tuple[str, str]]) -> bool:
    limits = [bound for kind, bound in events if kind == "limit"]
    if not limits:
        return True
    return any(bound == "*" or order(v) < order(bound) for bound in limits)


def package_of(affected: dict[str, Any]) -> tuple[str, str]:
    return affected["package"]["ecosystem"], affected["package"]["name"]


@dataclass(frozen=True)
class Records:
    """Every record of both zips, by the (ecosystem, name) of each package it names."""

    naming: dict[tuple[str, str], list[dict[str, Any]]]

    def entries(self, package: Package) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Each record naming `package`, with its `affected[]` entries for it."""
        key = (package.ecosystem, package.name)
        for record in self.naming.get(key, []):
            yield record, [a for a in record["affected"] if package_of(a) == key]

    def applying(self, package: Package) -> dict[str, dict[str, Any]]:
        """The records that say `package` is vulnerable (`IsVulnerable`), by id."""
        v = osv_version(package)
        found = {}
        for record, affected in self.entries(package):
            if "withdrawn" in record:
                continue
            if any(v in a.get("versions", []) or included_in_ranges(v, a.get("ranges", []))
                   for a in affected):  # fmt: skip
                found[record["id"]] = record
        return found


@pytest.fixture(scope="module")
def records() -> Records:
    naming: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ecosystem in ECOSYSTEMS:
        with zipfile.ZipFile(TESTDATA / ecosystem / "all.zip") as archive:
            for member in archive.namelist():
                record = json.loads(archive.read(member))
                for name in {package_of(a) for a in record.get("affected", [])}:
                    naming.setdefault(name, []).append(record)
    return Records(naming)


@pytest.fixture(scope="module")
def database() -> osv.Database:
    return osv.load([TESTDATA])


# -- the real modules --------------------------------------------------------------------

_DEP_V0 = b"\x07.dep-v0"  # a custom section's name, length-prefixed
_GO_PRODUCER = re.compile(rb"\x02Go.(go1\.[0-9.]+)", re.DOTALL)  # `language` value Go


def carries_build_data(data: bytes) -> bool:
    """Read from the raw bytes (nested modules included), not by wasmctl's reader."""
    return _DEP_V0 in data or GO_START in data or _GO_PRODUCER.search(data) is not None


@pytest.fixture(scope="module")
def candidates(corpus: list[CorpusEntry]) -> dict[str, Path]:
    """esbuild.wasm and every corpus member, by name."""
    return {"esbuild": esbuild(default_cache_dir()), **{e.name: e.path for e in corpus}}


@pytest.fixture(scope="module")
def audited(
    candidates: dict[str, Path], database: osv.Database
) -> dict[str, tuple[ModuleFacts, Audit]]:
    """The modules that carry packages OSV can name, with their audits."""
    found = {}
    for name, path in candidates.items():
        facts = file_facts(path)
        if packages(facts):
            found[name] = (facts, audit(facts, database))
    return found


def test_esbuild_is_the_only_real_module_with_packages_to_audit(
    candidates: dict[str, Path], audited: dict[str, tuple[ModuleFacts, Audit]]
) -> None:
    carrying = {n for n, path in candidates.items() if carries_build_data(path.read_bytes())}
    assert carrying == {"esbuild"}
    assert set(audited) == carrying


def test_esbuild_names_only_its_go_toolchain(
    candidates: dict[str, Path], audited: dict[str, tuple[ModuleFacts, Audit]]
) -> None:
    data = candidates["esbuild"].read_bytes()
    assert [m.group(1).decode() for m in _GO_PRODUCER.finditer(data)] == [ESBUILD_TOOLCHAIN]
    start = data.index(GO_START) + len(GO_START)
    modinfo = data[start : data.index(GO_END, start)].decode().splitlines()
    assert "mod\tgithub.com/evanw/esbuild\t(devel)\t" in modinfo
    assert not [line for line in modinfo if line.startswith(("dep\t", "=>\t", "go\t"))]
    facts, result = audited["esbuild"]
    assert result.packages == (Package("Go", "stdlib", ESBUILD_TOOLCHAIN, facts.name),)


def test_every_real_module_gets_exactly_the_advisories_the_records_say_apply(
    audited: dict[str, tuple[ModuleFacts, Audit]], records: Records
) -> None:
    for name, (_, result) in audited.items():
        expected = {
            (p.where, p.name, p.version, advisory)
            for p in result.packages
            for advisory in records.applying(p)
        }
        found = [(f.package.where, f.package.name, f.package.version, f.advisory.id)
                 for f in result.findings]  # fmt: skip
        assert sorted(found) == sorted(expected), name  # the same set, and no duplicates


def test_every_finding_carries_its_records_aliases_and_fixed_versions(
    audited: dict[str, tuple[ModuleFacts, Audit]], records: Records
) -> None:
    for _, result in audited.values():
        for finding in result.findings:
            record = records.applying(finding.package)[finding.advisory.id]
            assert finding.advisory.aliases == tuple(record.get("aliases", []))
            v = osv_version(finding.package)
            [entry] = [a for r, affected in records.entries(finding.package)
                       if r is record for a in affected
                       if included_in_ranges(v, a.get("ranges", []))]  # fmt: skip
            fixed = [e["fixed"] for r in entry["ranges"] for e in r["events"] if "fixed" in e]
            assert list(finding.fixed) == list(dict.fromkeys(fixed))


def test_esbuild_is_affected_by_the_stdlib_advisories_fixed_in_go1_26_6(
    audited: dict[str, tuple[ModuleFacts, Audit]],
) -> None:
    _, result = audited["esbuild"]
    found = {f.advisory.id: f for f in result.findings}
    assert {a: f.advisory.aliases[0] for a, f in found.items()} == ESBUILD_ADVISORIES
    assert {f.fixed for f in found.values()} == {
        ("1.25.13", "1.26.6", "1.27.0-rc.3"),
        ("1.26.6", "1.27.0-rc.3"),  # GO-2026-5942: new in 1.26
    }
    assert not set(ESBUILD_NOT_AFFECTED) & set(found)


def test_every_package_is_matched_or_provably_not_affected(
    audited: dict[str, tuple[ModuleFacts, Audit]], records: Records
) -> None:
    for name, (_, result) in audited.items():
        assert result.packages
        assert result.unmatched == (), name  # every version compared, none passed over
        matched = {f.package for f in result.findings}
        for package in result.packages:
            if package in matched:
                continue
            # Not matched: every record naming it must, read here, leave this version out
            # (and be readable here: `order` raises on a bound it cannot compare).
            assert records.applying(package) == {}, package
    stdlib = audited["esbuild"][1].packages[0]
    assert stdlib in {f.package for f in audited["esbuild"][1].findings}
    named = [r["id"] for r, _ in records.entries(stdlib) if "withdrawn" not in r]
    assert len(named) > len(ESBUILD_ADVISORIES)  # most stdlib records leave go1.26.5 out


def test_the_independent_ordering_is_semvers() -> None:
    # SemVer 2.0 §11's own example, then OSV's "0", Go's `-0` lower bounds and rc tags
    ladder = ["0", "0.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
              "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
              "1.26.0-0", "1.26.0-rc.1", "1.26.0-rc.3", "1.26.0", "1.26.5", "1.26.6",
              "1.27.0-0", "1.27.0-rc.2"]  # fmt: skip
    assert sorted(ladder, key=order) == ladder
    assert order("9.11.0+incompatible") == order("9.11.0")
    with pytest.raises(ValueError):
        order("1.26")
