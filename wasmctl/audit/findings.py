"""What a module is built from, as OSV names packages, and the advisories that apply.

The packages are what the SBOM sees (`wasmctl.sbom.facts`), in the module and in every
module nested in a component:
- Rust crates from cargo-auditable's `.dep-v0` (those from crates.io: a `local`, `git` or
  path crate has no record to match), build-time crates included (a proc-macro runs at
  build time, and RustSec lists some);
- Go modules from the modinfo (a replaced module is the replacement that was built), and
  the Go toolchain as OSV's `stdlib`, from modinfo's `go` line or else the `producers`
  section's `language Go go1.x`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from wasmctl.audit.model import Severity, severity
from wasmctl.audit.osv import Advisory, Affected, Database
from wasmctl.audit.reach import FunctionNames, Reach, Reachability, hint
from wasmctl.audit.versions import VersionError
from wasmctl.sbom.facts import ModuleFacts

NOT_LOOKED = Reach(Reachability.UNKNOWN, (), ())


@dataclass(frozen=True)
class Package:
    ecosystem: str  # OSV's: crates.io, Go
    name: str
    version: str
    where: str  # the module it was found in: `app.wasm`, `app.wasm/0` for a nested one


@dataclass(frozen=True)
class Finding:
    """One advisory that applies to one package of one module."""

    advisory: Advisory
    affected: Affected
    package: Package
    reach: Reach = field(default=NOT_LOOKED)

    @property
    def fixed(self) -> tuple[str, ...]:
        return self.affected.fixed()

    @property
    def severity(self) -> Severity:
        return severity(self.advisory.severity)


@dataclass(frozen=True)
class Audit:
    findings: tuple[Finding, ...]
    packages: tuple[Package, ...]
    unmatched: tuple[tuple[Package, str], ...]  # versions no range could be compared with


def packages(facts: ModuleFacts) -> list[Package]:
    """Every package OSV could name, in every module of `facts`."""
    found: list[Package] = []
    for module in facts.walk():
        found += _module_packages(module, facts.name + module.position)
    return list(dict.fromkeys(found))


def _module_packages(module: ModuleFacts, where: str) -> list[Package]:
    found: list[Package] = []
    if module.cargo is not None:
        found += [
            Package("crates.io", p.name, p.version, where)
            for p in module.cargo.packages
            if p.source == "crates.io"
        ]
    if module.go is not None:
        for dep in module.go.deps:
            built = dep.replaced_by or dep
            if built.version and not built.path.startswith((".", "/")):
                found.append(Package("Go", built.path, built.version, where))
    toolchain = _go_toolchain(module)
    if toolchain:
        found.append(Package("Go", "stdlib", toolchain, where))
    return list(dict.fromkeys(found))


def _go_toolchain(module: ModuleFacts) -> str:
    if module.go is not None and module.go.go_version.startswith("go"):
        return module.go.go_version
    if module.go is None:
        return ""  # a producers section alone does not make a Go program
    for producer in module.producers:
        if producer.name == "language":
            for value in producer.values:
                if value.name == "Go" and value.version.startswith("go"):
                    return value.version
    return ""


def audit(facts: ModuleFacts, database: Database) -> Audit:
    """The advisories that apply to the packages of `facts`, withdrawn ones left out, each
    with its reachability hint (the module's name section is read only when an advisory
    that applies lists functions or symbols)."""
    found: list[Finding] = []
    unmatched: list[tuple[Package, str]] = []
    listed: list[Package] = []
    for module in facts.walk():
        names: list[FunctionNames | None] = []  # read once, when first needed
        for package in _module_packages(module, facts.name + module.position):
            listed.append(package)
            for advisory, affected in database.candidates(package.ecosystem, package.name):
                try:
                    hit = affected.affects(package.version)
                except VersionError as e:
                    unmatched.append((package, e.message))
                    continue
                if not hit:
                    continue
                if not names:
                    section = module.name_section
                    names.append(FunctionNames.of(section) if section is not None else None)
                found.append(Finding(advisory, affected, package, hint(affected, names[0])))
    # one finding per advisory and package, even when a record lists the package twice
    # One finding per advisory and package, even when a record lists the package in two
    # `affected` entries (25 of Go's do): one entry with both ranges, so every fix is named.
    unique: dict[tuple[str, Package], Finding] = {}
    for finding in found:
        key = (finding.advisory.id, finding.package)
        first = unique.get(key)
        if first is None:
            unique[key] = finding
            continue
        merged = replace(
            first.affected,
            ranges=first.affected.ranges + finding.affected.ranges,
            versions=first.affected.versions | finding.affected.versions,
        )
        unique[key] = replace(first, affected=merged)
    return Audit(
        tuple(unique.values()),
        tuple(dict.fromkeys(listed)),
        tuple(dict.fromkeys(unmatched)),
    )
