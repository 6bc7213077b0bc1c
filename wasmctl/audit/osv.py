"""An offline OSV database: records read from `<ECOSYSTEM>/all.zip` (as osv.dev publishes
them and `osv-scanner --offline` reads them) or from a directory of loose OSV JSON files,
indexed by (ecosystem, package name), and matched as the OSV schema's "Evaluation" says
(ossf/osv-schema docs/schema.md):

- a version is affected when it is listed in `versions`, or falls in a `SEMVER` (or
  `ECOSYSTEM`, for these SemVer ecosystems) range: its events sorted by version,
  `introduced` opens (`"0"`: from the start), `fixed` closes before itself, `last_affected`
  closes after itself, and `limit` events bound the range from above (`"*"`: no bound);
- withdrawn records are skipped.

Everything read is bounded: members, member size, the whole archive, JSON depth.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import semver

from wasmctl._files import open_regular
from wasmctl.audit.versions import VersionError, parse
from wasmctl.errors import InputError

MAX_RECORD_BYTES = 4 << 20
MAX_RECORDS = 200_000
MAX_ARCHIVE_BYTES = 1 << 30


class DatabaseError(InputError):
    """An OSV database that cannot be read."""


@dataclass(frozen=True)
class Affected:
    """One `affected[]` entry of a record: a package, its ranges and listed versions."""

    ecosystem: str
    name: str
    ranges: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (type, ((kind, version),))
    versions: frozenset[str]
    ecosystem_specific: Mapping[str, Any] = field(default_factory=dict)
    database_specific: Mapping[str, Any] = field(default_factory=dict)

    def affects(self, version: str) -> bool:
        """Whether `version` of this package is affected (raises VersionError when the
        version, or a bound it must be compared with, is not SemVer)."""
        if version in self.versions:
            return True
        if not self.ranges:
            return False
        v = parse(self.ecosystem, version)
        return any(self._in_range(v, events) for kind, events in self.ranges if kind != "GIT")

    def _in_range(self, v: semver.Version, events: tuple[tuple[str, str], ...]) -> bool:
        limits = [e for kind, e in events if kind == "limit" and e != "*"]
        if limits and not any(v < parse(self.ecosystem, limit) for limit in limits):
            return False
        ordered = sorted(
            ((kind, parse(self.ecosystem, e)) for kind, e in events if kind != "limit"),
            key=lambda event: event[1],
        )
        affected = False
        for kind, bound in ordered:
            if kind == "introduced" and v >= bound:
                affected = True
            elif (kind == "fixed" and v >= bound) or (kind == "last_affected" and v > bound):
                affected = False
        return affected

    def fixed(self) -> tuple[str, ...]:
        """The versions that fix it (the upgrade targets), in the record's order."""
        return tuple(
            dict.fromkeys(e for _, events in self.ranges for kind, e in events if kind == "fixed")
        )


@dataclass(frozen=True)
class Advisory:
    """An OSV record, as far as an audit reads it."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: tuple[tuple[str, str], ...]  # (type, score: a CVSS vector)
    affected: tuple[Affected, ...]
    withdrawn: str | None = None
    informational: str | None = None  # RustSec: unmaintained, unsound, notice

    @classmethod
    def from_json(cls, document: Any, where: str) -> Advisory:
        if not isinstance(document, Mapping) or not isinstance(document.get("id"), str):
            raise DatabaseError(f"{where}: not an OSV record (no `id`)")
        affected = []
        for entry in _list(document.get("affected")):
            package = entry.get("package") if isinstance(entry, Mapping) else None
            if not isinstance(package, Mapping):
                continue
            ranges = []
            for r in _list(entry.get("ranges")):
                if not isinstance(r, Mapping):
                    continue
                events = tuple(
                    (kind, str(value))
                    for event in _list(r.get("events"))
                    if isinstance(event, Mapping)
                    for kind, value in event.items()
                    if kind in ("introduced", "fixed", "last_affected", "limit")
                )
                ranges.append((str(r.get("type", "")), events))
            specific = entry.get("ecosystem_specific")
            database = entry.get("database_specific")
            affected.append(
                Affected(
                    ecosystem=str(package.get("ecosystem", "")),
                    name=str(package.get("name", "")),
                    ranges=tuple(ranges),
                    versions=frozenset(str(v) for v in _list(entry.get("versions"))),
                    ecosystem_specific=specific if isinstance(specific, Mapping) else {},
                    database_specific=database if isinstance(database, Mapping) else {},
                )
            )
        informational = None
        for entry in affected:
            value = entry.database_specific.get("informational")
            if isinstance(value, str) and value:
                informational = value
        database = document.get("database_specific")
        if informational is None and isinstance(database, Mapping):
            value = database.get("informational")
            informational = value if isinstance(value, str) and value else None
        return cls(
            id=document["id"],
            aliases=tuple(str(a) for a in _list(document.get("aliases"))),
            summary=str(document.get("summary") or document.get("details") or "")[:1000],
            severity=tuple(
                (str(s.get("type", "")), str(s.get("score", "")))
                for s in _list(document.get("severity"))
                if isinstance(s, Mapping)
            ),
            affected=tuple(affected),
            withdrawn=document.get("withdrawn")
            if isinstance(document.get("withdrawn"), str)
            else None,
            informational=informational,
        )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass
class Database:
    """Advisories by (ecosystem, package name); withdrawn records left out. `digest` is
    the sha256 of what was read (every report states it)."""

    advisories: dict[tuple[str, str], list[tuple[Advisory, Affected]]]
    digest: str
    records: int
    withdrawn: int

    def candidates(self, ecosystem: str, name: str) -> list[tuple[Advisory, Affected]]:
        return self.advisories.get((ecosystem, name), [])

    def matching(self, ecosystem: str, name: str, version: str) -> list[tuple[Advisory, Affected]]:
        """The advisories that say `name` at `version` is affected. A version no range
        can be compared with is reported by the caller (VersionError), never passed."""
        return [(a, e) for a, e in self.candidates(ecosystem, name) if e.affects(version)]


def load(paths: Iterable[Path]) -> Database:
    """The database in `paths`: `all.zip` files, directories holding `*/all.zip`, or
    directories of loose `*.json` records."""
    from wasmctl import _json

    index: dict[tuple[str, str], list[tuple[Advisory, Affected]]] = {}
    digest = hashlib.sha256()
    records = withdrawn = 0
    for where, raw in _records(paths):
        digest.update(hashlib.sha256(raw).digest())
        records += 1
        if records > MAX_RECORDS:
            raise DatabaseError(f"more than {MAX_RECORDS} OSV records")
        advisory = Advisory.from_json(_json.loads(raw, where, DatabaseError), where)
        if advisory.withdrawn:
            withdrawn += 1
            continue
        for entry in advisory.affected:
            index.setdefault((entry.ecosystem, entry.name), []).append((advisory, entry))
    return Database(index, digest.hexdigest(), records, withdrawn)


def _records(paths: Iterable[Path]) -> Iterator[tuple[str, bytes]]:
    for path in paths:
        if path.is_dir():
            zips = sorted(path.glob("*/all.zip"))
            if zips:
                for archive in zips:
                    yield from _zip_records(archive)
                continue
            for name in sorted(os.listdir(path)):
                if name.endswith(".json"):
                    with open_regular(path / name, "OSV record", DatabaseError) as f:
                        raw = f.read(MAX_RECORD_BYTES + 1)
                    if len(raw) > MAX_RECORD_BYTES:
                        raise DatabaseError(f"{path / name}: an OSV record over 4 MiB")
                    yield str(path / name), raw
        else:
            yield from _zip_records(path)


def _zip_records(archive: Path) -> Iterator[tuple[str, bytes]]:
    with open_regular(archive, "OSV database (all.zip)", DatabaseError) as f:
        try:
            with zipfile.ZipFile(f) as zipped:
                members = [m for m in zipped.infolist() if m.filename.endswith(".json")]
                if len(members) > MAX_RECORDS:
                    raise DatabaseError(f"{archive}: more than {MAX_RECORDS} records")
                total = 0
                for member in members:
                    if member.file_size > MAX_RECORD_BYTES:
                        raise DatabaseError(f"{archive}: {member.filename} is over 4 MiB")
                    total += member.file_size
                    if total > MAX_ARCHIVE_BYTES:
                        raise DatabaseError(f"{archive}: over 1 GiB of records")
                    with zipped.open(member) as stream:
                        raw = stream.read(MAX_RECORD_BYTES + 1)
                    if len(raw) > MAX_RECORD_BYTES:  # the header lied about the size
                        raise DatabaseError(f"{archive}: {member.filename} is over 4 MiB")
                    yield f"{archive}:{member.filename}", raw
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
            raise DatabaseError(f"{archive}: not a readable zip archive: {e}") from None


__all__ = ["Advisory", "Affected", "Database", "DatabaseError", "VersionError", "load"]
