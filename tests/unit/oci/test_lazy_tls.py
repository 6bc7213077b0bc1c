"""A plain-HTTP registry never makes a TLS context: loading the CA bundle costs ~25 ms of CPU
(issue 15), and a registry on loopback or behind `--plain-http` has no use for it."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.loopback import QuietHandler, ServerThread
from tests.registry import RegistryServer
from wasmctl.oci import http
from wasmctl.oci.http import Connections, Timeouts
from wasmctl.oci.registry import RegistryClient


class _Made(Exception):
    """Raised by a context factory, so that a test sees it was called."""


def _refuse() -> ssl.SSLContext:
    raise _Made


class _Ok(QuietHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def http_server() -> Iterator[ServerThread]:
    serving = ServerThread(ThreadingHTTPServer(("127.0.0.1", 0), _Ok), "lazy-tls")
    yield serving
    serving.stop()


def _get(connections: Connections, url: str) -> int:
    response = connections.send_request("GET", url, [], None, timeouts=Timeouts(), deadline=None)
    response.read()
    return response.status_code


def test_plain_http_requests_make_no_tls_context(http_server: ServerThread) -> None:
    connections = Connections(_refuse)
    assert _get(connections, f"http://{http_server.host}/v2/") == 200
    assert _get(connections, f"http://{http_server.host}/v2/") == 200
    connections.close()


def test_the_first_https_request_makes_the_tls_context(http_server: ServerThread) -> None:
    with pytest.raises(_Made):
        _get(Connections(_refuse), f"https://{http_server.host}/v2/")


def test_a_plain_http_registry_client_loads_no_ca_bundle(
    registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for proxy in ("http_proxy", "https_proxy", "all_proxy"):  # httpx's own transport then
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.upper(), raising=False)
    monkeypatch.setattr(http, "default_ssl_context", _refuse)
    with RegistryClient(registry.host, plain_http=True, use_config=False) as client:
        client.ping()


def test_an_https_registry_client_still_verifies(
    http_server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    for proxy in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.upper(), raising=False)
    monkeypatch.setattr(http, "default_ssl_context", _refuse)
    client = RegistryClient(http_server.host, plain_http=False, use_config=False)
    with client, pytest.raises(_Made):
        client.ping()
