"""Where the OSV database lives, its update from a mirror on loopback, its age, and its
index: the update against a real HTTP server (stdlib, 127.0.0.1) serving zips of real
RustSec and Go records; the index against the real databases in ../shared/testdata/osv/."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.loopback import LoopbackService, QuietHandler, ServerThread
from wasmctl.audit import db, osv
from wasmctl.errors import ExitCode, InputError

TESTDATA = Path(__file__).parents[4] / "shared" / "testdata" / "osv"


def real_records(ecosystem: str, count: int, start: int = 0) -> dict[str, bytes]:
    """`count` records of the real database, byte for byte."""
    with zipfile.ZipFile(TESTDATA / ecosystem / "all.zip") as z:
        names = sorted(z.namelist())[start : start + count]
        return {name: z.read(name) for name in names}


def zipped(records: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, raw in records.items():
            z.writestr(name, raw)
    return out.getvalue()


CRATES = zipped(real_records("crates.io", 40))
CRATES_NEWER = zipped(real_records("crates.io", 45))
GO = zipped(real_records("Go", 30))


# -- a mirror of osv.dev's bucket on loopback -----------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    location: str | None = None
    md5: str | None = None  # X-Goog-Hash md5 (base64); None: the header is left out
    cut_after: int | None = None  # close the connection after this many body bytes


@dataclass
class Mirror(LoopbackService):
    """Serves `routes` by path, with a strong ETag and 304 for a matching If-None-Match;
    `seen` logs (path, If-None-Match) per request."""

    service_name = "osv mirror"
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    _serving: ServerThread | None = None

    def serve(self, path: str, body: bytes, *, goog: bool = True, **kw: object) -> None:
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode() if goog else None
        self.routes[path] = Route(body=body, md5=kw.pop("md5", md5), **kw)  # type: ignore[arg-type]

    def make_handler(self) -> type[QuietHandler]:
        mirror = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                mirror.seen.append((self.path, self.headers.get("If-None-Match")))
                route = mirror.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.location is not None:
                    self.send_response(route.status)
                    self.send_header("Location", route.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = f'"{hashlib.sha256(route.body).hexdigest()[:16]}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(route.status)
                self.send_header("Content-Length", str(len(route.body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", "Sat, 05 Dec 2026 01:00:00 GMT")
                if route.md5 is not None:
                    self.send_header("X-Goog-Hash", f"crc32c=AAAAAA==,md5={route.md5}")
                self.end_headers()
                if route.cut_after is None:
                    self.wfile.write(route.body)
                    return
                self.wfile.write(route.body[: route.cut_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        return Handler


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    with Mirror() as served:
        served.serve("/crates.io/all.zip", CRATES)
        served.serve("/Go/all.zip", GO)
        yield served


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as made:
        yield made


def state(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`, by relative path (the lock file left out)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != db.LOCK
    }


# -- location ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_CACHE_HOME": "/x/cache", "HOME": "/h"}, "/x/cache/wasmctl"),
        ("linux", {"XDG_CACHE_HOME": "relative", "HOME": "/h"}, "/h/.cache/wasmctl"),
        ("linux", {"HOME": "/h"}, "/h/.cache/wasmctl"),
        ("darwin", {"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/h/Library/Caches/wasmctl"),
        ("win32", {"LOCALAPPDATA": "/local", "HOME": "/h"}, "/local/wasmctl/Cache"),
    ],
)
def test_the_cache_directory_is_the_platforms(
    platform: str, env: dict[str, str], expected: str
) -> None:
    assert db.cache_root(env, platform) == Path(expected)


def test_the_default_database_is_under_the_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert db.default_dir() == tmp_path / "wasmctl" / "osv"
    assert db.index_dir() == tmp_path / "wasmctl" / "osv-index"


# -- update --------------------------------------------------------------------------------


def test_a_first_download_puts_the_archive_and_its_metadata_in_place(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    results = db.update(tmp_path, source=mirror.url, client=client)
    assert [(r.ecosystem, r.status) for r in results] == [
        ("crates.io", "downloaded"),
        ("Go", "downloaded"),
    ]
    assert (tmp_path / "crates.io" / "all.zip").read_bytes() == CRATES
    assert results[0].sha256 == hashlib.sha256(CRATES).hexdigest()
    assert (results[0].bytes, results[0].records, results[1].records) == (len(CRATES), 40, 30)
    meta = db.read_metadata(tmp_path, "crates.io")
    assert meta is not None
    assert meta.source == f"{mirror.url}/crates.io/all.zip"
    assert meta.etag and meta.etag.startswith('"')
    assert meta.last_modified == "Sat, 05 Dec 2026 01:00:00 GMT"
    assert meta.sha256 == results[0].sha256 and meta.records == 40
    assert mirror.seen[0] == ("/crates.io/all.zip", None)  # nothing to be conditional on
    assert osv.load(db.locate(tmp_path)).records == 70
    assert not list(tmp_path.rglob("*.tmp"))


def test_an_unchanged_archive_is_not_downloaded_again(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    db.update(tmp_path, ["crates.io"], mirror.url, client=client)
    before = db.read_metadata(tmp_path, "crates.io")
    [result] = db.update(tmp_path, ["crates.io"], mirror.url, client=client)
    assert result.status == "not-modified"
    assert before is not None and mirror.seen[-1] == ("/crates.io/all.zip", before.etag)
    assert (result.sha256, result.records) == (before.sha256, 40)
    after = db.read_metadata(tmp_path, "crates.io")
    assert after is not None and after.fetched == before.fetched and after.checked >= before.checked


def test_a_changed_archive_replaces_the_old_one(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    db.update(tmp_path, ["crates.io"], mirror.url, client=client)
    mirror.serve("/crates.io/all.zip", CRATES_NEWER)
    [result] = db.update(tmp_path, ["crates.io"], mirror.url, client=client)
    assert (result.status, result.records) == ("downloaded", 45)
    assert (tmp_path / "crates.io" / "all.zip").read_bytes() == CRATES_NEWER


def test_the_default_client_fetches_too(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    [result] = db.update(tmp_path, ["Go"], mirror.url)
    assert (result.status, result.records) == ("downloaded", 30)


def failed_update(
    tmp_path: Path, mirror: Mirror, client: httpx.Client, route: Callable[[], None]
) -> tuple[db.UpdateError, dict[str, bytes]]:
    """A good database first, then `route` changes the mirror and the update fails:
    the error, and what the directory held before it."""
    db.update(tmp_path, ["crates.io"], mirror.url, client=client)
    before = state(tmp_path)
    route()
    with pytest.raises(db.UpdateError) as caught:
        db.update(tmp_path, ["crates.io"], mirror.url, client=client)
    assert caught.value.exit_code == ExitCode.REMOTE
    assert state(tmp_path) == before  # the old database and metadata, nothing left behind
    return caught.value, before


def test_a_corrupt_download_keeps_the_old_database(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    garbage = CRATES_NEWER[: len(CRATES_NEWER) // 2]  # a zip without its central directory
    error, _ = failed_update(
        tmp_path, mirror, client, lambda: mirror.serve("/crates.io/all.zip", garbage)
    )
    assert isinstance(error, db.CorruptDownload)
    assert "not a usable OSV database" in error.message and "not a readable zip" in error.message
    assert osv.load(db.locate(tmp_path)).records == 40


def test_an_interrupted_download_keeps_the_old_database(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    def interrupt() -> None:
        mirror.serve("/crates.io/all.zip", CRATES_NEWER, cut_after=len(CRATES_NEWER) // 3)

    error, _ = failed_update(tmp_path, mirror, client, interrupt)
    assert isinstance(error, db.DownloadError)
    assert "broke off after" in error.message


def test_a_wrong_x_goog_hash_is_refused(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    error, _ = failed_update(
        tmp_path,
        mirror,
        client,
        lambda: mirror.serve("/crates.io/all.zip", CRATES_NEWER, md5=wrong),
    )
    assert isinstance(error, db.CorruptDownload) and "X-Goog-Hash" in error.message


def test_a_malformed_x_goog_hash_is_refused(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    error, _ = failed_update(
        tmp_path, mirror, client, lambda: mirror.serve("/crates.io/all.zip", CRATES_NEWER, md5="%%")
    )
    assert isinstance(error, db.CorruptDownload)


def test_without_x_goog_hash_the_archive_is_still_verified(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    mirror.serve("/crates.io/all.zip", CRATES, goog=False)
    [result] = db.update(tmp_path, ["crates.io"], mirror.url, client=client)
    assert result.records == 40


def test_an_archive_of_another_ecosystem_is_refused(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    error, _ = failed_update(
        tmp_path, mirror, client, lambda: mirror.serve("/crates.io/all.zip", GO)
    )
    assert isinstance(error, db.CorruptDownload) and "no record of the ecosystem" in error.message


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({}, "holds no OSV records"),
        ({"X.json": b'{"summary": "no id"}'}, "not an OSV record"),
        ({"X.json": b"{not json"}, "not JSON"),
    ],
)
def test_an_archive_without_good_records_is_refused(
    tmp_path: Path,
    mirror: Mirror,
    client: httpx.Client,
    members: dict[str, bytes],
    expected: str,
) -> None:
    error, _ = failed_update(
        tmp_path, mirror, client, lambda: mirror.serve("/crates.io/all.zip", zipped(members))
    )
    assert isinstance(error, db.CorruptDownload) and expected in error.message


def test_a_full_disk_keeps_the_old_database(
    tmp_path: Path, mirror: Mirror, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    def fill() -> None:
        mirror.serve("/crates.io/all.zip", CRATES_NEWER)
        monkeypatch.setattr("wasmctl.audit.db.os.fsync", full)

    error, _ = failed_update(tmp_path, mirror, client, fill)
    assert "No space left on device" in error.message


def test_a_download_over_the_size_bound_is_refused(
    tmp_path: Path, mirror: Mirror, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def shrink() -> None:
        mirror.serve("/crates.io/all.zip", CRATES_NEWER)
        monkeypatch.setattr("wasmctl.audit.db.MAX_DOWNLOAD_BYTES", len(CRATES_NEWER) - 1)

    error, _ = failed_update(tmp_path, mirror, client, shrink)
    assert isinstance(error, db.CorruptDownload) and "MiB bound" in error.message


def test_a_local_copy_over_the_size_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mirror" / "Go").mkdir(parents=True)
    (tmp_path / "mirror" / "Go" / "all.zip").write_bytes(GO)
    monkeypatch.setattr("wasmctl.audit.db.MAX_DOWNLOAD_BYTES", 1000)
    with pytest.raises(db.CorruptDownload, match="larger than 1000 bytes"):
        db.update(tmp_path / "db", ["Go"], (tmp_path / "mirror").as_uri())
    assert [p.name for p in (tmp_path / "db" / "Go").iterdir()] == [db.LOCK]


def test_an_error_status_is_a_remote_error_with_a_hint(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    with pytest.raises(db.DownloadError) as caught:
        db.update(tmp_path, ["crates.i0"], mirror.url, client=client)
    assert "404" in caught.value.message and "case-sensitive" in (caught.value.hint or "")
    assert not (tmp_path / "crates.i0" / "all.zip").exists()


def test_an_unreachable_source_is_a_remote_error(tmp_path: Path, client: httpx.Client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(db.DownloadError) as caught:
        db.update(tmp_path, ["Go"], f"http://127.0.0.1:{port}", client=client)
    assert caught.value.exit_code == ExitCode.REMOTE and "ConnectError" in caught.value.message


def test_ecosystems_updated_before_a_failure_stay_updated(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    with pytest.raises(db.DownloadError) as caught:
        db.update(tmp_path, ["crates.io", "Nope"], mirror.url, client=client)
    assert [r.ecosystem for r in caught.value.completed] == ["crates.io"]
    assert (tmp_path / "crates.io" / "all.zip").read_bytes() == CRATES


def test_a_redirect_within_the_source_is_followed(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    mirror.routes["/Go/all.zip"] = Route(status=302, location="/objects/go.zip")
    mirror.serve("/objects/go.zip", GO)
    [result] = db.update(tmp_path, ["Go"], mirror.url, client=client)
    assert result.records == 30


@pytest.mark.parametrize(
    "location",
    [
        "http://localhost:{port}/Go/all.zip",  # plain http to another origin
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:{port}/objects/go.zip",  # credentials in the URL
        "ftp://127.0.0.1/Go/all.zip",
    ],
)
def test_a_hostile_redirect_is_refused(
    tmp_path: Path, mirror: Mirror, client: httpx.Client, location: str
) -> None:
    port = mirror.url.rsplit(":", 1)[1]
    mirror.serve("/objects/go.zip", GO)
    mirror.routes["/Go/all.zip"] = Route(status=302, location=location.format(port=port))
    with pytest.raises(db.DownloadError, match="redirect") as caught:
        db.update(tmp_path, ["Go"], mirror.url, client=client)
    assert caught.value.exit_code == ExitCode.REMOTE
    assert [path for path, _ in mirror.seen] == ["/Go/all.zip"]
    assert not (tmp_path / "Go" / "all.zip").exists()


def test_a_redirect_loop_ends(tmp_path: Path, mirror: Mirror, client: httpx.Client) -> None:
    mirror.routes["/Go/all.zip"] = Route(status=302, location="/a")
    mirror.routes["/a"] = Route(status=302, location="/Go/all.zip")
    with pytest.raises(db.DownloadError, match="redirect loop"):
        db.update(tmp_path, ["Go"], mirror.url, client=client)


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "a\\b", ".hidden", "", "x\x00", "/etc"])
def test_an_ecosystem_name_cannot_leave_the_directory(tmp_path: Path, name: str) -> None:
    inside = tmp_path / "db"
    with pytest.raises(InputError, match="not an OSV ecosystem name") as caught:
        db.update(inside, [name], "http://127.0.0.1:9")  # refused before any connection
    assert caught.value.exit_code == ExitCode.INPUT
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "source", ["ftp://mirror/osv", "https://mirror/osv?x=1", "file:relative/dir", "mirror/osv"]
)
def test_a_source_must_be_http_or_a_local_directory(tmp_path: Path, source: str) -> None:
    with pytest.raises(InputError, match="--source"):
        db.update(tmp_path, ["Go"], source)


def test_a_file_mirror_is_copied_verified_and_then_not_modified(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "Go").mkdir(parents=True)
    (mirror / "Go" / "all.zip").write_bytes(GO)
    target = tmp_path / "db"
    [first] = db.update(target, ["Go"], mirror.as_uri())
    [second] = db.update(target, ["Go"], mirror.as_uri())
    assert (first.status, second.status) == ("downloaded", "not-modified")
    assert (target / "Go" / "all.zip").read_bytes() == GO
    (mirror / "Go" / "all.zip").write_bytes(GO[:100])
    with pytest.raises(db.CorruptDownload):
        db.update(target, ["Go"], mirror.as_uri())
    assert (target / "Go" / "all.zip").read_bytes() == GO


def test_concurrent_updates_of_one_directory_leave_a_whole_database(
    tmp_path: Path, mirror: Mirror
) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with httpx.Client(timeout=5.0, trust_env=False) as own:
                db.update(tmp_path, source=mirror.url, client=own)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert (tmp_path / "crates.io" / "all.zip").read_bytes() == CRATES
    assert osv.load(db.locate(tmp_path)).records == 70
    assert not list(tmp_path.rglob("*.tmp"))


def test_temporary_files_of_a_killed_update_are_removed(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    (tmp_path / "Go").mkdir()
    left = tmp_path / "Go" / ".all.zip.abc123.tmp"
    left.write_bytes(b"half")
    db.update(tmp_path, ["Go"], mirror.url, client=client)
    assert not left.exists()


def test_metadata_that_does_not_describe_the_archive_is_ignored(
    tmp_path: Path, mirror: Mirror, client: httpx.Client
) -> None:
    db.update(tmp_path, ["Go"], mirror.url, client=client)
    (tmp_path / "Go" / "all.zip").write_bytes(zipped(real_records("Go", 3)))  # by hand
    [result] = db.update(tmp_path, ["Go"], mirror.url, client=client)
    assert result.status == "downloaded" and mirror.seen[-1] == ("/Go/all.zip", None)
    (tmp_path / "Go" / "metadata.json").write_text("{not json")
    assert db.read_metadata(tmp_path, "Go") is None


# -- locating ------------------------------------------------------------------------------


def test_no_database_in_the_default_place_says_how_to_fetch_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(db.DatabaseMissing) as caught:
        db.locate(None)
    assert caught.value.exit_code == ExitCode.INPUT
    assert "`wasmctl audit db update`" in (caught.value.hint or "")
    (tmp_path / "wasmctl" / "osv").mkdir(parents=True)  # there, but empty
    with pytest.raises(db.DatabaseMissing, match="holds no"):
        db.locate(None)


def test_a_missing_db_dir_says_how_to_fill_it(tmp_path: Path) -> None:
    where = tmp_path / "my db"
    with pytest.raises(db.DatabaseMissing) as caught:
        db.locate(where)
    assert f"wasmctl audit db update --db '{where}'" in (caught.value.hint or "")


@pytest.mark.parametrize("layout", ["osv", "ecosystem", "loose", "zip"])
def test_a_db_dir_may_be_any_layout(tmp_path: Path, layout: str) -> None:
    if layout in ("osv", "ecosystem"):
        (tmp_path / "Go").mkdir()
        (tmp_path / "Go" / "all.zip").write_bytes(GO)
        (tmp_path / "Go" / "metadata.json").write_text("{}")  # beside it, never a record
        where = tmp_path if layout == "osv" else tmp_path / "Go"
    elif layout == "loose":
        for name, raw in real_records("Go", 30).items():
            (tmp_path / name).write_bytes(raw)
        where = tmp_path
    else:
        where = tmp_path / "all.zip"
        where.write_bytes(GO)
    assert osv.load(db.locate(where)).records == 30
    assert db.load(where, index=tmp_path / "index").records == 30
    assert db.files(where)


# -- age -----------------------------------------------------------------------------------


def record(rid: str, modified: str | None) -> dict[str, object]:
    found: dict[str, object] = {
        "id": rid,
        "affected": [{"package": {"ecosystem": "crates.io", "name": "demo"}, "versions": ["1"]}],
    }
    if modified is not None:
        found["modified"] = modified
    return found


def loose(directory: Path, records: list[dict[str, object]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for r in records:
        (directory / f"{r['id']}.json").write_text(json.dumps(r))
    return directory


NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_the_age_is_that_of_the_newest_record(tmp_path: Path) -> None:
    database = osv.load([loose(tmp_path, [
        record("A", "2026-12-01T12:00:00Z"),
        record("B", "2026-12-03T12:00:00.123456789+00:00"),  # nanoseconds, an offset
        record("C", "2026-12-04T13:00:00+02:00"),  # 11:00 UTC: the newest
        record("D", "0001-01-01T00:00:00Z"),  # Go's "not set"
        record("E", "yesterday"),
    ])])  # fmt: skip
    assert database.newest == datetime(2026, 12, 4, 11, 0, tzinfo=UTC)
    assert database.age(NOW) == timedelta(hours=25)
    assert database.age(datetime(2026, 1, 1, tzinfo=UTC)) == timedelta(0)  # a clock behind


def test_real_databases_have_an_age(real: osv.Database) -> None:
    assert real.newest == datetime(2026, 8, 21, 6, 28, 40, tzinfo=UTC)  # RustSec's newest
    go = osv.load([TESTDATA / "Go"])
    assert go.newest is None  # the Go repository's records all carry the zero time


def test_check_age_passes_a_fresh_database_and_stops_a_stale_one(tmp_path: Path) -> None:
    database = osv.load([loose(tmp_path, [record("A", "2026-12-01T12:00:00Z")])])
    db.check_age(database, timedelta(days=7), NOW)
    with pytest.raises(db.DatabaseStale) as caught:
        db.check_age(database, timedelta(days=2), NOW)
    assert caught.value.exit_code == ExitCode.REMOTE
    assert "4 days old" in caught.value.message and "2 days allowed" in caught.value.message
    assert "wasmctl audit db update" in (caught.value.hint or "") or tmp_path.name in (
        caught.value.hint or ""
    )


def test_check_age_stops_a_database_of_unknown_age(tmp_path: Path) -> None:
    database = osv.load([loose(tmp_path, [record("A", None)])])
    assert database.age(NOW) is None
    with pytest.raises(db.DatabaseStale, match="age is unknown"):
        db.check_age(database, timedelta(days=7), NOW)


def test_a_stale_default_database_names_the_update_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    loose(db.default_dir(), [record("A", "2020-01-01T00:00:00Z")])
    with pytest.raises(db.DatabaseStale) as caught:
        db.check_age(db.load(), timedelta(days=7), NOW)
    assert caught.value.hint == "refresh it with `wasmctl audit db update`"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert db.parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "7", "d", "0d", "-1d", "1.5d", "7D", "7 d", "1d12h", "7days", "1y", "9999999w"]
)
def test_what_is_no_duration_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="is not a duration") as caught:
        db.parse_duration(text)
    assert "7d" in (caught.value.hint or "")


# -- the index -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> osv.Database:
    return osv.load([TESTDATA])


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, osv.Database]:
    """The real databases indexed once: the index directory, and the load that wrote it."""
    directory = tmp_path_factory.mktemp("index")
    return directory, db.load_indexed([TESTDATA], directory)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 real records of each ecosystem, in osv-scanner's layout: the index's failure
    paths, where the whole database would only be slower."""
    directory = tmp_path_factory.mktemp("small")
    for ecosystem in ("crates.io", "Go"):
        (directory / ecosystem).mkdir()
        (directory / ecosystem / "all.zip").write_bytes(zipped(real_records(ecosystem, 300)))
    return directory


@pytest.fixture(scope="module")
def small_indexed(
    small: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, osv.Database]:
    directory = tmp_path_factory.mktemp("small-index")
    return directory, db.load_indexed([small], directory)


def index_file(directory: Path) -> Path:
    [path] = directory.glob("*.sqlite")
    return path


def test_the_first_load_writes_an_index_and_the_next_reads_it(
    indexed: tuple[Path, osv.Database], real: osv.Database
) -> None:
    directory, first = indexed
    assert isinstance(first.advisories, dict)  # read in full, as it was indexed
    second = db.load_indexed([TESTDATA], directory)
    assert isinstance(second.advisories, db.IndexedAdvisories)
    assert (second.digest, second.records, second.withdrawn, second.newest) == (
        real.digest,
        real.records,
        real.withdrawn,
        real.newest,
    )
    assert second.sources == (TESTDATA,)


def test_the_index_gives_the_same_candidates_as_a_full_load(
    indexed: tuple[Path, osv.Database], real: osv.Database
) -> None:
    from_index = db.load_indexed([TESTDATA], indexed[0])
    assert isinstance(from_index.advisories, db.IndexedAdvisories)
    assert set(from_index.advisories) == set(real.advisories)
    for ecosystem, name in real.advisories:
        assert from_index.candidates(ecosystem, name) == real.candidates(ecosystem, name)
    assert from_index.candidates("crates.io", "no-such-crate") == []
    assert ids(from_index.matching("crates.io", "regex", "1.5.4")) >= {"RUSTSEC-2022-0013"}


def ids(found: list[tuple[osv.Advisory, osv.Affected]]) -> set[str]:
    return {a.id for a, _ in found}


def test_an_advisory_naming_several_packages_is_read_once(
    indexed: tuple[Path, osv.Database], real: osv.Database
) -> None:
    [(eco, name, other)] = [
        (e.ecosystem, e.name, f)
        for found in list(real.advisories.values())[:2000]
        for a, e in found
        for f in a.affected
        if (f.ecosystem, f.name) != (e.ecosystem, e.name)
    ][:1]
    from_index = db.load_indexed([TESTDATA], indexed[0])
    first = {a.id: a for a, _ in from_index.candidates(eco, name)}
    again = {a.id: a for a, _ in from_index.candidates(other.ecosystem, other.name)}
    shared = set(first) & set(again)
    assert shared and all(first[i] is again[i] for i in shared)


def test_a_change_of_content_writes_a_new_index(tmp_path: Path) -> None:
    source = tmp_path / "db"
    (source / "Go").mkdir(parents=True)
    (source / "Go" / "all.zip").write_bytes(GO)
    directory = tmp_path / "index"
    old = db.load_indexed([source], directory)
    (source / "Go" / "all.zip").write_bytes(zipped(real_records("Go", 31)))
    new = db.load_indexed([source], directory)
    assert isinstance(new.advisories, dict) and new.records == 31 and new.digest != old.digest
    assert len(list(directory.glob("*.sqlite"))) == 2
    assert isinstance(db.load_indexed([source], directory).advisories, db.IndexedAdvisories)


def copy_index(indexed: tuple[Path, osv.Database], tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "index"
    directory.mkdir(mode=0o700)
    path = directory / index_file(indexed[0]).name
    shutil.copyfile(index_file(indexed[0]), path)
    return directory, path


def test_an_index_that_is_no_database_is_replaced(
    small: Path, small_indexed: tuple[Path, osv.Database], tmp_path: Path
) -> None:
    directory, path = copy_index(small_indexed, tmp_path)
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    loaded = db.load_indexed([small], directory)
    assert isinstance(loaded.advisories, dict) and loaded.digest == small_indexed[1].digest
    assert isinstance(db.load_indexed([small], directory).advisories, db.IndexedAdvisories)


@pytest.mark.parametrize(
    "tamper",
    [
        "CREATE TRIGGER t AFTER INSERT ON meta BEGIN SELECT 1; END",
        "CREATE VIEW v AS SELECT 1",
        "UPDATE meta SET document = replace(document, '\"records\": ', '\"records\": 1')",
        "DELETE FROM records WHERE seq = 7",
        "UPDATE records SET sha256 = zeroblob(32) WHERE seq = 3",
        "DROP TABLE packages",
    ],
)
def test_a_tampered_index_is_not_used(
    small: Path, small_indexed: tuple[Path, osv.Database], tmp_path: Path, tamper: str
) -> None:
    directory, path = copy_index(small_indexed, tmp_path)
    with sqlite3.connect(path) as connection:
        connection.execute(tamper)
    connection.close()
    full = small_indexed[1]
    loaded = db.load_indexed([small], directory)
    assert isinstance(loaded.advisories, dict)  # read in full...
    assert loaded.digest == full.digest
    assert loaded.advisories == full.advisories
    again = db.load_indexed([small], directory)  # ...and indexed anew
    assert isinstance(again.advisories, db.IndexedAdvisories) and again.digest == full.digest


def test_a_tampered_record_falls_back_to_the_database(
    small: Path, small_indexed: tuple[Path, osv.Database], tmp_path: Path
) -> None:
    directory, path = copy_index(small_indexed, tmp_path)
    full = small_indexed[1]
    [(_, package)] = [k for k in full.advisories if k[0] == "crates.io"][:1]
    forged = json.dumps({"id": "FORGED", "affected": [
        {"package": {"ecosystem": "crates.io", "name": package}, "ranges": [
            {"type": "SEMVER", "events": [{"introduced": "0"}]}]}]})  # fmt: skip
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE records SET raw = ? WHERE seq IN (SELECT seq FROM packages WHERE name = ?)",
            (zlib.compress(forged.encode()), package),
        )
    connection.close()
    loaded = db.load_indexed([small], directory)
    assert isinstance(loaded.advisories, db.IndexedAdvisories)  # its summary is intact
    assert loaded.candidates("crates.io", package) == full.candidates("crates.io", package)
    assert "FORGED" not in ids(loaded.candidates("crates.io", package))
    assert loaded.advisories == full.advisories
    assert not path.exists()  # the broken index is gone; the next load writes it again


def test_without_a_writable_cache_the_database_is_read_in_full(
    small: Path, small_indexed: tuple[Path, osv.Database], tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    loaded = db.load_indexed([small], blocked / "index")
    assert isinstance(loaded.advisories, dict) and loaded.digest == small_indexed[1].digest


def test_an_index_directory_others_may_write_is_not_trusted(
    small: Path, small_indexed: tuple[Path, osv.Database], tmp_path: Path
) -> None:
    directory, _ = copy_index(small_indexed, tmp_path)
    directory.chmod(0o777)
    loaded = db.load_indexed([small], directory)
    assert isinstance(loaded.advisories, dict)


def test_concurrent_first_loads_write_one_good_index(
    small: Path, small_indexed: tuple[Path, osv.Database], tmp_path: Path
) -> None:
    directory = tmp_path / "index"
    full = small_indexed[1]
    loaded: list[osv.Database] = []
    threads = [
        threading.Thread(target=lambda: loaded.append(db.load_indexed([small], directory)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [d.digest for d in loaded] == [full.digest] * 4
    assert len(list(directory.glob("*.sqlite"))) == 1 and not list(directory.glob(".*"))
    again = db.load_indexed([small], directory)
    assert isinstance(again.advisories, db.IndexedAdvisories)
    assert again.advisories == full.advisories


def test_an_index_read_from_threads_answers_each_the_same(
    indexed: tuple[Path, osv.Database], real: osv.Database
) -> None:
    from_index = db.load_indexed([TESTDATA], indexed[0])
    names = [("Go", "stdlib"), ("crates.io", "regex"), ("Go", "golang.org/x/net")] * 10
    answers: list[bool] = []

    def ask() -> None:
        answers.extend(from_index.candidates(*n) == real.candidates(*n) for n in names)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [True] * 120
