"""The registry protocol's edges, on respx (what the local registry cannot show).

The referrers API, `OCI-Subject`, relative `Location`s with queries, chunked uploads,
token scopes, pagination, `Retry-After` and Docker Hub's names.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import httpx
import pytest
import respx

from wasmctl.oci import media_types as mt
from wasmctl.oci import registry as registry_module
from wasmctl.oci.auth import Credentials, config_key, load_credentials, parse_challenge
from wasmctl.oci.models import Descriptor, Index, Manifest, sha256_digest
from wasmctl.oci.referrers import fallback_tag, list_referrers, push_referrer
from wasmctl.oci.registry import RegistryClient, RetryPolicy

REG = "reg.example"
BASE = f"https://{REG}"
DIGEST = "sha256:" + "a" * 64


def client(**kw: object) -> RegistryClient:
    # respx routes httpx's own transport; the client sends through it when handed one
    kw.setdefault("transport", httpx.HTTPTransport())
    sleeps: list[float] = []
    c = RegistryClient(REG, use_config=False, sleep=sleeps.append,
                       retry=RetryPolicy(attempts=3), **kw)  # type: ignore[arg-type]  # fmt: skip
    c.sleeps = sleeps  # type: ignore[attr-defined]
    return c


def referrer_bytes(artifact_type: str = "application/example") -> bytes:
    empty = Descriptor.of(mt.OCI_EMPTY, mt.EMPTY_JSON)
    subject = Descriptor(mt.OCI_MANIFEST, DIGEST, 100)
    return Manifest(empty, (empty,), artifact_type=artifact_type, subject=subject).to_bytes()


@respx.mock(assert_all_called=False)
def test_oci_subject_means_no_fallback_index(respx_mock: respx.MockRouter) -> None:
    raw = referrer_bytes()
    put = respx_mock.put(f"{BASE}/v2/r/manifests/{sha256_digest(raw)}").respond(
        201, headers={"OCI-Subject": DIGEST, "Docker-Content-Digest": sha256_digest(raw)}
    )
    fallback = respx_mock.route(url__regex=rf".*/manifests/{fallback_tag(DIGEST)}")
    result = push_referrer(client(), "r", raw)
    assert put.called and not fallback.called
    assert not result.fallback_updated


@respx.mock(assert_all_called=False)
def test_referrers_api_is_used_and_paginated(respx_mock: respx.MockRouter) -> None:
    one = Descriptor(mt.OCI_MANIFEST, "sha256:" + "1" * 64, 10, artifact_type="x/sbom")
    two = Descriptor(mt.OCI_MANIFEST, "sha256:" + "2" * 64, 10, artifact_type="x/sig")
    respx_mock.get(f"{BASE}/v2/r/referrers/{DIGEST}", params={"last": "1"}).respond(
        200, content=Index((two,)).to_bytes()
    )
    respx_mock.get(f"{BASE}/v2/r/referrers/{DIGEST}").respond(
        200, content=Index((one,)).to_bytes(),
        headers={"Link": f'</v2/r/referrers/{DIGEST}?last=1>; rel="next"'},
    )  # fmt: skip
    fallback = respx_mock.route(url__regex=r".*/manifests/sha256-")
    found = list_referrers(client(), "r", DIGEST)
    assert [d.artifact_type for d in found] == ["x/sbom", "x/sig"]
    assert list_referrers(client(), "r", DIGEST, "x/sig")[0].digest == two.digest
    assert not fallback.called


@respx.mock(assert_all_called=False)
def test_no_referrers_api_falls_back_to_the_tag(respx_mock: respx.MockRouter) -> None:
    listed = Descriptor(mt.OCI_MANIFEST, "sha256:" + "3" * 64, 10, artifact_type="x/sbom")
    respx_mock.get(f"{BASE}/v2/r/referrers/{DIGEST}").respond(404, text="404 page not found")
    raw = Index((listed,)).to_bytes()
    respx_mock.get(f"{BASE}/v2/r/manifests/{fallback_tag(DIGEST)}").respond(
        200, content=raw, headers={"Content-Type": mt.OCI_INDEX}
    )
    assert list_referrers(client(), "r", DIGEST) == [listed]


@respx.mock(assert_all_called=False)
def test_relative_location_with_a_query_is_merged(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    data = b"\0asm\1\0\0\0"
    blob = tmp_path / "b"
    blob.write_bytes(data)
    descriptor = Descriptor.of(mt.WASM_LAYER, data)
    respx_mock.head(f"{BASE}/v2/r/blobs/{descriptor.digest}").respond(404)
    respx_mock.post(f"{BASE}/v2/r/blobs/uploads/").respond(
        202, headers={"Location": "/v2/r/blobs/uploads/u1?_state=xyz"}
    )
    put = respx_mock.put(url__startswith=f"{BASE}/v2/r/blobs/uploads/u1").respond(
        201, headers={"Docker-Content-Digest": descriptor.digest}
    )
    assert client().push_blob("r", descriptor, blob) == len(data)
    request = put.calls.last.request
    assert dict(request.url.params) == {"_state": "xyz", "digest": descriptor.digest}
    assert request.content == data


@respx.mock(assert_all_called=False)
def test_large_blobs_go_in_chunks_following_the_newest_location(
    respx_mock: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "MONOLITHIC_MAX", 10)
    monkeypatch.setattr(registry_module, "UPLOAD_CHUNK", 8)
    data = bytes(range(20))
    blob = tmp_path / "b"
    blob.write_bytes(data)
    descriptor = Descriptor.of(mt.WASM_LAYER, data)
    respx_mock.head(url__regex=r".*/blobs/sha256:.*").respond(404)
    respx_mock.post(f"{BASE}/v2/r/blobs/uploads/").respond(202, headers={"Location": "/up/0"})
    received: list[tuple[str, str, bytes]] = []

    def patch(request: httpx.Request) -> httpx.Response:
        n = len(received)
        received.append((request.url.path, request.headers["Content-Range"], request.read()))
        return httpx.Response(202, headers={"Location": f"/up/{n + 1}?_state=s{n + 1}"})

    respx_mock.patch(url__regex=r".*/up/\d+.*").mock(side_effect=patch)
    put = respx_mock.put(url__regex=r".*/up/3.*").respond(201)
    client().push_blob("r", descriptor, blob)
    assert received == [("/up/0", "0-7", data[:8]), ("/up/1", "8-15", data[8:16]),
                        ("/up/2", "16-19", data[16:])]  # fmt: skip
    assert dict(put.calls.last.request.url.params) == {"_state": "s3", "digest": descriptor.digest}


@respx.mock(assert_all_called=False)
def test_bearer_tokens_per_scope_and_insufficient_scope(respx_mock: respx.MockRouter) -> None:
    tokens: list[list[str]] = []

    def issue(request: httpx.Request) -> httpx.Response:
        scopes = request.url.params.get_list("scope")
        tokens.append(scopes)
        assert request.headers["Authorization"] == Credentials("u", "p").basic()
        return httpx.Response(200, json={"token": f"T{len(tokens)}", "expires_in": 300})

    respx_mock.get("https://auth.example/token").mock(side_effect=issue)
    challenge = 'Bearer realm="https://auth.example/token",service="reg",scope="{}"'

    def tags(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization")
        if auth is None:
            return httpx.Response(401, headers={"WWW-Authenticate": challenge.format("x")})
        if auth == "Bearer T1":  # pretend the first token was too narrow
            header = challenge.format("repository:r:pull repository:other:pull") + (
                ',error="insufficient_scope"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": header})
        return httpx.Response(200, json={"tags": ["v1"]})

    respx_mock.get(url__startswith=f"{BASE}/v2/r/tags/list").mock(side_effect=tags)
    c = client(credentials=Credentials("u", "p"))
    assert c.list_tags("r") == ["v1"]
    assert c.list_tags("r") == ["v1"]  # cached: no third token
    assert tokens == [["repository:r:pull"], ["repository:other:pull", "repository:r:pull"]]


@respx.mock(assert_all_called=False)
def test_tags_are_paginated(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{BASE}/v2/r/tags/list", params={"last": "b"}).respond(
        200, json={"tags": ["c"]}
    )
    respx_mock.get(f"{BASE}/v2/r/tags/list").respond(
        200,
        json={"tags": ["a", "b"]},
        headers={"Link": '</v2/r/tags/list?n=1000&last=b>; rel="next"'},
    )
    assert client().list_tags("r") == ["a", "b", "c"]


@respx.mock(assert_all_called=False)
def test_retry_after_is_honoured_and_bounded(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{BASE}/v2/").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200)]
    )
    c = client()
    c.ping()
    assert route.call_count == 2 and c.sleeps == [3.0]  # type: ignore[attr-defined]
    respx_mock.get(f"{BASE}/v2/").respond(503)
    with pytest.raises(registry_module.RegistryError, match="HTTP 503"):
        client().ping()


@respx.mock(assert_all_called=False)
def test_docker_hub_is_reached_at_its_api_host(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get("https://registry-1.docker.io/v2/").respond(200)
    RegistryClient("docker.io", use_config=False, transport=httpx.HTTPTransport()).ping()
    assert route.called
    assert config_key("docker.io") == "https://index.docker.io/v1/"


def test_www_authenticate_with_commas_in_quotes() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://a/token",service="s",scope="repository:x:pull,push",error="e"'
    )
    assert challenge is not None and challenge.params["scope"] == "repository:x:pull,push"


def test_credentials_come_from_helpers_first_then_auths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text(
        "#!/bin/sh\nread server\n"
        'echo "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"bot\\",\\"Secret\\":\\"s3\\"}"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"user:pass").decode()
    auths = {
        "ghcr.io": {"auth": auth},
        "quay.io": {"auth": auth},
        "https://index.docker.io/v1/": {"identitytoken": "idt"},
    }
    config.write_text(json.dumps({"credHelpers": {"ghcr.io": "fake"}, "auths": auths}))
    assert load_credentials("ghcr.io", config) == Credentials("bot", "s3")
    assert load_credentials("quay.io", config) == Credentials("user", "pass")
    assert load_credentials("docker.io", config) == Credentials(identity_token="idt")
    assert load_credentials("example.com", config) is None
    assert "s3" not in repr(load_credentials("ghcr.io", config))


def test_tokens_expire_a_little_before_expires_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from wasmctl.oci import auth

    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    cache = auth.TokenCache()
    cache.put("r", ["b", "a"], "T", lifetime=60)
    assert cache.get("r", ["a", "b"]) == "T"  # scope order does not matter
    now[0] += 53
    assert cache.get("r", ["a", "b"]) == "T"
    now[0] += 2  # within the last tenth of its lifetime: fetch a new one
    assert cache.get("r", ["a", "b"]) is None


def test_login_stores_in_the_credential_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasmctl.oci.auth import remove_credentials, store_credentials

    store = tmp_path / "store"
    helper = tmp_path / "bin" / "docker-credential-filestore"
    helper.parent.mkdir()
    helper.write_text(f'#!/bin/sh\ncase "$1" in\n store) cat > {store};;\n erase) rm -f {store};;\n'
                      f' get) cat {store};;\nesac\n')  # fmt: skip
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "filestore"}))
    where = store_credentials("ghcr.io", Credentials("bot", "s3cret"), config)
    assert where == "docker-credential-filestore"
    assert json.loads(store.read_text()) == {"ServerURL": "ghcr.io", "Username": "bot",
                                             "Secret": "s3cret"}  # fmt: skip
    assert "s3cret" not in config.read_text()
    assert load_credentials("ghcr.io", config) == Credentials("bot", "s3cret")
    assert remove_credentials("ghcr.io", config)
    assert not store.exists()
