"""The registry client against hostile registries on real loopback HTTP (issue 11).

Each test runs a scripted registry (`tests.hostile.lying_registry`) and, where the registry
sends the client elsewhere, a second loopback server on another port (another origin) that
records every header it receives: credentials must reach the registry's own origin only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.lying_registry import LyingRegistry, Reply, Script, Seen, basic, redirect
from wasmctl.errors import ExitCode, InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.auth import AuthError, Credentials
from wasmctl.oci.models import Descriptor, ManifestError, sha256_digest
from wasmctl.oci.registry import (
    DigestMismatchError,
    RegistryClient,
    RegistryError,
    RetryPolicy,
    TimeoutPolicy,
)

USER, PASSWORD = "alice", "s3cret-password"
BLOB = b"\0asm\1\0\0\0" + b"x" * 1000
BLOB_DESCRIPTOR = Descriptor(mt.WASM_LAYER, sha256_digest(BLOB), len(BLOB))
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}).encode()
TOKEN = "tok-for-registry-a"


@pytest.fixture
def other() -> Iterator[LyingRegistry]:
    """The other origin: a storage host, an upload host, a realm. Answers 404 unless told."""
    with LyingRegistry() as server:
        yield server


@pytest.fixture
def registry() -> Iterator[LyingRegistry]:
    """The registry the client was pointed at; tests give it a script."""
    with LyingRegistry() as server:
        yield server


def impatient(
    registry: LyingRegistry, request: float = 1.0, min_rate: float = 1000
) -> RegistryClient:
    """An anonymous client with a short deadline (no assertion on time: on the error)."""
    return RegistryClient(
        registry.host,
        plain_http=True,
        use_config=False,
        timeouts=TimeoutPolicy(request=request, min_rate=min_rate),
        sleep=lambda seconds: None,
    )


def client(registry: LyingRegistry, **kw: object) -> RegistryClient:
    return RegistryClient(
        registry.host,
        plain_http=True,
        credentials=Credentials(USER, PASSWORD),
        use_config=False,
        retry=RetryPolicy(attempts=2, base_delay=0.01),
        sleep=lambda seconds: None,
        **kw,  # type: ignore[arg-type]
    )


def basic_registry(routes: dict[tuple[str, str], Reply]) -> Script:
    """A script: Basic auth required, then `routes[(method, path-without-query)]`."""

    def script(seen: Seen) -> Reply:
        if seen.authorization != basic(USER, PASSWORD):
            return Reply(401, {"WWW-Authenticate": 'Basic realm="lying"'})
        reply = routes.get((seen.method, seen.path.partition("?")[0]))
        return reply if reply is not None else Reply(404)

    return script


def no_credentials(server: LyingRegistry) -> None:
    assert server.seen, "the other host was never reached"
    for seen in server.seen:
        assert seen.authorization is None, f"{seen.method} {seen.path} carried credentials"
        assert PASSWORD not in seen.path and TOKEN not in seen.path


# -- credentials stay with the registry --------------------------------------------------


def test_an_upload_location_on_another_host_gets_no_credentials(
    registry: LyingRegistry, other: LyingRegistry, tmp_path: Path
) -> None:
    other.script = lambda seen: Reply(201, {"Docker-Content-Digest": BLOB_DESCRIPTOR.digest})
    registry.script = basic_registry(
        {
            ("POST", "/v2/r/blobs/uploads/"): Reply(
                202, {"Location": f"{other.url}/upload/1?_state=opaque"}
            ),
        }
    )
    source = tmp_path / "blob"
    source.write_bytes(BLOB)
    with client(registry) as c:
        assert c.push_blob("r", BLOB_DESCRIPTOR, source) == len(BLOB)
    assert any(s.authorization == basic(USER, PASSWORD) for s in registry.seen)
    no_credentials(other)
    (put,) = other.seen
    assert put.method == "PUT" and put.body == BLOB and "_state=opaque" in put.path


def test_a_chunked_upload_on_another_host_gets_no_credentials(
    registry: LyingRegistry, other: LyingRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasmctl.oci import registry as registry_module

    monkeypatch.setattr(registry_module, "MONOLITHIC_MAX", 100)
    monkeypatch.setattr(registry_module, "UPLOAD_CHUNK", 600)

    def storage(seen: Seen) -> Reply:
        if seen.method == "PATCH":
            return Reply(202, {"Location": f"{other.url}/upload/1?_state=next"})
        return Reply(201, {"Docker-Content-Digest": BLOB_DESCRIPTOR.digest})

    other.script = storage
    registry.script = basic_registry(
        {("POST", "/v2/r/blobs/uploads/"): Reply(202, {"Location": f"{other.url}/upload/1"})}
    )
    source = tmp_path / "blob"
    source.write_bytes(BLOB)
    with client(registry) as c:
        c.push_blob("r", BLOB_DESCRIPTOR, source)
    assert [s.method for s in other.seen] == ["PATCH", "PATCH", "PUT"]
    no_credentials(other)


def test_a_blob_redirect_to_storage_is_followed_without_credentials(
    registry: LyingRegistry, other: LyingRegistry, tmp_path: Path
) -> None:
    other.script = lambda seen: Reply(200, body=BLOB)
    registry.script = basic_registry(
        {("GET", f"/v2/r/blobs/{BLOB_DESCRIPTOR.digest}"): redirect(f"{other.url}/s3/b?sig=x")}
    )
    with client(registry) as c:
        c.fetch_blob("r", BLOB_DESCRIPTOR, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == BLOB
    no_credentials(other)


def test_redirected_blob_bytes_are_still_verified(
    registry: LyingRegistry, other: LyingRegistry, tmp_path: Path
) -> None:
    other.script = lambda seen: Reply(200, body=BLOB[:-1] + b"y")
    registry.script = basic_registry(
        {("GET", f"/v2/r/blobs/{BLOB_DESCRIPTOR.digest}"): redirect(f"{other.url}/s3/b")}
    )
    with client(registry) as c, pytest.raises(DigestMismatchError):
        c.fetch_blob("r", BLOB_DESCRIPTOR, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_manifest_redirect_is_followed_without_credentials(
    registry: LyingRegistry, other: LyingRegistry
) -> None:
    other.script = lambda seen: Reply(200, {"Content-Type": mt.OCI_MANIFEST}, MANIFEST)
    registry.script = basic_registry(
        {("GET", "/v2/r/manifests/v1"): redirect(f"{other.url}/m", 302)}
    )
    with client(registry) as c:
        raw, _, digest = c.get_manifest("r", "v1")
    assert raw == MANIFEST and digest == sha256_digest(MANIFEST)
    no_credentials(other)


def test_a_bearer_token_is_not_sent_to_a_redirect_target(
    registry: LyingRegistry, other: LyingRegistry, tmp_path: Path
) -> None:
    def script(seen: Seen) -> Reply:
        if seen.path.startswith("/token"):
            return Reply(200, body=json.dumps({"token": TOKEN}).encode())
        if seen.authorization != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="{registry.url}/token",service="lying"'
            return Reply(401, {"WWW-Authenticate": challenge})
        return redirect(f"{other.url}/cdn/blob")

    registry.script = script
    other.script = lambda seen: Reply(200, body=BLOB)
    with client(registry) as c:
        c.fetch_blob("r", BLOB_DESCRIPTOR, tmp_path / "out")
    no_credentials(other)


def test_the_token_realm_on_another_host_gets_the_credentials_and_only_it(
    registry: LyingRegistry, other: LyingRegistry, tmp_path: Path
) -> None:
    # Docker Hub's realm is auth.docker.io: the registry names its auth server, which is
    # trusted with the credentials (token.md); the token goes back to the registry only.
    storage = LyingRegistry(lambda seen: Reply(200, body=BLOB))
    other.script = lambda seen: Reply(200, body=json.dumps({"token": TOKEN}).encode())

    def script(seen: Seen) -> Reply:
        if seen.authorization != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="{other.url}/token",service="lying"'
            return Reply(401, {"WWW-Authenticate": challenge})
        return redirect(f"{storage.url}/blob")

    registry.script = script
    with storage, client(registry) as c:
        c.fetch_blob("r", BLOB_DESCRIPTOR, tmp_path / "out")
        no_credentials(storage)
    (token_request,) = other.seen
    assert token_request.authorization == basic(USER, PASSWORD)
    assert all(s.authorization in (None, f"Bearer {TOKEN}") for s in registry.seen)


def test_another_host_asking_for_credentials_does_not_get_them(
    registry: LyingRegistry, other: LyingRegistry
) -> None:
    other.script = lambda seen: Reply(401, {"WWW-Authenticate": 'Basic realm="phish"'})
    registry.script = basic_registry({("GET", "/v2/r/manifests/v1"): redirect(f"{other.url}/m")})
    with client(registry) as c, pytest.raises(AuthError, match=r"sent to .* only") as caught:
        c.get_manifest("r", "v1")
    assert caught.value.exit_code == ExitCode.REMOTE
    no_credentials(other)


def test_a_redirect_loop_is_a_registry_error(registry: LyingRegistry, other: LyingRegistry) -> None:
    other.script = lambda seen: redirect(f"{registry.url}/v2/r/manifests/v1")
    registry.script = basic_registry({("GET", "/v2/r/manifests/v1"): redirect(f"{other.url}/m")})
    with client(registry) as c, pytest.raises(RegistryError, match="redirect loop") as caught:
        c.get_manifest("r", "v1")
    assert caught.value.exit_code == ExitCode.REMOTE
    no_credentials(other)


def test_redirects_are_bounded(registry: LyingRegistry) -> None:
    def script(seen: Seen) -> Reply:
        hop = int(seen.path.rpartition("/")[2] or 0) if seen.path.startswith("/hop/") else 0
        return redirect(f"{registry.url}/hop/{hop + 1}")

    registry.script = script
    with client(registry) as c, pytest.raises(RegistryError, match="more than 5 redirects"):
        c.get_manifest("r", "v1")
    assert len(registry.seen) == 6


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://127.0.0.1/x", "http://user:pw@127.0.0.1:1/x"],
    ids=["file", "ftp", "userinfo"],
)
def test_an_upload_location_that_is_not_a_plain_http_url_is_refused(
    registry: LyingRegistry, tmp_path: Path, location: str
) -> None:
    registry.script = basic_registry(
        {("POST", "/v2/r/blobs/uploads/"): Reply(202, {"Location": location})}
    )
    source = tmp_path / "blob"
    source.write_bytes(BLOB)
    with client(registry) as c, pytest.raises(RegistryError, match="refused") as caught:
        c.push_blob("r", BLOB_DESCRIPTOR, source)
    assert "pw" not in str(caught.value)
    assert [s.method for s in registry.seen if s.authorization] == ["HEAD", "POST"]


# -- a registry that trickles ----------------------------------------------------------------


def test_a_trickled_manifest_runs_into_the_deadline(registry: LyingRegistry) -> None:
    registry.script = lambda seen: Reply(200, {"Content-Type": mt.OCI_MANIFEST}, MANIFEST, 0.2)
    c = impatient(registry)
    with c, pytest.raises(RegistryError, match="deadline") as caught:
        c.get_manifest("r", "v1")
    assert caught.value.exit_code == ExitCode.REMOTE
    assert len(registry.seen) == 1  # not retried: a registry that trickled once will again


def test_trickled_headers_run_into_the_deadline(registry: LyingRegistry) -> None:
    registry.script = lambda seen: Reply(200, body=MANIFEST, trickle=0.2, trickle_all=True)
    c = impatient(registry)
    with c, pytest.raises(RegistryError, match="deadline"):
        c.get_manifest("r", "v1")
    # Cut off by the sockets while the status line trickled in (about 1 s: 5 of its bytes),
    # not after the whole head: the error would say "deadline" then too, so what shows that
    # the sockets held it is how little the server got to send.
    assert registry.trickled < len("HTTP/1.1 200 Scripted\r\n"), registry.trickled


def test_a_trickled_blob_falls_below_the_minimum_rate(
    registry: LyingRegistry, tmp_path: Path
) -> None:
    registry.script = lambda seen: Reply(200, body=BLOB, trickle=0.05)
    c = impatient(registry, min_rate=1000)
    with c, pytest.raises(RegistryError, match="deadline"):
        c.fetch_blob("r", BLOB_DESCRIPTOR, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_slow_token_endpoint_runs_into_the_deadline(
    registry: LyingRegistry, other: LyingRegistry
) -> None:
    other.script = lambda seen: Reply(200, body=json.dumps({"token": TOKEN}).encode(), trickle=0.2)
    challenge = f'Bearer realm="{other.url}/token",service="lying"'
    registry.script = lambda seen: Reply(401, {"WWW-Authenticate": challenge})
    c = impatient(registry)
    with c, pytest.raises(AuthError, match="deadline"):
        c.ping()


# -- sizes that lie ----------------------------------------------------------------------------


@pytest.mark.parametrize("actual", [len(BLOB) + 1, len(BLOB) - 1], ids=["longer", "shorter"])
def test_a_file_that_is_not_its_descriptors_size_is_refused_before_sending(
    registry: LyingRegistry, tmp_path: Path, actual: int
) -> None:
    source = tmp_path / "blob"
    source.write_bytes((BLOB + b"z")[:actual])
    with client(registry) as c, pytest.raises(InputError, match="descriptor"):
        c.push_blob("r", BLOB_DESCRIPTOR, source)
    assert registry.seen == []


def test_a_manifest_whose_descriptor_lies_about_its_size_is_refused(
    registry: LyingRegistry,
) -> None:
    registry.script = lambda seen: Reply(200, {"Content-Type": mt.OCI_MANIFEST}, MANIFEST)
    descriptor = Descriptor(mt.OCI_MANIFEST, sha256_digest(MANIFEST), len(MANIFEST) + 7)
    with client(registry) as c, pytest.raises(ManifestError, match="says"):
        c.read_blob("r", descriptor)


def test_a_blob_announced_at_another_size_is_refused_before_download(
    registry: LyingRegistry, tmp_path: Path
) -> None:
    registry.script = lambda seen: Reply(200, {"Content-Length": "99999999"}, BLOB)
    with client(registry) as c, pytest.raises(DigestMismatchError, match="announced"):
        c.fetch_blob("r", BLOB_DESCRIPTOR, tmp_path / "out")


def test_head_manifest_measures_instead_of_trusting_content_length(
    registry: LyingRegistry,
) -> None:
    def script(seen: Seen) -> Reply:
        headers = {
            "Content-Type": mt.OCI_MANIFEST,
            "Docker-Content-Digest": sha256_digest(MANIFEST),
        }
        if seen.method == "HEAD":
            return Reply(200, {**headers, "Content-Length": "3"})
        return Reply(200, headers, MANIFEST)

    registry.script = script
    with client(registry) as c:
        descriptor = c.head_manifest("r", "v1")
    assert descriptor is not None and descriptor.size == len(MANIFEST)


# -- answers that are too big or loop ------------------------------------------------------------


def test_a_huge_tag_list_is_refused(registry: LyingRegistry) -> None:
    body = b'{"tags": ["' + b"a" * (5 << 20) + b'"]}'
    registry.script = lambda seen: Reply(200, body=body)
    with client(registry) as c, pytest.raises(RegistryError, match="larger than"):
        c.list_tags("r")


def test_a_deeply_nested_tag_list_is_a_registry_error(registry: LyingRegistry) -> None:
    registry.script = lambda seen: Reply(
        200, body=b'{"tags":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    with client(registry) as c, pytest.raises(RegistryError, match="nested"):
        c.list_tags("r")


def test_tag_pages_that_loop_are_refused(registry: LyingRegistry) -> None:
    registry.script = lambda seen: Reply(
        200, {"Link": '</v2/r/tags/list?n=1000>; rel="next"'}, b'{"tags": ["a"]}'
    )
    with client(registry) as c, pytest.raises(RegistryError, match="loop"):
        c.list_tags("r")
    assert len(registry.seen) <= 3


def test_a_next_page_on_another_host_is_not_followed(
    registry: LyingRegistry, other: LyingRegistry
) -> None:
    registry.script = basic_registry(
        {("GET", "/v2/r/tags/list"): Reply(
            200, {"Link": f'<{other.url}/v2/r/tags/list?last=a>; rel="next"'}, b'{"tags": ["a"]}'
        )}
    )  # fmt: skip
    with client(registry) as c, pytest.raises(RegistryError, match="another host"):
        c.list_tags("r")
    assert other.seen == []


def test_an_error_answer_is_bounded_printable_and_without_secrets(
    registry: LyingRegistry,
) -> None:
    message = f"denied for {PASSWORD} \x1b[31mred\x1b[0m " + "x" * 10_000
    body = json.dumps({"errors": [{"code": "DENIED", "message": message}]}).encode()
    registry.script = basic_registry({("GET", "/v2/"): Reply(400, body=body)})
    with client(registry) as c, pytest.raises(InputError) as caught:
        c.ping()
    text = caught.value.diagnostics()
    assert PASSWORD not in text and "\x1b" not in text and len(text) < 600
