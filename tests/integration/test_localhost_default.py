"""Loopback registries are plain HTTP without a flag (issue 15, manner 1), against Debian's
docker-registry on 127.0.0.1 (the `registry` fixtures)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from tests.registry import RegistryServer
from wasmctl.cli import run

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"


@pytest.fixture(autouse=True)
def private_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test reads and writes its own credentials file, never the machine's."""
    path = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    return path


def build(tmp_path: Path) -> str:
    ref = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["build", str(HELLO), "-t", ref]) == 0
    return ref


def test_push_and_pull_to_a_loopback_registry_need_no_plain_http(
    registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert registry.host.startswith("127.0.0.1:")
    source = build(tmp_path)
    capsys.readouterr()
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["push", source, target]) == 0
    digest = capsys.readouterr().out.strip()
    out = tmp_path / "out"
    assert run(["pull", target, "-o", str(out)]) == 0
    assert (out / "hello.wasm").read_bytes() == HELLO.read_bytes()
    capsys.readouterr()
    assert run(["inspect", "-f", "json", f"{registry.host}/{repo_name}@{digest}"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == digest


def test_localhost_spelling_reaches_the_same_registry(
    registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = registry.host.rsplit(":", 1)[1]
    source = build(tmp_path)
    capsys.readouterr()
    assert run(["push", source, f"localhost:{port}/{repo_name}:v1"]) == 0
    digest = capsys.readouterr().out.strip()
    assert run(["copy", f"localhost:{port}/{repo_name}:v1", f"oci:{tmp_path / 'back'}:v1"]) == 0
    assert capsys.readouterr().out.strip() == digest


def test_copy_between_two_loopback_registries_needs_no_flag(
    registry: RegistryServer,
    basic_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = basic_registry.username, basic_registry.password
    assert user and password
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert run(["login", "-u", user, "--password-stdin", basic_registry.host]) == 0
    source = build(tmp_path)
    first = f"{registry.host}/{repo_name}:v1"
    second = f"{basic_registry.host}/{repo_name}:v1"
    assert run(["push", source, first]) == 0
    capsys.readouterr()
    assert run(["copy", first, second]) == 0
    digest = capsys.readouterr().out.strip()
    assert digest.startswith("sha256:")
    assert run(["pull", second, "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "hello.wasm").read_bytes() == HELLO.read_bytes()


def test_the_swallowed_argument_is_refused_before_any_request(
    registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = build(tmp_path)
    capsys.readouterr()
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["push", "--plain-http", source, target]) == 2
    err = capsys.readouterr().err
    assert "--plain-http takes a registry host such as localhost:5000" in err
    assert run(["pull", target, "-o", str(tmp_path / "out")]) == 2  # nothing was pushed
    assert "manifest unknown" in capsys.readouterr().err.lower()


def test_plain_http_still_names_a_host_and_an_http_url(
    registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    source = build(tmp_path)
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["push", "--plain-http", registry.host, source, target]) == 0
    assert run(["push", "--plain-http", f"http://{registry.host}", source, target]) == 0
    assert run(["push", "--plain-http", "127.0.0.1", source, target]) == 0


def test_a_loopback_registry_speaking_tls_is_named_as_such(
    tls_registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = build(tmp_path)
    capsys.readouterr()
    target = f"{tls_registry.host}/{repo_name}:v1"
    assert run(["push", source, target]) == 3
    err = capsys.readouterr().err
    assert "speaks HTTPS and was sent plain HTTP" in err and "--ca-file" in err
    assert tls_registry.ca_file is not None
    assert run(["push", "--ca-file", str(tls_registry.ca_file), source, target]) == 0


def test_a_refused_login_hints_at_the_credentials_not_at_login(
    basic_registry: RegistryServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    private_credentials: Path,
) -> None:
    host, user = basic_registry.host, basic_registry.username
    assert user
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong-password\n"))
    assert run(["login", "-u", user, "--password-stdin", host]) == 3
    err = capsys.readouterr().err
    assert f"{host} refused the credentials" in err
    assert "wasmctl login" not in err
    assert "check the user name and the password or token" in err
    assert not private_credentials.exists()


def test_a_plain_http_registry_gets_only_the_credentials_stored_for_it(
    basic_registry: RegistryServer, repo_name: str, tmp_path: Path, private_credentials: Path
) -> None:
    user, password = basic_registry.username, basic_registry.password
    assert user and password
    host = basic_registry.host
    port = host.rsplit(":", 1)[1]
    source = build(tmp_path)
    target = f"{host}/{repo_name}:v1"
    # stored for the same address under another name: not this registry's, not sent
    private_credentials.write_text(
        json.dumps({"auths": {f"localhost:{port}": {"auth": _basic(user, password)}}})
    )
    assert run(["push", source, target]) == 3
    private_credentials.write_text(json.dumps({"auths": {host: {"auth": _basic(user, password)}}}))
    assert run(["push", source, target]) == 0


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
