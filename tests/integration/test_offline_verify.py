"""Verification is offline: no network, no TUF, no cache, when given a trusted root.

Two proofs, as sigstore-python's CI does it: the command runs in a new network namespace
(`unshare --net`: not even loopback is up), and, for artifacts in a registry, in a process
whose every connection other than to that registry is refused and recorded. Either way the
cache and data directories point at empty temporary directories and must stay empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.registry import RegistryServer
from tests.vectors import CONFORMANCE, DEFAULT_IDENTITY, DEFAULT_ISSUER, SIGSTORE

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"
WHEEL = SIGSTORE / "sigstore-python" / "rfc8785-0.1.2-py3-none-any.whl"
WHEEL_IDENTITY = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)

# Loaded through PYTHONPATH into the wasmctl process: refuses (and records) every connection
# and name lookup except to the one address in WASMCTL_TEST_ALLOW (host:port).
GUARD = """
import os, socket
_allowed = os.environ.get("WASMCTL_TEST_ALLOW", "")
_log = os.environ["WASMCTL_TEST_CONNECT_LOG"]
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo

def _check(address):
    text = "%s:%s" % (address[0], address[1]) if isinstance(address, tuple) else str(address)
    with open(_log, "a") as f:
        f.write(text + "\\n")
    if text != _allowed:
        raise OSError(101, "network is unreachable (test guard): " + text)

def connect(self, address):
    _check(address)
    return _connect(self, address)

def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)

def getaddrinfo(host, port, *args, **kwargs):
    if "%s:%s" % (host, port) != _allowed:
        with open(_log, "a") as f:
            f.write("lookup %s:%s\\n" % (host, port))
        raise socket.gaierror(-2, "name lookups are refused (test guard)")
    return _getaddrinfo(host, port, *args, **kwargs)

socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
"""


def isolated_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "HOME"):
        path = tmp_path / name.lower()
        path.mkdir(exist_ok=True)
        env[name] = str(path)
    env.pop("SIGSTORE_ID_TOKEN", None)
    return env


def assert_untouched(tmp_path: Path) -> None:
    for name in ("xdg_cache_home", "xdg_data_home", "home"):
        assert list((tmp_path / name).rglob("*")) == [], f"{name} was written to"


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


CASES = [
    [
        str(CONFORMANCE / "a.txt"),
        "--bundle",
        str(CONFORMANCE / "happy-path-v0.3" / "bundle.sigstore.json"),
        "--trusted-root",
        str(SIGSTORE / "trust" / "trusted_root.production.json"),
        "--certificate-identity",
        DEFAULT_IDENTITY,
        "--certificate-oidc-issuer",
        DEFAULT_ISSUER,
    ],
    [
        str(CONFORMANCE / "a.txt"),
        "--bundle",
        str(CONFORMANCE / "managed-key-happy-path" / "bundle.sigstore.json"),
        "--trusted-root",
        str(SIGSTORE / "trust" / "trustconfig.production.json"),
        "--key",
        str(CONFORMANCE / "managed-key-happy-path" / "key.pub"),
    ],
    [
        str(WHEEL),
        "--offline",
        "--certificate-identity",
        WHEEL_IDENTITY,
        "--certificate-oidc-issuer",
        DEFAULT_ISSUER,
    ],
]


@pytest.mark.skipif(not unshare_works(), reason="unshare --net is not permitted here")
@pytest.mark.parametrize("args", CASES, ids=["keyless-trusted-root", "key-trust-config", "offline"])
def test_file_verification_runs_in_a_namespace_without_network(
    args: list[str], tmp_path: Path
) -> None:
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "wasmctl", "verify", "-f", "json", *args],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert json.loads(result.stdout)["passed"] is True
    assert_untouched(tmp_path)


def guarded(
    args: list[str], tmp_path: Path, allow: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "connections.log"
    log.write_text("")
    env = isolated_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(guard), env.get("PYTHONPATH", "")])
    env["WASMCTL_TEST_ALLOW"] = allow
    env["WASMCTL_TEST_CONNECT_LOG"] = str(log)
    result = subprocess.run(
        [sys.executable, "-m", "wasmctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, log.read_text().split()


@pytest.mark.parametrize("args", CASES, ids=["keyless-trusted-root", "key-trust-config", "offline"])
def test_file_verification_makes_no_connection(args: list[str], tmp_path: Path) -> None:
    result, connections = guarded(["verify", *args], tmp_path)
    assert result.returncode == 0, result.stderr
    assert connections == []
    assert_untouched(tmp_path)


def test_the_guard_itself_refuses_and_records(tmp_path: Path) -> None:
    """Without a trusted root, verification needs TUF: the guard must stop it (exit 3)."""
    args = [
        str(WHEEL),
        "--certificate-identity",
        WHEEL_IDENTITY,
        "--certificate-oidc-issuer",
        DEFAULT_ISSUER,
    ]
    result, connections = guarded(["verify", *args], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "tuf-repo-cdn.sigstore.dev:443" in connections
    assert "--offline" in result.stderr


def test_registry_verification_talks_only_to_the_registry(
    registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    from wasmctl.cli import run
    from wasmctl.sign.keys import generate_key_pair, write_key_pair

    key, pub = write_key_pair(generate_key_pair(b""), tmp_path / "cosign")
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    os.environ["COSIGN_PASSWORD"] = ""
    try:
        assert run(["sign", "--key", str(key), ref, "--plain-http", host]) == 0
    finally:
        del os.environ["COSIGN_PASSWORD"]
    args = ["verify", "--key", str(pub), "--offline", ref, "--plain-http", host]
    result, connections = guarded(args, tmp_path, allow=host)
    assert result.returncode == 0, result.stderr
    assert connections and set(connections) == {host}
    assert_untouched(tmp_path)
