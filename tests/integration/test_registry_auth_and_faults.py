"""Bearer tokens against a real token service, and transfers through a faulty network."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.registry import RegistryServer, TokenIssuer
from wasmctl.cli import run
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Manifest, canonical_json
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.registry import DigestMismatchError, RegistryError, RetryPolicy
from wasmctl.oci.source import RegistryOptions
from wasmctl.oci.transfer import copy

EXAMPLES = Path(__file__).parents[2] / "examples" / "modules"
HELLO = EXAMPLES / "hello.wasm"
SERVER = EXAMPLES / "echo_server.wasm"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture(autouse=True)
def private_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    return path


def layout_ref(tmp_path: Path, module: Path = HELLO) -> str:
    ref = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["build", str(module), "-t", ref]) == 0
    return ref


def store_login(path: Path, host: str, **entry: str) -> None:
    path.write_text(json.dumps({"auths": {host: entry}}))


def basic_login(path: Path, server: RegistryServer) -> None:
    """Store the server's username and password, as `wasmctl login` would."""
    auth = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    store_login(path, server.host, auth=auth)


# -- Bearer tokens ---------------------------------------------------------------------------


def test_token_auth_one_token_per_scope_set(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str,
    tmp_path: Path, private_credentials: Path,
) -> None:  # fmt: skip
    host = token_registry.host
    basic_login(private_credentials, token_registry)
    target = f"{host}/{repo_name}:v1"
    assert run(["push", "--plain-http", host, layout_ref(tmp_path), target]) == 0
    asked = [r.scope_set for r in token_issuer.requests]
    # pull for the HEADs, pull+push for the uploads and the manifest: one token each
    assert sorted(map(sorted, set(asked))) == [
        [f"repository:{repo_name}:pull"],
        [f"repository:{repo_name}:pull,push"],
    ]
    assert len(asked) == len(set(asked))
    assert all(r.credentials == "basic" for r in token_issuer.requests)
    token_issuer.clear_requests()
    assert run(["pull", "--plain-http", host, target, "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "hello.wasm").is_file()


def test_a_mount_asks_pull_on_the_source_repository(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str,
    tmp_path: Path, private_credentials: Path,
) -> None:  # fmt: skip
    host = token_registry.host
    basic_login(private_credentials, token_registry)
    source = f"{host}/{repo_name}:v1"
    assert run(["push", "--plain-http", host, layout_ref(tmp_path), source]) == 0
    token_issuer.clear_requests()
    assert run(["copy", "--plain-http", host, source, f"{host}/{repo_name}-copy:v1"]) == 0
    scopes = {s for r in token_issuer.requests for s in r.scopes}
    assert f"repository:{repo_name}-copy:pull,push" in scopes
    assert f"repository:{repo_name}:pull" in scopes


def test_identity_tokens_use_the_oauth2_refresh_grant(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str,
    tmp_path: Path, private_credentials: Path,
) -> None:  # fmt: skip
    host = token_registry.host
    store_login(private_credentials, host, identitytoken=token_issuer.new_refresh_token())
    assert run(["push", "--plain-http", host, layout_ref(tmp_path), f"{host}/{repo_name}:v1"]) == 0
    assert {(r.method, r.grant_type) for r in token_issuer.requests} == {("POST", "refresh_token")}


def test_insufficient_scope_is_reported_not_looped(
    token_registry: RegistryServer, token_issuer: TokenIssuer, repo_name: str,
    tmp_path: Path, private_credentials: Path,
) -> None:  # fmt: skip
    host = token_registry.host
    basic_login(private_credentials, token_registry)
    token_issuer.withhold = frozenset({"push"})
    assert run(["push", "--plain-http", host, layout_ref(tmp_path), f"{host}/{repo_name}:v1"]) == 3
    assert len(token_issuer.requests) <= 4  # bounded: no endless token refresh


def test_wrong_credentials_exit_3_without_showing_them(
    token_registry: RegistryServer, repo_name: str, tmp_path: Path,
    private_credentials: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    host = token_registry.host
    secret = "hunter2-not-the-password"
    auth = base64.b64encode(f"{token_registry.username}:{secret}".encode()).decode()
    store_login(private_credentials, host, auth=auth)
    assert run(["-v", "push", "--plain-http", host, layout_ref(tmp_path),
                f"{host}/{repo_name}:v1"]) == 3  # fmt: skip
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    assert auth not in captured.out + captured.err


# -- faults ----------------------------------------------------------------------------------


def options(proxy_host: str) -> RegistryOptions:
    return RegistryOptions(plain_http=frozenset({proxy_host}), retry=FAST_RETRY)


def pushed(fault_proxy, repo_name: str, tmp_path: Path, module: Path = SERVER) -> str:  # type: ignore[no-untyped-def]
    target = f"{fault_proxy.host}/{repo_name}:v1"
    copy(parse_reference(layout_ref(tmp_path, module)), parse_reference(target),
         options(fault_proxy.host))  # fmt: skip
    return target


def test_5xx_and_429_storms_are_retried(fault_proxy, repo_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fault_proxy.fail(500, "HEAD", r"/blobs/", times=2)
    fault_proxy.fail(429, "PUT", r"/manifests/", times=2, retry_after=0)
    target = pushed(fault_proxy, repo_name, tmp_path)
    copy(parse_reference(target), parse_reference(f"oci:{tmp_path / 'back'}:v1"),
         options(fault_proxy.host))  # fmt: skip
    assert fault_proxy.count("PUT", r"/manifests/") == 3


def test_retries_are_bounded(fault_proxy, repo_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fault_proxy.fail(503, None, r"/v2/", times=None)
    with pytest.raises(RegistryError, match="HTTP 503"):
        pushed(fault_proxy, repo_name, tmp_path)
    assert fault_proxy.count() == FAST_RETRY.attempts


@pytest.mark.parametrize("fault", ["wrong", "truncated", "reset"])
def test_a_bad_blob_is_refused_and_no_file_is_left(
    fault_proxy,
    repo_name: str,
    tmp_path: Path,
    fault: str,  # type: ignore[no-untyped-def]
) -> None:
    target = pushed(fault_proxy, repo_name, tmp_path)
    layer = Manifest.from_bytes(
        OCILayout.open(tmp_path / "layout").read_blob(
            OCILayout.open(tmp_path / "layout").resolve("v1")
        )
    ).layers[0]
    path = rf"/blobs/{layer.digest}"
    if fault == "wrong":
        fault_proxy.serve_wrong_body(path, SERVER.read_bytes().replace(b"sock", b"SOCK"))
    elif fault == "truncated":
        fault_proxy.truncate("GET", path, after_bytes=100)
    else:
        fault_proxy.reset_connection("GET", path, after_bytes=100)
    out = tmp_path / "out"
    with pytest.raises((DigestMismatchError, RegistryError)):
        from wasmctl.oci.transfer import pull_modules

        pull_modules(parse_reference(target), out, options(fault_proxy.host))
    assert not out.exists() or list(out.iterdir()) == []


def test_an_interrupted_push_completes_on_rerun_sending_only_what_is_missing(
    fault_proxy,
    repo_name: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    source = layout_ref(tmp_path, SERVER)
    target = f"{fault_proxy.host}/{repo_name}:v1"
    # the manifest PUT dies: the blobs are there, the tag is not
    fault_proxy.reset_connection("PUT", r"/manifests/", after_bytes=None, times=None)
    assert run(["push", "--plain-http", fault_proxy.host, source, target]) == 3
    fault_proxy.clear_faults()
    fault_proxy.clear_log()
    assert run(["push", "--plain-http", fault_proxy.host, source, target]) == 0
    assert fault_proxy.request_bytes(path=r"/blobs/uploads/") == 0
    assert fault_proxy.count("PUT", r"/manifests/") == 1


def test_hostile_layer_titles_are_refused(
    registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    from wasmctl.oci import media_types as mt

    root = tmp_path / "evil"
    with OCILayout.writer(root) as w:
        layer = w.add_file(mt.WASM_LAYER, HELLO,
                           annotations={mt.ANNOTATION_TITLE: "../../escape.wasm"})  # fmt: skip
        config = w.add_bytes(
            mt.WASM_CONFIG, canonical_json({"architecture": "wasm", "os": "wasip1"})
        )
        manifest = Manifest(config, (layer,))
        w.tag(w.add_bytes(mt.OCI_MANIFEST, manifest.to_bytes()), "v1")
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["push", "--plain-http", registry.host, f"oci:{root}:v1", target]) == 0
    out = tmp_path / "a" / "b"
    assert run(["pull", "--plain-http", registry.host, target, "-o", str(out)]) == 2
    assert not (tmp_path / "escape.wasm").exists()
    assert not any(out.rglob("*")) if out.exists() else True
    assert isinstance(layer, Descriptor)
