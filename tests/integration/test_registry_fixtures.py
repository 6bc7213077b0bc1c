"""The registry fixtures themselves work: each configuration of Debian's docker-registry, the
token issuer, and every fault of the proxy, exercised with plain httpx (no wasmctl code)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.faultproxy import FaultKind, FaultProxy
from tests.registry import (
    PASSWORD,
    USERNAME,
    RegistryServer,
    Scope,
    TokenIssuer,
    htpasswd_line,
    registry_binary,
    unique_repo,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
NAME_RE = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")


# -- plain httpx helpers: just enough of the distribution protocol -------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` merged into its existing query (distribution adds ``_state``)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def start_upload(client: httpx.Client, base: str, repo: str) -> str:
    response = client.post(f"{base}/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def push_blob(client: httpx.Client, base: str, repo: str, data: bytes) -> str:
    """Monolithic upload: POST for a session, PUT the bytes with their digest."""
    digest = sha256(data)
    location = start_upload(client, base, repo)
    response = client.put(
        with_query(location, digest=digest),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    return digest


def manifest_for(config: bytes, layer: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.wasm.config.v0+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/wasm", "digest": sha256(layer), "size": len(layer)}
            ],
        },
        separators=(",", ":"),
    ).encode()


def round_trip(client: httpx.Client, server_url: str, repo: str) -> bytes:
    """Push a config and a layer blob and a manifest tagged ``v1``; pull the manifest back."""
    config = b'{"architecture":"wasm","os":"wasip1"}'
    layer = b"\0asm\1\0\0\0" + os.urandom(64)
    push_blob(client, server_url, repo, config)
    push_blob(client, server_url, repo, layer)
    manifest = manifest_for(config, layer)
    put = client.put(
        f"{server_url}/v2/{repo}/manifests/v1",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == sha256(manifest)
    got = client.get(f"{server_url}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200, got.text
    assert got.content == manifest
    assert got.headers["Docker-Content-Digest"] == sha256(manifest)
    blob = client.get(f"{server_url}/v2/{repo}/blobs/{sha256(layer)}")
    assert blob.content == layer
    return manifest


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="a:b:pull,push"`` -> scheme and parameters."""
    scheme, _, rest = header.partition(" ")
    return scheme, dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))


def normalise(scope: str) -> str:
    parsed = Scope.parse(scope)
    return parsed.render() if parsed is not None else scope


class TokenAuth(httpx.Auth):
    """The docker token flow, minimally: on a Bearer challenge, fetch a token for the
    challenge's scopes (one ``scope`` parameter each) and retry; tokens cached per scope set.

    Scopes are normalised (actions sorted) first: distribution 2.8 lists a challenge's actions
    in Go map order, ``pull,push`` or ``push,pull`` at random.
    """

    requires_response_body = True

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.credentials = None
        if username is not None and password is not None:
            self.credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.tokens: dict[frozenset[str], str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
        assert scheme == "Bearer"
        scopes = frozenset(normalise(text) for text in params.get("scope", "").split())
        if scopes not in self.tokens:
            query = httpx.QueryParams(
                [("service", params["service"]), *(("scope", s) for s in sorted(scopes))]
            )
            headers = {}
            if self.credentials is not None:
                headers["Authorization"] = f"Basic {self.credentials}"
            token_response = yield httpx.Request(
                "GET", params["realm"], params=query, headers=headers
            )
            assert token_response.status_code == 200, token_response.text
            body = token_response.json()
            self.tokens[scopes] = body.get("token") or body["access_token"]
        request.headers["Authorization"] = f"Bearer {self.tokens[scopes]}"
        yield request


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


# -- fixture plumbing -----------------------------------------------------------------


def test_unique_repo_names_are_valid_and_distinct() -> None:
    names = {unique_repo("Test Something[param-1]") for _ in range(50)}
    assert len(names) == 50
    assert all(NAME_RE.fullmatch(name) for name in names)
    assert unique_repo("!!!").startswith("wasmctl-tests/test-")


def test_repo_name_fixture_is_a_valid_repository_name(repo_name: str) -> None:
    assert NAME_RE.fullmatch(repo_name)
    assert "test-repo-name-fixture" in repo_name


def test_missing_binary_fails_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.registry.REGISTRY_BINARY", "/nonexistent/docker-registry")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match=r"scripts/setup --test"):
        registry_binary()


def test_htpasswd_lines_use_bcrypt_cost_4() -> None:
    assert re.fullmatch(r"u:\$2[by]\$04\$[./A-Za-z0-9]{53}\n", htpasswd_line("u", "p"))


# -- plain HTTP -----------------------------------------------------------------------


def test_plain_registry_answers_v2(registry: RegistryServer, client: httpx.Client) -> None:
    response = client.get(f"{registry.url}/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert (registry.scheme, registry.ca_file, registry.username) == ("http", None, None)
    assert registry.url == f"http://{registry.host}"
    assert registry.storage.is_dir() and registry.log.is_file()


def test_plain_registry_gives_an_absolute_location_with_state(
    registry: RegistryServer, client: httpx.Client, repo_name: str
) -> None:
    location = start_upload(client, registry.url, repo_name)
    assert location.startswith(f"{registry.url}/v2/{repo_name}/blobs/uploads/")
    assert "_state=" in urlsplit(location).query


def test_plain_registry_round_trips_blobs_and_a_manifest(
    registry: RegistryServer, client: httpx.Client, repo_name: str
) -> None:
    round_trip(client, registry.url, repo_name)


def test_repositories_are_stored_under_the_storage_directory(
    registry: RegistryServer, client: httpx.Client, repo_name: str
) -> None:
    push_blob(client, registry.url, repo_name, b"stored")
    repositories = registry.storage / "docker" / "registry" / "v2" / "repositories"
    assert (repositories / repo_name / "_layers").is_dir()


# -- TLS ------------------------------------------------------------------------------


def test_tls_registry_verifies_with_its_ca(tls_registry: RegistryServer) -> None:
    assert tls_registry.scheme == "https" and tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_file is not None
    assert tls_registry.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with httpx.Client(verify=tls_registry.verify) as client:
        assert client.get(f"{tls_registry.url}/v2/").status_code == 200


def test_tls_registry_is_refused_without_its_ca(tls_registry: RegistryServer) -> None:
    with httpx.Client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        client.get(f"{tls_registry.url}/v2/")


def test_tls_registry_round_trips_blobs_and_a_manifest(
    tls_registry: RegistryServer, repo_name: str
) -> None:
    with httpx.Client(verify=tls_registry.verify) as client:
        location = start_upload(client, tls_registry.url, repo_name)
        assert location.startswith("https://")
        round_trip(client, tls_registry.url, repo_name)


# -- htpasswd Basic auth --------------------------------------------------------------


def test_basic_registry_challenges_with_basic(
    basic_registry: RegistryServer, client: httpx.Client
) -> None:
    response = client.get(f"{basic_registry.url}/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="basic-realm"'
    assert (basic_registry.username, basic_registry.password) == (USERNAME, PASSWORD)
    assert basic_registry.scheme == "http"  # distribution 2.8 allows htpasswd without TLS


def test_basic_registry_rejects_a_wrong_password(
    basic_registry: RegistryServer, client: httpx.Client
) -> None:
    assert basic_registry.username is not None
    wrong = httpx.BasicAuth(basic_registry.username, "wrong")
    assert client.get(f"{basic_registry.url}/v2/", auth=wrong).status_code == 401


def test_basic_registry_round_trips_with_credentials(
    basic_registry: RegistryServer, repo_name: str
) -> None:
    assert basic_registry.username is not None and basic_registry.password is not None
    auth = httpx.BasicAuth(basic_registry.username, basic_registry.password)
    with httpx.Client(auth=auth) as client:
        assert client.get(f"{basic_registry.url}/v2/").status_code == 200
        round_trip(client, basic_registry.url, repo_name)


# -- Bearer tokens --------------------------------------------------------------------


def test_token_registry_challenges_with_the_issuer_realm(
    token_registry: RegistryServer, token_issuer: TokenIssuer, client: httpx.Client
) -> None:
    response = client.get(f"{token_registry.url}/v2/")
    assert response.status_code == 401
    scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params == {"realm": token_issuer.realm, "service": token_issuer.service}
    repo = client.get(f"{token_registry.url}/v2/some/repo/tags/list")
    assert parse_challenge(repo.headers["WWW-Authenticate"])[1]["scope"] == (
        "repository:some/repo:pull"
    )


def test_token_registry_round_trips_with_the_token_dance(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str
) -> None:
    auth = TokenAuth(token_registry.username, token_registry.password)
    with httpx.Client(auth=auth) as client:
        round_trip(client, token_registry.url, repo_name)
    requests = token_issuer.requests
    # one token per scope set: push (pull,push) and pull (the manifest GET asks for pull only)
    assert [r.scopes for r in requests] == [
        (f"repository:{repo_name}:pull,push",),
        (f"repository:{repo_name}:pull",),
    ]
    assert all(r.method == "GET" and r.grant_type is None for r in requests)
    assert all(r.credentials == "basic" and r.username == USERNAME for r in requests)
    assert all(r.service == token_issuer.service and r.status == 200 for r in requests)
    assert requests[0].granted == (f"repository:{repo_name}:pull,push",)


def test_a_mount_asks_pull_on_the_source_repository(
    token_registry: RegistryServer, token_issuer: TokenIssuer
) -> None:
    source, target = unique_repo("mount-source"), unique_repo("mount-target")
    auth = TokenAuth(USERNAME, PASSWORD)
    with httpx.Client(auth=auth) as client:
        digest = push_blob(client, token_registry.url, source, b"mount me")
        token_issuer.clear_requests()
        mounted = client.post(
            f"{token_registry.url}/v2/{target}/blobs/uploads/",
            params={"mount": digest, "from": source},
        )
    assert mounted.status_code == 201
    (request,) = token_issuer.requests
    assert request.scope_set == {f"repository:{target}:pull,push", f"repository:{source}:pull"}
    assert len(request.scope_params) == 2  # one scope parameter per scope


def test_anonymous_clients_get_no_access_by_default(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str
) -> None:
    with httpx.Client(auth=TokenAuth()) as client:
        assert client.get(f"{token_registry.url}/v2/").status_code == 200
        denied = client.get(f"{token_registry.url}/v2/{repo_name}/tags/list")
    assert denied.status_code == 401
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    last = token_issuer.requests[-1]
    assert (last.credentials, last.username, last.granted) == ("none", None, ())


def test_anonymous_pull_can_be_allowed(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str
) -> None:
    token_issuer.anonymous_actions = frozenset({"pull"})
    with httpx.Client(auth=TokenAuth()) as client:
        listing = client.get(f"{token_registry.url}/v2/{repo_name}/tags/list")
    assert listing.status_code == 404  # authorised; the repository does not exist yet
    assert token_issuer.requests[-1].granted == (f"repository:{repo_name}:pull",)


def test_wrong_credentials_are_refused_and_recorded(
    token_registry: RegistryServer, token_issuer: TokenIssuer, client: httpx.Client
) -> None:
    response = client.get(
        token_issuer.realm,
        params={"service": token_issuer.service, "scope": "repository:x/y:pull"},
        auth=(USERNAME, "wrong"),
    )
    assert response.status_code == 401
    (request,) = token_issuer.requests
    assert (request.credentials, request.username, request.status) == ("basic", None, 401)


def test_withheld_actions_provoke_insufficient_scope(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str
) -> None:
    token_issuer.withhold = frozenset({"push"})
    with httpx.Client(auth=TokenAuth(USERNAME, PASSWORD)) as client:
        response = client.post(f"{token_registry.url}/v2/{repo_name}/blobs/uploads/")
    assert response.status_code == 401
    _, params = parse_challenge(response.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope"
    assert normalise(params["scope"]) == f"repository:{repo_name}:pull,push"
    (request,) = token_issuer.requests
    assert request.scopes == (f"repository:{repo_name}:pull,push",)
    assert request.granted == (f"repository:{repo_name}:pull",)


def test_expires_in_is_configurable_and_omittable(
    token_registry: RegistryServer, token_issuer: TokenIssuer, client: httpx.Client
) -> None:
    params = {"service": token_issuer.service, "scope": "repository:x/y:pull"}
    token_issuer.expires_in = 2
    body = client.get(token_issuer.realm, params=params, auth=(USERNAME, PASSWORD)).json()
    assert body["expires_in"] == 2 and body["token"] == body["access_token"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    token_issuer.expires_in = None
    token_issuer.response_fields = ("access_token",)
    body = client.get(token_issuer.realm, params=params, auth=(USERNAME, PASSWORD)).json()
    assert "expires_in" not in body and "token" not in body and "access_token" in body


def test_a_token_past_its_exp_is_rejected_as_invalid(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str
) -> None:
    token_issuer.exp_offset = -3600
    with httpx.Client(auth=TokenAuth(USERNAME, PASSWORD)) as client:
        response = client.get(f"{token_registry.url}/v2/{repo_name}/tags/list")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_fresh_token_is_accepted_again_after_reset(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str
) -> None:
    # the knobs changed by the previous tests are back to their defaults
    assert token_issuer.exp_offset == 0 and token_issuer.withhold == frozenset()
    assert token_issuer.requests == []
    with httpx.Client(auth=TokenAuth(USERNAME, PASSWORD)) as client:
        assert client.get(f"{token_registry.url}/v2/{repo_name}/tags/list").status_code == 404


def test_oauth_password_grant_can_return_a_refresh_token(
    token_registry: RegistryServer, token_issuer: TokenIssuer, client: httpx.Client
) -> None:
    response = client.post(
        token_issuer.realm,
        data={
            "grant_type": "password",
            "username": USERNAME,
            "password": PASSWORD,
            "service": token_issuer.service,
            "client_id": "wasmctl",
            "access_type": "offline",
            "scope": "repository:x/y:pull repository:x/z:pull,push",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"] in token_issuer.refresh_tokens
    assert "token" not in body and body["access_token"]
    assert body["scope"] == "repository:x/y:pull repository:x/z:pull,push"
    (request,) = token_issuer.requests
    assert (request.method, request.grant_type, request.credentials) == (
        "POST", "password", "password",
    )  # fmt: skip
    assert request.client_id == "wasmctl" and request.offline and request.refresh_token_issued
    assert request.scopes == ("repository:x/y:pull", "repository:x/z:pull,push")


def test_identity_tokens_are_exchanged_with_the_refresh_token_grant(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str
) -> None:
    identity = token_issuer.new_refresh_token()
    with httpx.Client() as client:
        token = client.post(
            token_issuer.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": identity,
                "service": token_issuer.service,
                "client_id": "wasmctl",
                "scope": f"repository:{repo_name}:pull,push",
            },
        ).json()["access_token"]
        upload = client.post(
            f"{token_registry.url}/v2/{repo_name}/blobs/uploads/",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert upload.status_code == 202
    (request,) = token_issuer.requests
    assert (request.grant_type, request.credentials, request.username) == (
        "refresh_token", "refresh_token", USERNAME,
    )  # fmt: skip


def test_unknown_identity_tokens_and_bad_grants_are_refused(
    token_registry: RegistryServer, token_issuer: TokenIssuer, client: httpx.Client
) -> None:
    base = {"service": token_issuer.service, "scope": "repository:x/y:pull"}
    unknown = client.post(
        token_issuer.realm, data={**base, "grant_type": "refresh_token", "refresh_token": "nope"}
    )
    assert unknown.status_code == 401 and unknown.json() == {"error": "invalid_grant"}
    bad = client.post(token_issuer.realm, data={**base, "grant_type": "client_credentials"})
    assert bad.status_code == 400
    assert [r.status for r in token_issuer.requests] == [401, 400]


def test_oauth_can_be_switched_off(
    token_registry: RegistryServer, token_issuer: TokenIssuer, client: httpx.Client
) -> None:
    token_issuer.oauth_enabled = False
    response = client.post(token_issuer.realm, data={"grant_type": "password"})
    assert response.status_code == 404


def test_a_policy_decides_per_user_and_repository(
    token_registry: RegistryServer, token_issuer: TokenIssuer, client: httpx.Client
) -> None:
    def read_only_mirror(username: str | None, scope: Scope) -> frozenset[str]:
        return scope.actions & {"pull"} if scope.name.startswith("mirror/") else scope.actions

    token_issuer.policy = read_only_mirror
    client.get(
        token_issuer.realm,
        params=[
            ("service", token_issuer.service),
            ("scope", "repository:mirror/a:pull,push"),
            ("scope", "repository:own/a:pull,push"),
        ],
        auth=(USERNAME, PASSWORD),
    )
    assert token_issuer.requests[0].granted == (
        "repository:mirror/a:pull",
        "repository:own/a:pull,push",
    )


# -- the fault proxy ------------------------------------------------------------------


def test_proxy_forwards_a_round_trip_and_keeps_locations_on_itself(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    location = start_upload(client, fault_proxy.url, repo_name)
    assert location.startswith(f"{fault_proxy.url}/v2/{repo_name}/blobs/uploads/")
    manifest = round_trip(client, fault_proxy.url, repo_name)
    assert fault_proxy.count("PUT", r"/manifests/") == 1
    assert fault_proxy.request_bytes("PUT", r"/manifests/") == len(manifest)
    assert fault_proxy.response_bytes("GET", r"/manifests/") == len(manifest)
    assert fault_proxy.count("POST", r"/blobs/uploads/$") == 3
    assert {r.status for r in fault_proxy.requests} == {201, 202, 200}


def test_proxy_keeps_client_connections_alive(
    fault_proxy: FaultProxy, client: httpx.Client
) -> None:
    for _ in range(3):
        assert client.get(f"{fault_proxy.url}/v2/").status_code == 200
    assert len({r.connection for r in fault_proxy.requests}) == 1


def test_proxy_counts_blob_bytes_so_a_repush_can_be_shown_to_send_none(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    data = os.urandom(100_000)
    push_blob(client, fault_proxy.url, repo_name, data)
    assert fault_proxy.request_bytes(path=r"/blobs/uploads/") == len(data)
    fault_proxy.clear_log()
    # a client that checks first sends nothing the second time
    exists = client.head(f"{fault_proxy.url}/v2/{repo_name}/blobs/{sha256(data)}")
    assert exists.status_code == 200
    assert fault_proxy.request_bytes(path=r"/blobs/uploads/") == 0
    assert fault_proxy.count(path=r"/blobs/uploads/") == 0
    assert fault_proxy.count("HEAD") == 1


def test_proxy_streams_chunked_request_bodies(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    pieces = [os.urandom(70_000) for _ in range(3)]
    location = start_upload(client, fault_proxy.url, repo_name)
    patched = client.patch(location, content=iter(pieces))  # no length: chunked
    assert patched.status_code == 202, patched.text
    data = b"".join(pieces)
    put = client.put(with_query(patched.headers["Location"], digest=sha256(data)))
    assert put.status_code == 201, put.text
    assert fault_proxy.request_bytes("PATCH") == len(data)


def test_proxy_resets_after_n_bytes_of_a_body(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    data = os.urandom(200_000)
    digest = push_blob(client, fault_proxy.url, repo_name, data)
    fault = fault_proxy.reset_connection("GET", r"/blobs/sha256:", after_bytes=1000)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get(f"{fault_proxy.url}/v2/{repo_name}/blobs/{digest}")
    (failed,) = fault_proxy.matching("GET", r"/blobs/sha256:")
    assert (failed.status, failed.response_bytes, failed.fault) == (200, 1000, FaultKind.RESET)
    assert fault.hits == 1 and fault.remaining == 0
    # the fault was used up: the next download succeeds
    assert client.get(f"{fault_proxy.url}/v2/{repo_name}/blobs/{digest}").content == data


def test_proxy_can_reset_before_forwarding(
    fault_proxy: FaultProxy, registry: RegistryServer, client: httpx.Client, repo_name: str
) -> None:
    fault_proxy.reset_connection("POST", r"/blobs/uploads/", after_bytes=None)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.post(f"{fault_proxy.url}/v2/{repo_name}/blobs/uploads/")
    (request,) = fault_proxy.requests
    assert request.status is None
    assert f"/v2/{repo_name}/blobs/uploads/" not in registry.log.read_text()


def test_proxy_answers_429_with_retry_after_for_the_next_k_requests(
    fault_proxy: FaultProxy, client: httpx.Client
) -> None:
    fault_proxy.fail(429, "GET", r"^/v2/$", times=2, retry_after=3)
    answers = [client.get(f"{fault_proxy.url}/v2/") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "Retry-After" not in answers[2].headers


def test_proxy_answers_500_without_forwarding_so_the_upload_can_be_retried(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    data = os.urandom(50_000)
    location = start_upload(client, fault_proxy.url, repo_name)
    fault_proxy.fail(500, "PUT", r"/blobs/uploads/")
    target = with_query(location, digest=sha256(data))
    first = client.put(target, content=data)
    assert first.status_code == 500
    assert first.json()["errors"][0]["code"] == "UNKNOWN"
    second = client.put(target, content=data)  # same session: the registry never saw the 500
    assert second.status_code == 201
    assert fault_proxy.request_bytes("PUT") == 2 * len(data)


def test_proxy_truncates_a_body(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    data = os.urandom(10_000)
    digest = push_blob(client, fault_proxy.url, repo_name, data)
    fault_proxy.truncate("GET", r"/blobs/sha256:", after_bytes=4096)
    url = f"{fault_proxy.url}/v2/{repo_name}/blobs/{digest}"
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as response:
        assert response.headers["Content-Length"] == str(len(data))
        for piece in response.iter_bytes():
            received += piece
    assert bytes(received) == data[:4096]
    assert client.get(url).content == data


def test_proxy_serves_a_wrong_blob_for_a_digest(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    data = b"the real blob"
    digest = push_blob(client, fault_proxy.url, repo_name, data)
    fault_proxy.serve_wrong_body(rf"/blobs/{digest}$", b"an impostor, longer than the blob")
    response = client.get(f"{fault_proxy.url}/v2/{repo_name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.content == b"an impostor, longer than the blob"
    assert sha256(response.content) != digest


def test_proxy_faults_match_method_and_path(
    fault_proxy: FaultProxy, client: httpx.Client, repo_name: str
) -> None:
    fault_proxy.fail(503, "HEAD", r"/blobs/", times=None)
    missing = f"{fault_proxy.url}/v2/{repo_name}/blobs/{sha256(b'x')}"
    assert client.get(missing).status_code == 404  # GET does not match
    assert client.head(missing).status_code == 503
    assert client.head(missing).status_code == 503  # times=None: every time
    fault_proxy.clear_faults()
    assert client.head(missing).status_code == 404


def test_registry_startup_is_fast(tmp_path: Path) -> None:
    from tests.registry import run_registry

    started = time.monotonic()
    with run_registry(tmp_path / "r") as server:
        elapsed = time.monotonic() - started
        assert server.log.read_text()
    assert elapsed < 3.0, f"startup took {elapsed:.2f} s"
