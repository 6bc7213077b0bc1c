"""Where the offline OSV database lives, its update, its age, and its persistent index.

- Location: `<cache>/wasmctl/osv/<Ecosystem>/all.zip`, osv-scanner's offline layout, under
  the user's cache directory (`default_dir`); `--db DIR` names another one, in that layout or
  a directory of loose OSV JSON records (`locate`). Beside each `all.zip`, `metadata.json`
  says where it came from and what it was (ETag, Last-Modified, source, times, sha256).
- Update (`update`): `<source>/<Ecosystem>/all.zip` from osv.dev's public bucket or a mirror
  (http(s), or `file://`), fetched only when it changed (If-None-Match / If-Modified-Since),
  streamed to a temporary file beside the old one under a size bound, verified (the bucket's
  `X-Goog-Hash` md5 when given; the archive opens and every record parses; at least one),
  made durable and renamed over the old copy; the metadata follows, also atomically.
  Whatever fails leaves the old database and its metadata as they were, and no temporary
  file behind. One update of an ecosystem at a time (a lock file beside it); readers never
  wait, a rename is atomic.
- Age (`check_age`): the newest record's `modified`, against `--max-db-age`.
- Index (`load`): the first load of a database content writes an SQLite index under
  `<cache>/wasmctl/osv-index/`, keyed by the sha256 of the files read; a later load of the
  same content only hashes the files and opens the index, and reads the records of a package
  when it is asked for. The index holds the records' own bytes (with their sha256) and
  which packages they name: no pickle, nothing it holds is code; its schema, its summary and
  every record are checked as they are read, and anything amiss falls back to reading the
  database itself.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import sqlite3
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from wasmctl import __version__, _json
from wasmctl._files import create_mode, open_regular, replace_atomically
from wasmctl.audit import osv
from wasmctl.audit.osv import Advisory, Affected, Database, DatabaseError
from wasmctl.errors import InputError, RemoteError

if TYPE_CHECKING:  # httpx is loaded by an update only: an audit reads the database alone
    import httpx

DEFAULT_SOURCE = "https://osv-vulnerabilities.storage.googleapis.com"
DEFAULT_ECOSYSTEMS = ("crates.io", "Go")
UPDATE_COMMAND = "wasmctl audit db update"
ARCHIVE = "all.zip"
METADATA = "metadata.json"
LOCK = ".lock"
MAX_DOWNLOAD_BYTES = 1 << 30
MAX_METADATA_BYTES = 64 << 10
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CONNECT_TIMEOUT = 15.0  # seconds
READ_TIMEOUT = 30.0  # seconds without a byte
DEADLINE = 60.0  # seconds for a download, plus one per MIN_RATE bytes moved
MIN_RATE = 16 * 1024  # bytes per second
LOCK_WAIT = 300.0  # seconds to wait for another update of the same ecosystem
INDEX_FORMAT = 1
INDEX_KEEP = 4  # indexes kept (the most recently used): one per database content
MAX_INDEX_ROW = 8 << 20

# -- where it lives ------------------------------------------------------------------------


def cache_root(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """wasmctl's directory in the user's cache directory: `$XDG_CACHE_HOME/wasmctl` (an
    absolute XDG_CACHE_HOME only, as the XDG spec says), else `~/.cache/wasmctl`; on macOS
    `~/Library/Caches/wasmctl`; on Windows `%LOCALAPPDATA%\\wasmctl\\Cache`."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform == "win32":
        local = env.get("LOCALAPPDATA", "")
        base = Path(local) if local else _home(env) / "AppData" / "Local"
        return base / "wasmctl" / "Cache"
    if platform == "darwin":
        return _home(env) / "Library" / "Caches" / "wasmctl"
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else _home(env) / ".cache"
    return base / "wasmctl"


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or env.get("USERPROFILE")
    if home:
        return Path(home)
    try:
        return Path.home()
    except RuntimeError:
        raise InputError(
            "cannot tell where the user's cache directory is: HOME is not set",
            hint="set HOME (or XDG_CACHE_HOME), or give --db DIR",
        ) from None


def default_dir() -> Path:
    """Where `wasmctl audit db update` puts the database, and `audit` looks without `--db`."""
    return cache_root() / "osv"


def index_dir() -> Path:
    """Where the indexes of database contents are kept."""
    return cache_root() / "osv-index"


# -- locating ------------------------------------------------------------------------------


class DatabaseMissing(InputError):
    """No database where one was looked for; the hint is the command that fetches one."""


def locate(db: Path | None = None) -> list[Path]:
    """The paths to load: `db` (`--db`: a directory of `<Ecosystem>/all.zip`, one
    ecosystem's directory, a directory of loose OSV `*.json` records, or an `all.zip`), else
    the default directory. Nothing there is `DatabaseMissing` (exit 2)."""
    directory = default_dir() if db is None else db
    if db is None:
        fix = f"fetch it with `{UPDATE_COMMAND}` (crates.io and Go, from osv.dev), or give --db DIR"
    else:
        fix = (
            f"fetch one there with `{UPDATE_COMMAND} --db {shlex.quote(str(db))}`, or point "
            "--db at a directory of <ECOSYSTEM>/all.zip or of OSV .json records"
        )
    if not directory.exists():
        raise DatabaseMissing(f"no OSV database at {directory}: it does not exist", hint=fix)
    if directory.is_dir() and not osv.source_files([directory]):
        raise DatabaseMissing(
            f"no OSV database at {directory}: it holds no <ECOSYSTEM>/all.zip and no .json records",
            hint=fix,
        )
    return [directory]


def files(db: Path | None = None) -> list[Path]:
    """The files the database at `db` (or the default one) is read from now: what to watch
    for a change (a missing database is `DatabaseMissing`)."""
    return [path for _, path in osv.source_files(locate(db))]


def load(db: Path | None = None, *, index: Path | Literal[False] | None = None) -> Database:
    """The database at `db` (`--db`) or the default place, through its index: `index` is
    the directory of indexes (default `index_dir()`), or False to read without one."""
    paths = locate(db)
    if index is False:
        return osv.load(paths)
    return load_indexed(paths, index)


# -- age -----------------------------------------------------------------------------------


class DatabaseStale(RemoteError):
    """The database is older than allowed, or says nothing of its age (exit 3)."""


_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w`: a positive whole number and one unit (minutes, hours,
    days, weeks); anything else is an InputError."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise InputError(
            f"{str(text)[:40]!r} is not a duration",
            hint="write a positive whole number and a unit, m (minutes), h, d or w: "
            "30m, 12h, 7d, 2w",
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def check_age(database: Database, max_age: timedelta, now: datetime | None = None) -> None:
    """Raise `DatabaseStale` when the newest record of `database` is older than `max_age`
    at `now` (default: the present), or when no record says when it was modified."""
    now = datetime.now(UTC) if now is None else now
    fix = _refresh_hint(database)
    age = database.age(now)
    if age is None or database.newest is None:
        raise DatabaseStale(
            f"the OSV database's age is unknown: none of its {database.records} records "
            "says when it was modified, so --max-db-age cannot be met",
            hint=fix,
        )
    if age > max_age:
        raise DatabaseStale(
            f"the OSV database is {describe(age)} old (its newest record was modified "
            f"{database.newest:%Y-%m-%dT%H:%M:%SZ}), older than the {describe(max_age)} "
            "allowed",
            hint=fix,
        )


def describe(delta: timedelta) -> str:
    """`9 days 3 hours`, `5 hours 10 minutes`, `4 minutes`: the two largest units."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    shown = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n][:2]
    return " ".join(shown) or "less than a minute"


def _refresh_hint(database: Database) -> str:
    sources = database.sources
    if not sources:
        return f"refresh it with `{UPDATE_COMMAND}`"
    if list(sources) == [default_dir()]:
        return f"refresh it with `{UPDATE_COMMAND}`"
    if (
        len(sources) == 1
        and sources[0].is_dir()
        and any(kind == "zip" for kind, _ in osv.source_files(sources))
    ):
        return f"refresh it with `{UPDATE_COMMAND} --db {shlex.quote(str(sources[0]))}`"
    return "refresh the records in " + ", ".join(str(s) for s in sources)


# -- update --------------------------------------------------------------------------------


class UpdateError(RemoteError):
    """An update failed; the old database and its metadata are as they were (exit 3).
    `completed` holds the ecosystems updated before the one that failed."""

    completed: tuple[UpdateResult, ...] = ()


class DownloadError(UpdateError):
    """The source could not be reached, answered with an error, broke off, or redirected
    where it may not."""


class CorruptDownload(UpdateError):
    """What the source sent is not a usable database: too large, a hash that does not
    match, not a zip archive, a record that does not parse, or no records."""


@dataclass(frozen=True)
class UpdateResult:
    ecosystem: str
    status: Literal["downloaded", "not-modified"]
    sha256: str  # of the all.zip now in place
    bytes: int
    records: int


@dataclass(frozen=True)
class Metadata:
    """What `metadata.json` beside an `all.zip` says of it."""

    ecosystem: str
    source: str  # the URL it came from (no user:password)
    sha256: str
    bytes: int
    records: int
    fetched: datetime  # when these bytes arrived
    checked: datetime  # when the source last said they are current
    etag: str | None = None
    last_modified: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "ecosystem": self.ecosystem,
            "source": self.source,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "fetched": _rfc3339(self.fetched),
            "checked": _rfc3339(self.checked),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "records": self.records,
        }

    @classmethod
    def from_json(cls, document: Any) -> Metadata | None:
        """The metadata, or None for anything that does not fit (it is then ignored: the
        next update downloads unconditionally)."""
        if not isinstance(document, dict) or document.get("format") != 1:
            return None
        text = {k: document.get(k) for k in ("ecosystem", "source", "sha256")}
        numbers = {k: document.get(k) for k in ("bytes", "records")}
        optional = {k: document.get(k) for k in ("etag", "last_modified")}
        fetched = osv.timestamp(document.get("fetched"))
        checked = osv.timestamp(document.get("checked"))
        if (
            not all(isinstance(v, str) for v in text.values())
            or not all(type(v) is int and v >= 0 for v in numbers.values())
            or not all(v is None or _header_value(v) is not None for v in optional.values())
            or not re.fullmatch(r"[0-9a-f]{64}", str(text["sha256"]))
            or fetched is None
            or checked is None
        ):
            return None
        return cls(
            ecosystem=str(text["ecosystem"]),
            source=str(text["source"]),
            sha256=str(text["sha256"]),
            bytes=int(numbers["bytes"] or 0),
            records=int(numbers["records"] or 0),
            fetched=fetched,
            checked=checked,
            etag=optional["etag"],
            last_modified=optional["last_modified"],
        )


def read_metadata(directory: Path, ecosystem: str) -> Metadata | None:
    """The metadata of `<directory>/<ecosystem>/all.zip`, None when there is none usable."""
    path = directory / check_ecosystem(ecosystem) / METADATA
    try:
        with open_regular(path, "database metadata") as f:
            raw = f.read(MAX_METADATA_BYTES + 1)
    except (InputError, OSError):
        return None
    if len(raw) > MAX_METADATA_BYTES:
        return None
    try:
        return Metadata.from_json(_json.loads(raw, str(path)))
    except InputError:
        return None


# OSV's names: crates.io, Go, PyPI, npm, Maven, GitHub Actions, Debian:12, Alpine:v3.19...
# As a directory name: no separators, no `..`, no leading dot, nothing unprintable.
_ECOSYSTEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:+-]{0,63}")


def check_ecosystem(name: str) -> str:
    """`name` if it can name an ecosystem's directory and URL; else an InputError."""
    if (
        not _ECOSYSTEM.fullmatch(name)
        or ".." in name
        or name.endswith((" ", "."))
        or (os.name == "nt" and ":" in name)
    ):
        raise InputError(
            f"{str(name)[:80]!r} is not an OSV ecosystem name",
            hint="use OSV's names, as they are spelt: crates.io, Go, PyPI, npm",
        )
    return name


def update(
    directory: Path,
    ecosystems: Iterable[str] = DEFAULT_ECOSYSTEMS,
    source: str = DEFAULT_SOURCE,
    *,
    client: httpx.Client | None = None,
) -> list[UpdateResult]:
    """Fetch `<source>/<Ecosystem>/all.zip` into `<directory>/<Ecosystem>/` for each
    ecosystem, when it changed. `source`: http(s) (redirects followed to https, or within
    the source's own origin) or a `file://` directory. `client`: the httpx client to use
    (its transport is the test seam); one is made otherwise. Failures are `UpdateError`s
    (exit 3) and leave that ecosystem's old database in place; ecosystems updated before
    it stay updated (`completed`)."""
    if isinstance(ecosystems, str):
        ecosystems = (ecosystems,)
    names = [check_ecosystem(e) for e in dict.fromkeys(ecosystems)]
    if not names:
        raise InputError("no ecosystem to update", hint="e.g. --ecosystem crates.io")
    base = _check_source(source)
    own = client is None and not base.startswith("file:")
    http = _client() if client is None and own else client
    results: list[UpdateResult] = []
    try:
        for name in names:
            try:
                results.append(_update_one(directory, name, base, http))
            except UpdateError as e:
                e.completed = tuple(results)
                raise
    finally:
        if own and http is not None:
            http.close()
    return results


def _client() -> httpx.Client:
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,  # followed by `_get`, which decides where to
        headers={"User-Agent": f"wasmctl/{__version__}"},
    )


def _check_source(source: str) -> str:
    """The source URL without a trailing slash: http(s) with a host, or file:// naming an
    absolute path; no query or fragment (the ecosystem's path is appended)."""
    try:
        parts = urlsplit(source)
    except ValueError:
        parts = None
    bad = (
        parts is None
        or parts.scheme not in ("http", "https", "file")
        or bool(parts.query or parts.fragment)
        or (parts.scheme != "file" and not parts.hostname)
        or (parts.scheme == "file" and parts.netloc not in ("", "localhost"))
        or (parts.scheme == "file" and not parts.path.startswith("/"))
    )
    if bad:
        raise InputError(
            f"--source must be an http(s):// URL or a file:// directory, not {_redact(source)!r}",
            hint=f"osv.dev's bucket is {DEFAULT_SOURCE}",
        )
    return source.rstrip("/")


def _redact(url: str) -> str:
    """`url` without user:password, query or fragment (for messages and metadata)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(a malformed URL)"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _update_one(
    directory: Path, ecosystem: str, base: str, http: httpx.Client | None
) -> UpdateResult:
    folder = directory / ecosystem
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UpdateError(f"cannot create {folder}: {e.strerror or e}") from None
    url = f"{base}/{quote(ecosystem, safe='')}/{ARCHIVE}"
    with _locked(folder):
        _remove_temporaries(folder)
        target = folder / ARCHIVE
        metadata = read_metadata(directory, ecosystem)
        if metadata is not None and _sha256_of(target) != metadata.sha256:
            metadata = None  # the archive is not what the metadata describes: start over
        now = datetime.now(UTC)
        arrived: _Arrived | None
        if url.startswith("file:"):
            arrived = _copy_local(url, folder)
        else:
            assert http is not None
            arrived = _download(http, url, ecosystem, folder, metadata)
        if arrived is None:  # 304: what we have is current
            assert metadata is not None
            _write_metadata(folder, _renewed(metadata, now, None, None))
            return UpdateResult(
                ecosystem, "not-modified", metadata.sha256, metadata.bytes, metadata.records
            )
        try:
            if metadata is not None and arrived.sha256 == metadata.sha256:
                # the bytes we have (verified when this metadata was written), sent again
                _write_metadata(folder, _renewed(metadata, now, arrived.etag, arrived.modified))
                return UpdateResult(
                    ecosystem, "not-modified", metadata.sha256, metadata.bytes, metadata.records
                )
            records = _verify(arrived, ecosystem, url)
            try:
                os.chmod(arrived.path, create_mode())
                os.replace(arrived.path, target)
            except OSError as e:
                raise UpdateError(f"cannot write {target}: {e.strerror or e}") from None
            _sync_directory(folder)
        finally:
            arrived.path.unlink(missing_ok=True)
        # A failure from here on leaves the new archive with the old metadata: its sha256
        # no longer matches, so the next update downloads without conditions.
        _write_metadata(
            folder,
            Metadata(
                ecosystem=ecosystem,
                source=_redact(url),
                sha256=arrived.sha256,
                bytes=arrived.size,
                records=records,
                fetched=now,
                checked=now,
                etag=arrived.etag,
                last_modified=arrived.modified,
            ),
        )
        return UpdateResult(ecosystem, "downloaded", arrived.sha256, arrived.size, records)


def _renewed(metadata: Metadata, now: datetime, etag: str | None, modified: str | None) -> Metadata:
    return Metadata(
        ecosystem=metadata.ecosystem,
        source=metadata.source,
        sha256=metadata.sha256,
        bytes=metadata.bytes,
        records=metadata.records,
        fetched=metadata.fetched,
        checked=now,
        etag=etag or metadata.etag,
        last_modified=modified or metadata.last_modified,
    )


def _write_metadata(folder: Path, metadata: Metadata) -> None:
    import json

    text = json.dumps(metadata.to_json(), indent=2) + "\n"
    replace_atomically(folder / METADATA, text.encode(), fsync=True, error=UpdateError)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One update of an ecosystem's directory at a time (another waits, up to LOCK_WAIT)."""
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as e:
        raise UpdateError(f"cannot create {path}: {e.strerror or e}") from None
    try:
        waited_until = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > waited_until:
                    raise UpdateError(
                        f"another update of {folder} has held {path} for {LOCK_WAIT:g} s",
                        hint="wait for it to end, or stop it",
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_temporaries(folder: Path) -> None:
    """Temporary files a killed update left (none can be live: we hold the lock)."""
    for pattern in (f".{ARCHIVE}.*.tmp", f".{METADATA}.*.tmp"):
        for path in folder.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open_regular(path, "OSV database (all.zip)") as f:
            while piece := f.read(1 << 20):
                digest.update(piece)
    except (InputError, OSError):
        return None
    return digest.hexdigest()


def _sync_directory(folder: Path) -> None:
    """Make the rename durable (where the file system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Arrived:
    path: Path  # the temporary file
    sha256: str
    size: int
    etag: str | None = None
    modified: str | None = None


class _Sink:
    """A temporary file beside the database, filled with a size bound and hashed."""

    def __init__(self, folder: Path, what: str) -> None:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{ARCHIVE}.", suffix=".tmp", dir=folder)
        except OSError as e:
            raise UpdateError(f"cannot write in {folder}: {e.strerror or e}") from None
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.what = what
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > MAX_DOWNLOAD_BYTES:
            raise CorruptDownload(f"{self.what} is larger than {MAX_DOWNLOAD_BYTES} bytes")
        self.sha256.update(piece)
        self.md5.update(piece)
        try:
            self.file.write(piece)
        except OSError as e:
            raise UpdateError(
                f"cannot write {self.path.parent}: {e.strerror or e}",
                hint="the old database is unchanged; free some space and try again",
            ) from None

    def finish(self, etag: str | None = None, modified: str | None = None) -> _Arrived:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        except OSError as e:
            raise UpdateError(
                f"cannot write {self.path.parent}: {e.strerror or e}",
                hint="the old database is unchanged; free some space and try again",
            ) from None
        return _Arrived(self.path, self.sha256.hexdigest(), self.size, etag, modified)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.path.unlink(missing_ok=True)


def _copy_local(url: str, folder: Path) -> _Arrived:
    from urllib.request import url2pathname  # 20 ms to import: only for file:// mirrors

    path = Path(url2pathname(unquote(urlsplit(url).path)))
    sink = _Sink(folder, str(path))
    try:
        with open_regular(path, "OSV database (all.zip)", DownloadError) as f:
            try:
                while piece := f.read(1 << 20):
                    sink.write(piece)
            except OSError as e:
                raise DownloadError(f"cannot read {path}: {e.strerror or e}") from None
        return sink.finish()
    except BaseException:
        sink.discard()
        raise


def _download(
    http: httpx.Client, url: str, ecosystem: str, folder: Path, metadata: Metadata | None
) -> _Arrived | None:
    """The archive at `url` in a temporary file, or None when the source says ours is
    current (304)."""
    headers = {"Accept-Encoding": "identity"}
    if metadata is not None and metadata.source == _redact(url):
        if metadata.etag:
            headers["If-None-Match"] = metadata.etag
        if metadata.last_modified:
            headers["If-Modified-Since"] = metadata.last_modified
    response, final = _get(http, url, headers)
    try:
        if response.status_code == 304:
            if len(headers) == 1:
                raise DownloadError(
                    f"GET {_redact(final)}: 304 Not Modified to a request without conditions"
                )
            return None
        if response.status_code != 200:
            raise DownloadError(
                f"GET {_redact(final)}: {response.status_code} {response.reason_phrase}",
                hint=f"is {ecosystem!r} an OSV ecosystem (the names are case-sensitive: "
                "crates.io, Go), and --source a copy of osv.dev's bucket?"
                if response.status_code in (403, 404)
                else "the old database is unchanged; try again later",
            )
        return _receive(response, final, folder)
    finally:
        response.close()


def _get(http: httpx.Client, url: str, headers: dict[str, str]) -> tuple[httpx.Response, str]:
    """A streamed GET, redirects followed by hand: to https anywhere, or within the
    source's own origin (a mirror may not send us to plain http elsewhere, to file:, or to
    a URL with credentials in it), at most MAX_REDIRECTS hops, no loops."""
    import httpx

    origin = _origin(url)
    current = url
    seen = {url}
    for hop in range(MAX_REDIRECTS + 1):
        try:
            request = http.build_request("GET", current, headers=headers)
            response = http.send(request, stream=True, follow_redirects=False)
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise DownloadError(
                f"GET {_redact(current)}: {type(e).__name__}: {e}",
                hint="is the source reachable? the old database is unchanged",
            ) from None
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response, current
        response.close()
        target = urljoin(current, location)
        try:
            parts = urlsplit(target)
            allowed = (parts.scheme == "https" or _origin(target) == origin) and not (
                parts.username or parts.password
            )
        except ValueError:
            allowed = False
        if not allowed:
            raise DownloadError(
                f"GET {_redact(current)}: a redirect to {_redact(target)} was refused",
                hint="redirects are followed to https, or within the source's own origin",
            )
        if target in seen or hop == MAX_REDIRECTS:
            raise DownloadError(f"GET {_redact(url)}: a redirect loop, or too many redirects")
        seen.add(target)
        current = target
    raise AssertionError("unreachable")  # pragma: no cover


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _receive(response: httpx.Response, url: str, folder: Path) -> _Arrived:
    import httpx

    what = f"GET {_redact(url)}"
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_DOWNLOAD_BYTES:
        raise CorruptDownload(
            f"{what}: {declared} bytes declared, over the {MAX_DOWNLOAD_BYTES >> 20} MiB bound"
        )
    md5 = _goog_md5(response.headers, what)
    sink = _Sink(folder, what)
    started = time.monotonic()
    try:
        try:
            for piece in response.iter_bytes():
                sink.write(piece)
                if time.monotonic() - started > DEADLINE + sink.size / MIN_RATE:
                    raise DownloadError(
                        f"{what}: too slow ({sink.size} bytes in "
                        f"{time.monotonic() - started:.0f} s)",
                        hint="the old database is unchanged; try again later",
                    )
        except (httpx.HTTPError, httpx.StreamError) as e:
            raise DownloadError(
                f"{what}: the download broke off after {sink.size} bytes ({type(e).__name__})",
                hint="the old database is unchanged; try again",
            ) from None
        if md5 is not None and sink.md5.digest() != md5:
            raise CorruptDownload(
                f"{what}: the bytes do not match the md5 in X-Goog-Hash "
                f"({base64.b64encode(sink.md5.digest()).decode()} received, "
                f"{base64.b64encode(md5).decode()} announced)",
                hint="the download was damaged; the old database is unchanged; try again",
            )
        return sink.finish(
            _header_value(response.headers.get("ETag")),
            _header_value(response.headers.get("Last-Modified")),
        )
    except BaseException:
        sink.discard()
        raise


def _goog_md5(headers: httpx.Headers, what: str) -> bytes | None:
    """The md5 of the object that Google Cloud Storage announces (`X-Goog-Hash:
    crc32c=...,md5=...`, base64), when it applies to the bytes as they arrive: not for an
    object stored compressed and decompressed on the way (its hashes are of the stored
    bytes). crc32c is not checked: the standard library has no CRC-32C."""
    encodings = (
        headers.get("Content-Encoding", "identity"),
        headers.get("X-Goog-Stored-Content-Encoding", "identity"),
    )
    if any(e.strip().lower() not in ("", "identity") for e in encodings):
        return None
    for value in headers.get_list("X-Goog-Hash", split_commas=True):
        kind, _, encoded = value.strip().partition("=")
        if kind.strip().lower() != "md5":
            continue
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            digest = b""
        if len(digest) != 16:
            raise CorruptDownload(f"{what}: X-Goog-Hash carries a malformed md5")
        return digest
    return None


def _header_value(value: Any) -> str | None:
    """A header worth keeping (an ETag, a date): printable ASCII, not too long."""
    if not isinstance(value, str) or not 0 < len(value) <= 1024:
        return None
    return value if all(" " <= c <= "~" for c in value) else None


def _verify(arrived: _Arrived, ecosystem: str, url: str) -> int:
    """The records in the archive that arrived, each parsed as an audit reads it: a
    `CorruptDownload` naming what is wrong, or their number."""
    what = f"{ecosystem} from {_redact(url)}"
    try:
        database = osv.load([arrived.path])
    except DatabaseError as e:
        message = e.message.replace(str(arrived.path), ARCHIVE)
        raise CorruptDownload(
            f"{what} is not a usable OSV database: {message}",
            hint="the old database is unchanged; is --source a copy of osv.dev's bucket?",
        ) from None
    if database.records == 0:
        raise CorruptDownload(f"{what} holds no OSV records", hint="the old database is unchanged")
    if database.records > database.withdrawn and not any(
        e == ecosystem or e.startswith(ecosystem + ":") for e, _ in database.advisories
    ):
        raise CorruptDownload(
            f"{what} holds no record of the ecosystem {ecosystem}",
            hint="the old database is unchanged; is the mirror serving the wrong file?",
        )
    return database.records


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the index -----------------------------------------------------------------------------

_SCHEMA = (
    "CREATE TABLE meta (document TEXT NOT NULL)",
    "CREATE TABLE records (seq INTEGER PRIMARY KEY, sha256 BLOB NOT NULL, raw BLOB)",
    "CREATE TABLE packages (ecosystem TEXT NOT NULL, name TEXT NOT NULL, "
    "seq INTEGER NOT NULL, PRIMARY KEY (ecosystem, name, seq)) WITHOUT ROWID",
)
_LOOKUP = (
    "SELECT r.seq, r.sha256, r.raw FROM packages AS p JOIN records AS r ON r.seq = p.seq "
    "WHERE p.ecosystem = ? AND p.name = ? ORDER BY p.seq"
)


class _Corrupt(Exception):
    """Something in an index is not as it was written."""


def load_indexed(paths: Sequence[Path], directory: Path | None = None) -> Database:
    """The database in `paths` (as `osv.load` reads them), through the index of its
    content in `directory` (default `index_dir()`): opened when there is one, else written
    as the records are read. An index that cannot be written or read is no error: the
    database is then read in full."""
    paths = list(paths)
    try:
        directory = index_dir() if directory is None else directory
    except InputError:
        return osv.load(paths)
    if not _private_directory(directory):
        return osv.load(paths)
    path = directory / f"{_index_key(osv.content_digest(paths))}.sqlite"
    opened = _open_index(path, paths)
    if opened is not None:
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept by `_prune`
        return opened
    return _load_and_index(paths, directory)


def _index_key(content: str) -> str:
    """The name of an index: the database content, the index format and wasmctl's version
    (a new version may read records differently)."""
    text = f"wasmctl-osv-index:{INDEX_FORMAT}:{__version__}:{content}"
    return hashlib.sha256(text.encode()).hexdigest()


def _private_directory(directory: Path) -> bool:
    """Whether `directory` exists (made if not) and only this user can write in it: an
    index is trusted as far as its directory is."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.lstat()
    except OSError:
        return False
    if not hasattr(os, "getuid"):
        return directory.is_dir()
    return (
        directory.is_dir()
        and not directory.is_symlink()
        and status.st_uid == os.getuid()
        and not status.st_mode & 0o022
    )


@cache
def _expected_schema() -> frozenset[tuple[str, str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        for statement in _SCHEMA:
            connection.execute(statement)
        return frozenset(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))


def _open_index(path: Path, paths: Sequence[Path]) -> Database | None:
    """The database an index holds, its summary checked against its rows; None for a
    missing, unreadable or inconsistent index."""
    try:
        status = path.stat()
    except OSError:
        return None
    if hasattr(os, "getuid") and status.st_uid != os.getuid():
        return None
    connection: sqlite3.Connection | None = None
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_INDEX_ROW)
        connection.execute("PRAGMA trusted_schema = OFF")
        connection.execute("PRAGMA query_only = ON")
        schema = frozenset(
            connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        )
        if schema != _expected_schema():
            raise _Corrupt("schema")
        meta = connection.execute("SELECT document FROM meta").fetchall()
        if len(meta) != 1 or not isinstance(meta[0][0], str):
            raise _Corrupt("meta")
        summary = _json.loads(meta[0][0], str(path), DatabaseError)
        if not isinstance(summary, dict) or summary.get("key") != path.stem:
            raise _Corrupt("key")
        records, withdrawn = summary.get("records"), summary.get("withdrawn")
        newest = summary.get("newest")
        if (
            type(records) is not int
            or type(withdrawn) is not int
            or not 0 <= withdrawn <= records <= osv.MAX_RECORDS
            or not (newest is None or osv.timestamp(newest) is not None)
        ):
            raise _Corrupt("summary")
        digest = hashlib.sha256()
        count = gone = 0
        for seq, sha256, absent in connection.execute(
            "SELECT seq, sha256, raw IS NULL FROM records ORDER BY seq"
        ):
            if seq != count or not isinstance(sha256, bytes) or len(sha256) != 32:
                raise _Corrupt("records")
            digest.update(sha256)
            count += 1
            gone += bool(absent)
        if (count, gone) != (records, withdrawn) or digest.hexdigest() != summary.get("digest"):
            raise _Corrupt("digest")
    except (sqlite3.Error, _Corrupt, DatabaseError, OSError, ValueError):
        if connection is not None:
            connection.close()
        return None
    return Database(
        IndexedAdvisories(connection, path, paths, digest.hexdigest()),
        digest.hexdigest(),
        records,
        withdrawn,
        osv.timestamp(newest),
        tuple(paths),
    )


class IndexedAdvisories(Mapping[tuple[str, str], list[tuple[Advisory, Affected]]]):
    """A database's advisories by (ecosystem, package name), read from its index when a
    package is first asked for. Each record is checked against its sha256 and parsed as
    `osv` parses it; anything amiss and the database itself is read instead (once, and
    only if it still has the content the index was made from). Safe across threads."""

    def __init__(
        self, connection: sqlite3.Connection, path: Path, paths: Sequence[Path], digest: str
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._path = path
        self._paths = tuple(paths)
        self._digest = digest
        self._lock = threading.Lock()
        self._found: dict[tuple[str, str], list[tuple[Advisory, Affected]]] = {}
        self._parsed: dict[int, Advisory] = {}
        self._full: Mapping[tuple[str, str], list[tuple[Advisory, Affected]]] | None = None

    def __getitem__(self, key: tuple[str, str]) -> list[tuple[Advisory, Affected]]:
        given: Any = key  # a Mapping is asked for anything
        if not (
            isinstance(given, tuple) and len(given) == 2 and all(isinstance(k, str) for k in given)
        ):
            raise KeyError(key)
        with self._lock:
            if self._full is None and key not in self._found:
                try:
                    self._found[key] = self._read(key)
                except (sqlite3.Error, _Corrupt, DatabaseError, zlib.error, ValueError):
                    self._fall_back()
            found = self._full.get(key, []) if self._full is not None else self._found[key]
        if not found:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def _keys(self) -> list[tuple[str, str]]:
        with self._lock:
            if self._full is None:
                try:
                    assert self._connection is not None
                    rows = self._connection.execute(
                        "SELECT DISTINCT ecosystem, name FROM packages ORDER BY ecosystem, name"
                    ).fetchall()
                    return [(str(e), str(n)) for e, n in rows]
                except sqlite3.Error:
                    self._fall_back()
            assert self._full is not None
            return list(self._full)

    def _read(self, key: tuple[str, str]) -> list[tuple[Advisory, Affected]]:
        assert self._connection is not None
        found: list[tuple[Advisory, Affected]] = []
        for seq, sha256, raw in self._connection.execute(_LOOKUP, key).fetchall():
            advisory = self._parsed.get(seq)
            if advisory is None:
                advisory = self._parsed[seq] = self._parse(seq, sha256, raw)
            entries = [e for e in advisory.affected if (e.ecosystem, e.name) == key]
            if not entries:
                raise _Corrupt(f"record {seq} does not name {key}")
            found += [(advisory, entry) for entry in entries]
        return found

    def _parse(self, seq: int, sha256: Any, raw: Any) -> Advisory:
        if not isinstance(raw, bytes) or not isinstance(sha256, bytes):
            raise _Corrupt(f"record {seq}")
        inflate = zlib.decompressobj()
        text = inflate.decompress(raw, osv.MAX_RECORD_BYTES + 1)
        if len(text) > osv.MAX_RECORD_BYTES or not inflate.eof:
            raise _Corrupt(f"record {seq} is too large or cut short")
        if hashlib.sha256(text).digest() != sha256:
            raise _Corrupt(f"record {seq} does not match its sha256")
        where = f"{self._path}: record {seq}"
        advisory = Advisory.from_json(_json.loads(text, where, DatabaseError), where)
        if advisory.withdrawn:
            raise _Corrupt(f"record {seq} is withdrawn")
        return advisory

    def _fall_back(self) -> None:
        """Read the database itself; the broken index goes (the next load writes it anew)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        with contextlib.suppress(OSError):
            self._path.unlink()
        full = osv.load(self._paths)
        if full.digest != self._digest:
            raise DatabaseError(
                f"the OSV database in {', '.join(map(str, self._paths))} changed while it "
                "was in use",
                hint="load it again",
            )
        self._full = full.advisories


def _load_and_index(paths: Sequence[Path], directory: Path) -> Database:
    reader = osv.Reader(paths)
    writer = _IndexWriter.start(directory)
    if writer is None:
        return osv.build(reader, paths)
    try:
        database = osv.build(writer.keep(reader), paths)
    except BaseException:
        writer.abandon()
        raise
    writer.finish(_index_key(reader.content), database)
    return database


class _IndexWriter:
    """An index written as the records are read: into a temporary file in the index
    directory, renamed to its key when complete (a reader sees a whole index or none; two
    writers of one content write the same file). Failing to write is never an error."""

    def __init__(self, directory: Path, path: Path, connection: sqlite3.Connection) -> None:
        self.directory = directory
        self.path = path
        self.connection: sqlite3.Connection | None = connection
        self.rows: list[tuple[int, bytes, bytes | None]] = []
        self.packages: list[tuple[str, str, int]] = []

    @classmethod
    def start(cls, directory: Path) -> _IndexWriter | None:
        try:
            fd, name = tempfile.mkstemp(prefix=".", suffix=".sqlite.tmp", dir=directory)
            os.close(fd)
        except OSError:
            return None
        try:
            connection = sqlite3.connect(name)
            connection.execute("PRAGMA journal_mode = OFF")
            connection.execute("PRAGMA synchronous = OFF")  # made durable by fsync in finish
            for statement in _SCHEMA:
                connection.execute(statement)
        except sqlite3.Error:
            Path(name).unlink(missing_ok=True)
            return None
        return cls(directory, Path(name), connection)

    def keep(self, records: Iterable[osv.Record]) -> Iterator[osv.Record]:
        for seq, record in enumerate(records):
            if self.connection is not None:
                advisory = record.advisory
                raw = None if advisory.withdrawn else zlib.compress(record.raw, 1)
                self.rows.append((seq, record.sha256, raw))
                if raw is not None:
                    self.packages += {(e.ecosystem, e.name, seq) for e in advisory.affected}
                if len(self.rows) >= 1024:
                    self._flush()
            yield record

    def _flush(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.executemany("INSERT INTO records VALUES (?, ?, ?)", self.rows)
            self.connection.executemany(
                "INSERT OR IGNORE INTO packages VALUES (?, ?, ?)", self.packages
            )
        except sqlite3.Error:
            self.abandon()
        self.rows, self.packages = [], []

    def finish(self, key: str, database: Database) -> None:
        self._flush()
        if self.connection is None:
            return
        import json

        summary = {
            "format": INDEX_FORMAT,
            "key": key,
            "digest": database.digest,
            "records": database.records,
            "withdrawn": database.withdrawn,
            "newest": None if database.newest is None else database.newest.isoformat(),
        }
        try:
            self.connection.execute("INSERT INTO meta VALUES (?)", (json.dumps(summary),))
            self.connection.commit()
            self.connection.close()
            self.connection = None
            with open(self.path, "rb") as f:
                os.fsync(f.fileno())
            os.replace(self.path, self.directory / f"{key}.sqlite")
        except (sqlite3.Error, OSError):
            self.abandon()
            return
        _prune(self.directory)

    def abandon(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self.connection.close()
            self.connection = None
        self.path.unlink(missing_ok=True)


def _prune(directory: Path) -> None:
    """Keep the INDEX_KEEP most recently used indexes, and no temporary file older than an
    hour (a writer that was killed)."""
    try:
        indexes = sorted(directory.glob("*.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True)
        stale = [
            p for p in directory.glob(".*.sqlite.tmp") if time.time() - p.stat().st_mtime > 3600
        ]
    except OSError:
        return
    for path in indexes[INDEX_KEEP:] + stale:
        with contextlib.suppress(OSError):
            path.unlink()


__all__ = [
    "DEFAULT_ECOSYSTEMS",
    "DEFAULT_SOURCE",
    "CorruptDownload",
    "DatabaseMissing",
    "DatabaseStale",
    "DownloadError",
    "IndexedAdvisories",
    "Metadata",
    "UpdateError",
    "UpdateResult",
    "cache_root",
    "check_age",
    "check_ecosystem",
    "default_dir",
    "describe",
    "files",
    "index_dir",
    "load",
    "load_indexed",
    "locate",
    "parse_duration",
    "read_metadata",
    "update",
]
