"""An offline OSV database: records read from `<ECOSYSTEM>/all.zip` (as osv.dev publishes
them and `osv-scanner --offline` reads them) or from a directory of loose OSV JSON files,
indexed by (ecosystem, package name), and matched as the OSV schema's "Evaluation" says
(ossf/osv-schema docs/schema.md):

- a version is affected when it is listed in `versions`, or falls in a `SEMVER` (or
  `ECOSYSTEM`, for these SemVer ecosystems) range: its events sorted by version,
  `introduced` opens (`"0"`: from the start), `fixed` closes before itself, `last_affected`
  closes after itself, and `limit` events bound the range from above (`"*"`: no bound);
- withdrawn records are skipped.

Everything read is bounded: members, member size, the whole archive, JSON depth. Where the
database lives, its update and its persistent index are `wasmctl.audit.db`'s.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

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

    # what was computed, kept per entry: each range's events parsed and sorted, and the
    # answer per version (a hundred modules often share their crates' versions)
    _memo: dict[Any, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def affects(self, version: str) -> bool:
        """Whether `version` of this package is affected (raises VersionError when the
        version, or a bound it must be compared with, is not SemVer)."""
        known = self._memo.get(version)
        if known is None:
            known = self._memo[version] = self._affects(version)
        return bool(known)

    def _affects(self, version: str) -> bool:
        if version in self.versions:
            return True
        if not self.ranges:
            return False
        v = parse(self.ecosystem, version)
        return any(self._in_range(v, i) for i, (kind, _) in enumerate(self.ranges) if kind != "GIT")

    def _in_range(self, v: semver.Version, index: int) -> bool:
        limits, ordered = self._events(index)
        # the schema's BeforeLimits: no limits, or a "*" limit, bound nothing
        if limits is not None and not any(v < limit for limit in limits):
            return False
        affected = False
        for kind, bound in ordered:
            if bound > v:  # this and every later event leave the state as it is
                break
            if kind == "introduced":
                affected = True
            elif kind == "fixed" or (kind == "last_affected" and v > bound):
                affected = False
        return affected

    def _events(
        self, index: int
    ) -> tuple[list[semver.Version] | None, list[tuple[str, semver.Version]]]:
        """Range `index`'s limits (None: unbounded) and its other events sorted by version."""
        key = ("events", index)
        if key not in self._memo:
            events = self.ranges[index][1]
            limits = [e for kind, e in events if kind == "limit"]
            parsed = (
                [parse(self.ecosystem, limit) for limit in limits]
                if limits and "*" not in limits
                else None
            )
            ordered = sorted(
                ((kind, parse(self.ecosystem, e)) for kind, e in events if kind != "limit"),
                key=lambda event: event[1],
            )
            self._memo[key] = (parsed, ordered)
        cached: tuple[list[semver.Version] | None, list[tuple[str, semver.Version]]]
        cached = self._memo[key]
        return cached

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
    the sha256 of the records read (every report states it; the same however the database
    was loaded), `newest` the newest record's `modified` (the data's age), `sources` the
    paths it was loaded from. `advisories` may be read lazily (`wasmctl.audit.db`'s index)."""

    advisories: Mapping[tuple[str, str], list[tuple[Advisory, Affected]]]
    digest: str
    records: int
    withdrawn: int
    newest: datetime | None = None
    sources: tuple[Path, ...] = ()

    def candidates(self, ecosystem: str, name: str) -> list[tuple[Advisory, Affected]]:
        return self.advisories.get((ecosystem, name), [])

    def matching(self, ecosystem: str, name: str, version: str) -> list[tuple[Advisory, Affected]]:
        """The advisories that say `name` at `version` is affected. A version no range
        can be compared with is reported by the caller (VersionError), never passed."""
        return [(a, e) for a, e in self.candidates(ecosystem, name) if e.affects(version)]

    def age(self, now: datetime) -> timedelta | None:
        """How old the newest record is at `now` (never negative: a record from the future
        is a clock's error, not a fresh database); None when no record says when it was
        modified."""
        if self.newest is None:
            return None
        return max(timedelta(0), now - self.newest)


@dataclass(frozen=True)
class Record:
    """One OSV record as read: its bytes and their sha256, the advisory, its `modified`."""

    raw: bytes
    sha256: bytes
    advisory: Advisory
    modified: datetime | None


def load(paths: Iterable[Path]) -> Database:
    """The database in `paths`: `all.zip` files, directories holding `*/all.zip` (or one
    `all.zip`), or directories of loose `*.json` records."""
    paths = tuple(paths)
    return build(Reader(paths), paths)


def build(records: Iterable[Record], sources: Iterable[Path] = ()) -> Database:
    """The database of `records`, in their order."""
    index: dict[tuple[str, str], list[tuple[Advisory, Affected]]] = {}
    digest = hashlib.sha256()
    count = withdrawn = 0
    newest: datetime | None = None
    for record in records:
        digest.update(record.sha256)
        count += 1
        if record.modified is not None and (newest is None or record.modified > newest):
            newest = record.modified
        advisory = record.advisory
        if advisory.withdrawn:
            withdrawn += 1
            continue
        for entry in advisory.affected:
            index.setdefault((entry.ecosystem, entry.name), []).append((advisory, entry))
    return Database(index, digest.hexdigest(), count, withdrawn, newest, tuple(sources))


def timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time (`modified`, `published`) in UTC; None when it is none, has no
    offset, or is Go's zero time `0001-01-01T00:00:00Z` (what Go's vulndb repository writes
    for "not set": vuln.go.dev fills the real times in)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.year <= 1:
        return None
    return parsed.astimezone(UTC)


# -- reading -------------------------------------------------------------------------------


def source_files(paths: Iterable[Path]) -> list[tuple[str, Path]]:
    """The files `paths` stand for, in the order they are read: ("zip", an `all.zip`) or
    ("json", a loose record). A directory holding `*/all.zip` is those archives (osv-scanner's
    offline layout), else one holding `all.zip` is that archive (one ecosystem's directory),
    else its `*.json` files are records."""
    found: list[tuple[str, Path]] = []
    for path in paths:
        if not path.is_dir():
            found.append(("zip", path))
            continue
        zips = sorted(path.glob("*/all.zip"))
        if zips:
            found += [("zip", z) for z in zips]
        elif (path / "all.zip").exists():
            found.append(("zip", path / "all.zip"))
        else:
            try:
                names = sorted(os.listdir(path))
            except OSError as e:
                raise DatabaseError(f"cannot list {path}: {e.strerror or e}") from None
            found += [("json", path / name) for name in names if name.endswith(".json")]
    return found


def content_digest(paths: Iterable[Path]) -> str:
    """The sha256 of the files `paths` stand for, as `Reader.content` gives it after a
    read, without parsing anything (what an index of the database is keyed by)."""
    content = hashlib.sha256()
    for kind, path in source_files(paths):
        with open_regular(path, _WHAT[kind], DatabaseError) as f:
            content.update(kind.encode() + b":" + _file_sha256(f, path, _LIMIT[kind]))
    return content.hexdigest()


_WHAT = {"zip": "OSV database (all.zip)", "json": "OSV record"}
_LIMIT = {"zip": MAX_ARCHIVE_BYTES, "json": MAX_RECORD_BYTES}


class Reader:
    """The records in `paths`, each file read once; after the iteration, `content` is the
    sha256 of the files the records came from (`content_digest`), so what was parsed and
    what it is keyed by cannot differ even if the files change meanwhile."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = tuple(paths)
        self._content = hashlib.sha256()
        self._done = False

    @property
    def content(self) -> str:
        if not self._done:
            raise RuntimeError("the content digest is known once every record is read")
        return self._content.hexdigest()

    def __iter__(self) -> Iterator[Record]:
        from wasmctl import _json

        for count, (where, raw) in enumerate(self._raw(), start=1):
            if count > MAX_RECORDS:
                raise DatabaseError(f"more than {MAX_RECORDS} OSV records")
            document = _json.loads(raw, where, DatabaseError)
            advisory = Advisory.from_json(document, where)
            modified = timestamp(document.get("modified"))
            yield Record(raw, hashlib.sha256(raw).digest(), advisory, modified)
        self._done = True

    def _raw(self) -> Iterator[tuple[str, bytes]]:
        for kind, path in source_files(self.paths):
            if kind == "zip":
                yield from self._zip_records(path)
                continue
            with open_regular(path, "OSV record", DatabaseError) as f:
                raw = f.read(MAX_RECORD_BYTES + 1)
            if len(raw) > MAX_RECORD_BYTES:
                raise DatabaseError(f"{path}: an OSV record over 4 MiB")
            self._content.update(b"json:" + hashlib.sha256(raw).digest())
            yield str(path), raw

    def _zip_records(self, archive: Path) -> Iterator[tuple[str, bytes]]:
        with open_regular(archive, "OSV database (all.zip)", DatabaseError) as f:
            self._content.update(b"zip:" + _file_sha256(f, archive, MAX_ARCHIVE_BYTES))
            f.seek(0)
            try:
                with zipfile.ZipFile(f) as zipped:
                    yield from _members(archive, zipped)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
                raise DatabaseError(f"{archive}: not a readable zip archive: {e}") from None


def _file_sha256(f: BinaryIO, path: Path, limit: int) -> bytes:
    digest = hashlib.sha256()
    size = 0
    while piece := f.read(1 << 20):
        size += len(piece)
        if size > limit:
            raise DatabaseError(f"{path} is larger than {limit} bytes")
        digest.update(piece)
    return digest.digest()


def _members(archive: Path, zipped: zipfile.ZipFile) -> Iterator[tuple[str, bytes]]:
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


__all__ = [
    "Advisory",
    "Affected",
    "Database",
    "DatabaseError",
    "Reader",
    "Record",
    "VersionError",
    "build",
    "content_digest",
    "load",
    "source_files",
    "timestamp",
]
