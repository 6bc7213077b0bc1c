"""Protocol corners of a hostile registry, on `httpx.MockTransport` (issue 11).

What needs TLS or would need a real attacker in the middle (https to http downgrades, token
realms over http) and answers a real server would rarely produce. The credential tests on
real loopback servers are in tests/integration/test_registry_hostile.py.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from wasmctl.errors import ExitCode, InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci import registry as registry_module
from wasmctl.oci.auth import (
    MAX_TOKEN_LIFETIME,
    AuthError,
    Credentials,
    load_credentials,
    token_lifetime,
)
from wasmctl.oci.http import Connections, Response, Timeouts
from wasmctl.oci.models import Descriptor, sha256_digest
from wasmctl.oci.registry import (
    RegistryClient,
    RegistryError,
    RetryPolicy,
    TimeoutPolicy,
)

REG = "reg.example"
PASSWORD = "pa55word-secret"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}).encode()

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, *, plain: bool = False, **kw: object) -> RegistryClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return RegistryClient(REG, http=http, plain_http=plain, use_config=False,
                          credentials=Credentials("u", PASSWORD), sleep=lambda s: None,
                          retry=RetryPolicy(attempts=2), **kw)  # type: ignore[arg-type]  # fmt: skip


def basic_then(answer: Handler, seen: list[httpx.Request]) -> Handler:
    """Basic auth on the registry's host, then `answer`; every request is kept in `seen`."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == REG and "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return answer(request)

    return handler


def bearer(realm: str, token_answer: Callable[[], httpx.Response]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(realm):
            return token_answer()
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})

    return handler


# -- downgrades and odd URLs -------------------------------------------------------------------


def test_a_redirect_from_https_to_http_is_refused() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            return httpx.Response(307, headers={"Location": f"http://{REG}/v2/r/manifests/v1"})
        return httpx.Response(200, content=MANIFEST)

    with pytest.raises(RegistryError, match="from https to http") as caught:
        client(basic_then(answer, seen)).get_manifest("r", "v1")
    assert caught.value.exit_code == ExitCode.REMOTE
    assert all(r.url.scheme == "https" for r in seen)


def test_an_upload_location_from_https_to_http_is_refused(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    blob = tmp_path / "blob"
    blob.write_bytes(b"abc")
    descriptor = Descriptor("application/octet-stream", sha256_digest(b"abc"), 3)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "http://storage.example/u?_state=s"})
        return httpx.Response(404)

    with pytest.raises(RegistryError, match="from https to http") as caught:
        client(basic_then(answer, seen)).push_blob("r", descriptor, blob)
    assert "_state" not in caught.value.diagnostics()
    assert [r.method for r in seen if r.url.host != REG] == []


def test_an_upgrade_to_https_on_the_same_host_gets_no_credentials_either() -> None:
    # httpx keeps Authorization on an http->https hop to the same host; an origin is
    # scheme, host and port, and credentials are bound to the registry's.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.scheme == "https":
            return httpx.Response(200, content=MANIFEST)
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(301, headers={"Location": f"https://{REG}/v2/r/manifests/v1"})

    client(handler, plain=True).get_manifest("r", "v1")
    (upgraded,) = [r for r in seen if r.url.scheme == "https"]
    assert "authorization" not in upgraded.headers


# -- the token realm -------------------------------------------------------------------------


def test_an_https_registry_with_a_plain_http_realm_gets_no_credentials() -> None:
    tokens: list[httpx.Request] = []

    def token() -> httpx.Response:
        tokens.append(httpx.Request("GET", "http://auth.example/token"))
        return httpx.Response(200, json={"token": "t"})

    with pytest.raises(AuthError, match="plain http"):
        client(bearer("http://auth.example/token", token)).ping()
    assert tokens == []


@pytest.mark.parametrize("realm", ["https://u:p@auth.example/token", "file:///etc/passwd"])
def test_a_realm_that_is_not_a_plain_https_url_is_refused(realm: str) -> None:
    with pytest.raises(AuthError, match="realm") as caught:
        client(bearer(realm, lambda: httpx.Response(200, json={"token": "t"}))).ping()
    assert ":p@" not in caught.value.diagnostics()


def test_a_token_endpoint_redirect_is_not_followed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "auth.example":
            return httpx.Response(307, headers={"Location": "https://evil.example/steal"})
        realm = "https://auth.example/token"
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})

    with pytest.raises(AuthError, match="redirect"):
        client(handler).ping()
    assert not any(r.url.host == "evil.example" for r in seen)


@pytest.mark.parametrize(
    "body",
    [
        b'{"token": "abc\\r\\nX-Injected: 1"}',
        b'{"token": "t\\u00e9"}',
        b'{"token": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"token": "' + b"a" * (5 << 20) + b'"}',
        b"[1, 2]",
    ],
    ids=["crlf", "non-ascii", "deep", "huge", "not-an-object"],
)
def test_an_unusable_token_answer_is_an_auth_error(body: bytes) -> None:
    answer = bearer("https://auth.example/token", lambda: httpx.Response(200, content=body))
    with pytest.raises(AuthError) as caught:
        client(answer).ping()
    assert caught.value.exit_code == ExitCode.REMOTE


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [(300, 300.0), (10**12, MAX_TOKEN_LIFETIME), (float("inf"), 60), (float("nan"), 60),
     (-5, 60), (True, 60), ("3600", 60), (None, 60)],
)  # fmt: skip
def test_expires_in_is_believed_within_reason(expires_in: object, lifetime: float) -> None:
    assert token_lifetime(expires_in) == lifetime


def test_a_huge_challenge_is_refused_at_once() -> None:
    header = "Bearer " + "a" * 90_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": header})

    with pytest.raises(AuthError, match="malformed"):
        client(handler).ping()


# -- bounded loops and waits -------------------------------------------------------------------


def test_an_absurd_retry_after_is_capped() -> None:
    c = client(lambda request: httpx.Response(503, headers={"Retry-After": "999999"}))
    sleeps: list[float] = []
    c._sleep = sleeps.append
    with pytest.raises(RegistryError, match="503"):
        c.ping()
    assert sleeps and max(sleeps) <= RetryPolicy().max_delay


def test_referrer_pages_that_loop_are_refused() -> None:
    digest = "sha256:" + "a" * 64
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
    link = {"Link": f'</v2/r/referrers/{digest}>; rel="next"'}
    handler = basic_then(lambda r: httpx.Response(200, headers=link, content=index.encode()), [])
    with pytest.raises(RegistryError, match="loop"):
        client(handler).referrers("r", digest)


def test_a_link_header_too_long_to_be_real_is_refused() -> None:
    link = {"Link": "<" * 20_000}
    handler = basic_then(lambda r: httpx.Response(200, headers=link, json={"tags": []}), [])
    with pytest.raises(RegistryError, match="Link"):
        client(handler).list_tags("r")


def test_a_non_numeric_content_length_is_no_crash() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, content=MANIFEST)
        response.headers["Content-Length"] = "lots"
        return response

    raw, _, _ = client(basic_then(answer, [])).get_manifest("r", "v1")
    assert raw == MANIFEST


# -- deadlines ---------------------------------------------------------------------------------


class Trickle(httpx.SyncByteStream):
    def __init__(self, data: bytes, pause: float) -> None:
        self.data, self.pause = data, pause

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self.data)):
            time.sleep(self.pause)
            yield self.data[i : i + 1]


def test_the_deadline_holds_on_any_transport() -> None:
    # A MockTransport has no sockets to bound: the check between body pieces does it.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Trickle(MANIFEST, 0.05))

    c = client(basic_then(answer, []), timeouts=TimeoutPolicy(request=0.3))
    with pytest.raises(RegistryError, match="deadline"):
        c.get_manifest("r", "v1")


class TrickledSocket:
    """A connection whose peer sends `answer` a byte per `pause` seconds, status line first;
    a read whose timeout is shorter than the pause times out, as a socket's would."""

    def __init__(self, answer: bytes, pause: float) -> None:
        self.answer, self.pause, self.sent = answer, pause, 0
        self.timeout: float | None = None

    def connect(self, host: str, port: int, timeout: float) -> TrickledSocket:
        return self

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def recv(self, max_bytes: int) -> bytes:
        if self.timeout is not None and self.timeout < self.pause:
            time.sleep(self.timeout)
            raise TimeoutError("timed out")
        time.sleep(self.pause)
        self.sent += 1
        return self.answer[self.sent - 1 : self.sent]

    def sendall(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_a_trickled_status_line_is_cut_off_at_the_deadline() -> None:
    # Between the bytes of a status line no code of ours runs: only the sockets can stop it.
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(MANIFEST), MANIFEST)
    socket = TrickledSocket(answer, pause=0.05)
    transport = Connections(connect=socket.connect)
    c = RegistryClient(REG, transport=transport, plain_http=True, use_config=False,
                       timeouts=TimeoutPolicy(request=0.3), sleep=lambda s: None)  # fmt: skip
    with c, pytest.raises(RegistryError, match="deadline"):
        c.get_manifest("r", "v1")
    assert 0 < socket.sent < len(b"HTTP/1.1 200 OK\r\n")


def test_a_trickled_answer_within_the_deadline_is_read_whole() -> None:
    # the same socket, slower deadline: the scripted peer is real enough to answer
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(MANIFEST), MANIFEST)
    socket = TrickledSocket(answer, pause=0)
    c = RegistryClient(REG, transport=Connections(connect=socket.connect), plain_http=True,
                       use_config=False, sleep=lambda s: None)  # fmt: skip
    with c:
        assert c.get_manifest("r", "v1")[0] == MANIFEST


@pytest.mark.usefixtures("no_proxy")
def test_the_client_made_here_sends_through_its_own_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, str, Timeouts]] = []

    def send_request(
        self: Connections, method: str, url: str, headers: object, content: object,
        *, timeouts: Timeouts, deadline: object,
    ) -> Response:  # fmt: skip
        sent.append((method, url, timeouts))
        return Response(200, content=MANIFEST)

    monkeypatch.setattr(Connections, "send_request", send_request)
    with RegistryClient(REG, use_config=False, timeouts=TimeoutPolicy(request=7)) as c:
        assert c.get_manifest("r", "v1")[0] == MANIFEST
    assert [(m, u) for m, u, _ in sent] == [("GET", f"https://{REG}/v2/r/manifests/v1")]
    assert sent[0][2].read == 7  # the client's timeouts reach the sockets


@pytest.mark.usefixtures("no_proxy")
def test_with_a_proxy_configured_httpx_transports_take_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(Connections, "send_request", lambda self, m, u, *a, **k: sent.append(u))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # discard: nothing listens
    with RegistryClient(REG, use_config=False) as c, pytest.raises(RegistryError, match="Connect"):
        c.ping()
    assert sent == []


@pytest.mark.usefixtures("no_proxy")
@pytest.mark.parametrize("name", ["https_proxy", "ALL_PROXY", "http_proxy"])
def test_any_proxy_variable_in_either_case_counts(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "http://127.0.0.1:9")
    assert registry_module._proxied()
    monkeypatch.setenv(name, "")
    assert not registry_module._proxied()


def test_timeouts_come_from_the_environment() -> None:
    policy = TimeoutPolicy.from_env(
        {"WASMCTL_REGISTRY_TIMEOUT": "7.5", "WASMCTL_REGISTRY_MIN_RATE": "0"}
    )
    assert policy == TimeoutPolicy(request=7.5, min_rate=0)
    assert TimeoutPolicy.from_env({}) == TimeoutPolicy()


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf", "nan"])
def test_a_bad_timeout_setting_is_an_input_error(value: str) -> None:
    with pytest.raises(InputError, match="WASMCTL_REGISTRY_TIMEOUT"):
        TimeoutPolicy.from_env({"WASMCTL_REGISTRY_TIMEOUT": value})


# -- secrets stay out of messages --------------------------------------------------------------


def test_a_url_in_a_message_loses_its_userinfo_and_query() -> None:
    redacted = registry_module._redact("https://u:pw@h.example:5000/v2/r/blobs/uploads/x?_state=s")
    assert redacted == "https://h.example:5000/v2/r/blobs/uploads/x"


def test_a_credential_helper_answering_no_object_is_an_auth_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = tmp_path / "docker-credential-liar"
    helper.write_text("#!/bin/sh\necho '[\"" + PASSWORD + "\"]'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "liar"}))
    with pytest.raises(AuthError) as caught:
        load_credentials(REG, config)
    assert PASSWORD not in caught.value.diagnostics()


def test_a_deeply_nested_credentials_file_is_an_input_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(InputError, match="nested"):
        load_credentials(REG, config)
