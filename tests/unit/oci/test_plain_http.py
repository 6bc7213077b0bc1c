"""Which registries speak plain HTTP: loopback by default, others when `--plain-http` names
them (issue 15, manner 1; docs/registry.md "Plain HTTP")."""

from __future__ import annotations

import httpx
import pytest

from wasmctl.errors import InputError
from wasmctl.oci.reference import is_loopback_registry, plain_http_host, speaks_plain_http
from wasmctl.oci.source import RegistryOptions

NONE: frozenset[str] = frozenset()


@pytest.fixture(autouse=True)
def no_credentials(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients made here read an empty credentials file, never the machine's."""
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path_factory.mktemp("auth") / "auth.json"))


@pytest.mark.parametrize(
    "registry",
    [
        "localhost",
        "localhost:5000",
        "127.0.0.1:5000",
        "127.1.2.3:5000",
        "127.255.255.254",
        "[::1]:5000",
        "[::1]",
    ],
)
def test_loopback_registries_are_plain_http_by_default(registry: str) -> None:
    assert is_loopback_registry(registry)
    assert speaks_plain_http(registry, NONE)


@pytest.mark.parametrize(
    "registry",
    [
        "localhost.example.com",
        "localhost.example.com:5000",
        "127.0.0.1.nip.io",
        "127.0.0.1.nip.io:5000",
        "mylocalhost:5000",
        "128.0.0.1:5000",
        "10.0.0.1:5000",
        "[::2]:5000",
        "ghcr.io",
        "docker.io",
    ],
)
def test_names_that_only_look_local_get_tls(registry: str) -> None:
    assert not is_loopback_registry(registry)
    assert not speaks_plain_http(registry, NONE)


def test_a_ca_file_says_a_loopback_registry_speaks_tls() -> None:
    assert not speaks_plain_http("127.0.0.1:5000", NONE, ca_file=True)
    assert speaks_plain_http("127.0.0.1:5000", frozenset({"127.0.0.1:5000"}), ca_file=True)


def test_a_named_host_with_a_port_is_that_port_only() -> None:
    named = frozenset({"registry.lan:5000"})
    assert speaks_plain_http("registry.lan:5000", named)
    assert not speaks_plain_http("registry.lan:5001", named)
    assert not speaks_plain_http("registry.lan", named)


def test_a_named_host_without_a_port_is_every_port() -> None:
    named = frozenset({"registry.lan"})
    assert speaks_plain_http("registry.lan", named)
    assert speaks_plain_http("registry.lan:5000", named)
    assert not speaks_plain_http("other.lan:5000", named)


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("localhost:5000", "localhost:5000"),
        ("127.0.0.1:38211", "127.0.0.1:38211"),
        ("registry.lan", "registry.lan"),
        ("Registry.LAN:5000", "registry.lan:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("http://registry.lan:5000", "registry.lan:5000"),
        ("http://registry.lan:5000/", "registry.lan:5000"),
    ],
)
def test_plain_http_values_are_read_as_hosts(value: str, host: str) -> None:
    assert plain_http_host(value) == host


@pytest.mark.parametrize(
    "value",
    [
        "oci:out:v1",
        "oci-archive:app.tar",
        "oci-archive:app.tar:v1",
        "localhost:5000/app:v1",
        "ghcr.io/acme/app",
        "http://registry.lan:5000/v2/",
        "app.wasm",
        "app.tar",
        "true",
        "FALSE",
        "1",
        "0",
        "yes",
        "no",
        "https://registry.lan:5000",
        "",
        "a b",
    ],
)
def test_values_that_are_not_a_host_are_refused_with_the_hint(value: str) -> None:
    with pytest.raises(InputError) as caught:
        plain_http_host(value)
    assert caught.value.exit_code == 2
    assert "--plain-http takes a registry host such as localhost:5000" in (caught.value.hint or "")
    assert "plain HTTP already" in (caught.value.hint or "")


def _scheme_used(options: RegistryOptions, registry: str) -> str:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.scheme)
        return httpx.Response(200, json={})

    with RegistryOptions(
        plain_http=options.plain_http,
        ca_file=options.ca_file,
        transport=httpx.MockTransport(answer),
    ) as held:
        held.sessions.session(registry).client.ping()
    return seen[0]


def test_registry_options_reach_loopback_over_http_and_others_over_https() -> None:
    options = RegistryOptions()
    assert _scheme_used(options, "localhost:5000") == "http"
    assert _scheme_used(options, "127.1.2.3:5000") == "http"
    assert _scheme_used(options, "[::1]:5000") == "http"
    assert _scheme_used(options, "localhost.example.com:5000") == "https"
    assert _scheme_used(RegistryOptions(plain_http=frozenset({"reg.lan"})), "reg.lan:80") == "http"
