"""The results of an audit as frozen data: severities, ignores, and the report the command
line renders and turns into an exit code (an audit never raises on a finding).

A finding is in exactly one of five places:
- `active`: a vulnerability that counts against `--fail-on`;
- `informational`: RustSec's unmaintained, unsound and notice advisories, listed apart and
  never failing the run;
- `ignored`: matched by an ignore (`--ignore`, an ignore file, a gate policy), listed with
  the ignore that matched;
- `suppressed`: an OpenVEX `not_affected` statement (`wasmctl.audit.vex`) applies to it,
  listed with that statement (its author, justification, impact statement);
- `unreachable`: hidden by `--ignore-unreachable` because the reachability hint proved the
  functions it names absent, and listed as hidden.

Wherever it is, a finding carries the VEX statement in force for it, if any: `affected`,
`fixed` and `under_investigation` are reported on the finding and suppress nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from wasmctl.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from wasmctl.audit.findings import Finding, Package
    from wasmctl.audit.vex import Document, Rejected, Statement
    from wasmctl.sbom.facts import Subject


class Rating(enum.StrEnum):
    """A CVSS qualitative rating, or `unknown` when a record gives no vector (Go's never do)."""

    UNKNOWN = "unknown"
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {r: i for i, r in enumerate(Rating)}


class Threshold(enum.StrEnum):
    """`--fail-on`: the lowest rating that fails the run. `any` is every vulnerability,
    those of unknown severity included; a named rating does not count unknown ones (as
    grype's `--fail-on` does), since Go's database rates nothing."""

    ANY = "any"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    def reached_by(self, rating: Rating) -> bool:
        if self is Threshold.ANY:
            return True
        return rating is not Rating.UNKNOWN and rating.rank >= Rating(self.value).rank


@dataclass(frozen=True)
class Severity:
    """The highest CVSS base score among a record's vectors, and its rating."""

    rating: Rating
    score: float | None = None
    vector: str | None = None


UNKNOWN_SEVERITY = Severity(Rating.UNKNOWN)


@lru_cache(maxsize=8192)
def severity(vectors: tuple[tuple[str, str], ...]) -> Severity:
    """The severity of an OSV record's `severity` entries ((type, CVSS vector)), computed
    by the `cvss` library; a vector it cannot read counts as no vector."""
    from cvss import CVSS2, CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    best = UNKNOWN_SEVERITY
    for kind, vector in vectors:
        reader: Any = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}.get(kind)
        if reader is None:
            continue
        try:
            parsed = reader(vector)
            score = float(parsed.base_score)
            name = str(parsed.severities()[0] if kind != "CVSS_V2" else _v2_rating(score))
        except (CVSSError, ValueError, KeyError, IndexError, TypeError):
            continue
        rating = Rating(name.lower()) if name.lower() in Rating.__members__.values() else None
        if rating is not None and (best.score is None or score > best.score):
            best = Severity(rating, score, vector)
    return best


def _v2_rating(score: float) -> str:
    """CVSS v2 has no "critical": NVD's v2 bands (low < 4.0 ≤ medium < 7.0 ≤ high)."""
    return "low" if score < 4.0 else "medium" if score < 7.0 else "high"


@dataclass(frozen=True)
class Ignore:
    """One ignore: an advisory id (or any of its aliases), why, and until when."""

    id: str
    reason: str
    expires: date | None = None
    source: str = "--ignore"  # where it was written: `--ignore`, `FILE:LINE`, `policy`

    def expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires

    def matches(self, finding: Finding) -> bool:
        return self.id == finding.advisory.id or self.id in finding.advisory.aliases


def ignores_from(entries: Any, where: str) -> tuple[Ignore, ...]:
    """Ignores from a list of `{id, reason, expires}` mappings (an ignore file's `ignore:`,
    a gate policy's `vulnerabilities.ignore`); a bare id string is refused, since every
    ignore must say why."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise InputError(f"{where}: `ignore` must be a list of {{id, reason, expires}}")
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}: ignore[{i}]"
        if not isinstance(entry, Mapping):
            raise InputError(f"{at}: must be a mapping with `id` and `reason`")
        unknown = set(entry) - {"id", "reason", "expires"}
        if unknown:
            raise InputError(
                f"{at}: unknown key {sorted(map(str, unknown))[0]!r}",
                hint="an ignore has `id`, `reason` and `expires` (YYYY-MM-DD)",
            )
        ident, reason, expires = entry.get("id"), entry.get("reason"), entry.get("expires")
        if not isinstance(ident, str) or not ident.strip():
            raise InputError(f"{at}: `id` must be an advisory id such as RUSTSEC-2022-0013")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"{at} ({ident}): `reason` is required: say why it is ignored")
        out.append(Ignore(ident.strip(), reason.strip(), _date(expires, at), at))
    return tuple(out)


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InputError(f"{where}: `expires` must be a date (YYYY-MM-DD), not {str(value)[:40]!r}")


def load_ignore_file(text: str, where: str) -> tuple[Ignore, ...]:
    """An ignore file: YAML with an `ignore:` list (see docs/audit.md)."""
    from wasmctl import _yaml

    document = _yaml.load(text, where)
    if document is None:
        return ()
    if not isinstance(document, Mapping) or set(document) - {"ignore"}:
        raise InputError(f"{where}: an ignore file is a mapping with one key, `ignore`")
    return ignores_from(document.get("ignore"), where)


class Place(enum.StrEnum):
    """Where a finding is reported (see the module docstring)."""

    ACTIVE = "active"
    INFORMATIONAL = "informational"
    IGNORED = "ignored"
    SUPPRESSED = "suppressed"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Placed:
    """A finding, where it is reported, the ignore that put it there, if any, and the VEX
    statement in force for it, if any (the one that suppressed it, for `suppressed`)."""

    finding: Finding
    place: Place
    ignore: Ignore | None = None
    vex: Statement | None = None


@dataclass(frozen=True)
class DatabaseInfo:
    """What every report states about the database it matched against."""

    digest: str
    records: int
    withdrawn: int
    sources: tuple[str, ...]
    newest: datetime | None  # the newest record's `modified`: the data's age

    def age(self, now: datetime) -> timedelta | None:
        return None if self.newest is None else now - self.newest


@dataclass(frozen=True)
class TargetAudit:
    """One target: its packages, its findings, and versions no range could be compared
    with, or the error that kept it from being read."""

    target: str
    findings: tuple[Placed, ...] = ()
    packages: tuple[Package, ...] = ()
    unmatched: tuple[tuple[Package, str], ...] = ()
    error: str | None = None
    remote: bool = False  # the error was the registry's or the network's
    subject: Subject | None = None  # what the SBOM of the target describes
    # VEX attestations found on the artifact: verified and read, or not used and why
    vex: tuple[Document, ...] = ()
    vex_rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True)
class AuditReport:
    targets: tuple[TargetAudit, ...]
    database: DatabaseInfo
    fail_on: Threshold = Threshold.ANY
    ignores: tuple[Ignore, ...] = ()  # every ignore given
    expired: tuple[Ignore, ...] = ()  # ignores past their date, which ignored nothing
    generated: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    vex: tuple[Document, ...] = ()  # the VEX documents given as files

    @property
    def vex_documents(self) -> list[tuple[str | None, Document]]:
        """Every VEX document read: (None, document) for a file, (target, document) for an
        attestation found on a target."""
        out: list[tuple[str | None, Document]] = [(None, d) for d in self.vex]
        out += [(t.target, d) for t in self.targets for d in t.vex]
        return out

    def placed(self, place: Place | None = None) -> list[Placed]:
        return [p for t in self.targets for p in t.findings if place in (None, p.place)]

    @property
    def failing(self) -> list[Placed]:
        """The active findings at or above `fail_on`."""
        return [
            p
            for p in self.placed(Place.ACTIVE)
            if self.fail_on.reached_by(p.finding.severity.rating)
        ]

    @property
    def applied(self) -> tuple[Ignore, ...]:
        """The ignores that ignored something."""
        used = {id(p.ignore) for p in self.placed(Place.IGNORED)}
        return tuple(i for i in self.ignores if id(i) in used)

    @property
    def verdict(self) -> str:
        """ "deny" when something fails, else "error" when a target could not be read,
        else "pass" (`wasmctl.errors.exit_code_for`)."""
        if self.failing:
            return "deny"
        if any(t.error for t in self.targets):
            return "error"
        return "pass"

    @property
    def remote_failure(self) -> bool:
        return any(t.error and t.remote for t in self.targets)


def place(
    findings: Iterable[Finding],
    ignores: Iterable[Ignore],
    *,
    today: date,
    ignore_unreachable: bool = False,
    vex: Callable[[Finding], Statement | None] | None = None,
) -> tuple[Placed, ...]:
    """Where each finding is reported: an ignore wins over everything (it is listed with
    the finding), then a VEX `not_affected` statement (`vex`: the statement in force for a
    finding), then informational, then unreachable when asked."""
    from wasmctl.audit.reach import Reachability

    live = [i for i in ignores if not i.expired(today)]
    out = []
    for finding in findings:
        statement = vex(finding) if vex is not None else None
        rule = next((i for i in live if i.matches(finding)), None)
        if rule is not None:
            out.append(Placed(finding, Place.IGNORED, rule, statement))
        elif statement is not None and statement.suppresses:
            out.append(Placed(finding, Place.SUPPRESSED, None, statement))
        elif finding.advisory.informational:
            out.append(Placed(finding, Place.INFORMATIONAL, None, statement))
        elif ignore_unreachable and finding.reach.verdict is Reachability.ABSENT:
            out.append(Placed(finding, Place.UNREACHABLE, None, statement))
        else:
            out.append(Placed(finding, Place.ACTIVE, None, statement))
    return tuple(out)
