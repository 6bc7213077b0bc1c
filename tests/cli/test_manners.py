"""Manners users of docker, oras, skopeo and crane expect (issue 15): `--plain-http` never
takes the next argument, the bundled gate example does what its comment says, archive errors
name the archive, a key prefix that is a directory, a failed login's hint, `--attest` alone."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.fake_registry import OCI_MANIFEST, FakeRegistry
from wasmctl.cli import run
from wasmctl.cli.sbom import attest_alone
from wasmctl.gate.engine import GateReport

ROOT = Path(__file__).parents[2]
HELLO = ROOT / "examples" / "modules" / "hello.wasm"
HINT = "--plain-http takes a registry host such as localhost:5000"


@pytest.fixture(autouse=True)
def private_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test reads and writes its own credentials file, never the machine's."""
    path = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    return path


# -- --plain-http -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["push", "--plain-http", "oci:out:v1", "localhost:5000/app:v1"],
        ["push", "--plain-http", "oci-archive:app.tar", "localhost:5000/app:v1"],
        ["push", "--plain-http=true", "oci:out:v1", "localhost:5000/app:v1"],
        ["push", "--plain-http", "true", "oci:out:v1", "localhost:5000/app:v1"],
        ["push", "--plain-http", "1", "oci:out:v1", "localhost:5000/app:v1"],
        ["pull", "--plain-http", "localhost:5000/app:v1"],
        ["copy", "--plain-http", "registry.lan/app:v1", "oci:out:v1"],
        ["build", "--plain-http", "app.wasm", "-t", "localhost:5000/app:v1"],
        ["push", "--plain-http", "app.tar", "oci:out:v1", "localhost:5000/app:v1"],
        ["push", "--plain-http", "https://registry.lan:5000", "oci:out:v1", "r.lan/app:v1"],
        ["login", "--plain-http", "yes", "-u", "me", "localhost:5000"],
    ],
    ids=[
        "layout",
        "archive",
        "equals-true",
        "true",
        "1",
        "reference",
        "copy-reference",
        "wasm-file",
        "tar-file",
        "https-url",
        "login-yes",
    ],
)
def test_plain_http_never_takes_the_next_argument_silently(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert "--plain-http" in err and HINT in err
    assert "plain HTTP already" in err
    assert "ConnectError" not in err  # refused as it was parsed, before any request


def test_plain_http_help_says_loopback_needs_no_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["push", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Loopback registries (localhost, 127.0.0.0/8, ::1) are plain HTTP already" in out
    assert "--plain-http localhost:5000 oci-archive" not in out


# -- the bundled gate example ---------------------------------------------------------------


def _gate_example(transport: httpx.BaseTransport) -> GateReport:
    from wasmctl.gate.engine import GateOptions, run_gate
    from wasmctl.gate.policy import load_gate_policy
    from wasmctl.oci.source import RegistryOptions

    policy = load_gate_policy(ROOT / "examples" / "gate" / "gate.yaml")
    manifests = ROOT / "examples" / "kubernetes" / "deployment.yaml"
    options = GateOptions(registry=RegistryOptions(transport=transport), jobs=1)
    return run_gate([str(manifests)], policy, options)


def _no_network(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)


def test_the_gate_example_offline_denies_nginx_as_its_comment_says() -> None:
    comment = (ROOT / "examples" / "kubernetes" / "deployment.yaml").read_text()
    assert "When no registry\n#   can be reached (offline)" in comment
    assert "it is denied (exit 1)" in comment
    report = _gate_example(httpx.MockTransport(_no_network))
    hello, nginx = report.targets
    assert hello.verdict.value == "error"  # a Wasm image that cannot be read: never a pass
    assert nginx.skipped is None  # unreadable is never taken for ordinary
    statuses = {c.check: c.status.value for c in nginx.checks}
    assert (statuses["registry"], statuses["pin"], statuses["resolve"]) == (
        "fail",
        "fail",
        "error",
    )
    assert nginx.verdict.value == "deny"
    assert report.exit_code == 1


def _ordinary_nginx(fake: FakeRegistry) -> None:
    """`library/nginx:1.27` as an ordinary Linux image (one small layer, no Wasm sign)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("docker-entrypoint.sh")
        body = b"#!/bin/sh\nexec nginx\n"
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    repo = "library/nginx"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": fake.add_blob(repo, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": fake.add_blob(repo, layer),
                "size": len(layer),
            }
        ],
    }
    fake.add_manifest(repo, json.dumps(manifest).encode(), OCI_MANIFEST, tag="1.27")


def test_the_gate_example_online_skips_nginx_as_its_comment_says() -> None:
    comment = (ROOT / "examples" / "kubernetes" / "deployment.yaml").read_text()
    assert "When its registry answers, it is an\n#   ordinary Linux image" in comment
    fake = FakeRegistry()
    _ordinary_nginx(fake)
    report = _gate_example(fake)
    hello, nginx = report.targets
    assert nginx.verdict.value == "skipped"
    assert nginx.skipped == "an ordinary container image on the default runtime, not Wasm"
    assert hello.skipped is None and hello.verdict.value != "pass"  # the placeholder digest


# -- archives -------------------------------------------------------------------------------


def test_archive_errors_name_the_archive_not_a_temporary_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "app.tar"
    assert run(["build", str(HELLO), "-t", f"oci-archive:{archive}:v1"]) == 0
    capsys.readouterr()
    assert run(["inspect", f"oci-archive:{archive}:v2"]) == 2
    err = capsys.readouterr().err
    assert f"{archive}: no tag 'v2'" in err
    assert "wasmctl-archive-" not in err

    foreign = tmp_path / "notes.tar"
    with tarfile.open(foreign, "w") as tar:
        info = tarfile.TarInfo("notes.txt")
        tar.addfile(info, io.BytesIO(b""))
    assert run(["copy", f"oci-archive:{archive}:v1", f"oci-archive:{foreign}:v1"]) == 2
    err = capsys.readouterr().err
    assert f"{foreign}: exists, is not empty, and is not an OCI layout" in err
    assert "wasmctl-archive-" not in err


# -- generate-key-pair ----------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["keys/", "keys"])
def test_a_key_prefix_naming_a_directory_writes_cosign_key_inside_it(
    spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    (tmp_path / "keys").mkdir()
    assert run(["generate-key-pair", "--output-key-prefix", spelling]) == 0
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["cosign.key", "cosign.pub"]
    assert not (tmp_path / "keys.key").exists()


def test_a_key_prefix_ending_in_a_slash_is_never_a_file_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    assert run(["generate-key-pair", "--output-key-prefix", "missing/"]) == 2
    assert "missing/cosign.key" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- login ----------------------------------------------------------------------------------


def test_refused_login_credentials_hint_at_the_credentials_not_at_login() -> None:
    from wasmctl.oci.auth import AuthError, Credentials
    from wasmctl.oci.registry import RegistryClient

    fake = FakeRegistry(basic_auth=("me", "right"))
    with (
        RegistryClient(
            "r.test",
            http=fake.client(),
            credentials=Credentials("me", "wrong"),
            use_config=False,
        ) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.ping()
    hint = caught.value.hint or ""
    assert "wasmctl login" not in hint
    assert "check the user name and the password or token" in hint


def test_refused_stored_credentials_still_hint_at_login(private_credentials: Path) -> None:
    from wasmctl.oci.auth import AuthError, Credentials, store_credentials
    from wasmctl.oci.registry import RegistryClient

    store_credentials("r.test", Credentials("me", "stale"), private_credentials)
    fake = FakeRegistry(basic_auth=("me", "right"))
    with RegistryClient("r.test", http=fake.client()) as client, pytest.raises(AuthError) as e:
        client.ping()
    assert e.value.hint == "log in first: wasmctl login r.test"


# -- sbom --attest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "read"),
    [
        (["X", "--attest"], ["X", "--attest="]),
        (["X", "--attest", "--key", "k"], ["X", "--attest=", "--key", "k"]),
        (["X", "--attest", "-o", "f"], ["X", "--attest=", "-o", "f"]),
        (["X", "--attest", "oci:o:v1"], ["X", "--attest", "oci:o:v1"]),
        (["X", "--attest=oci:o:v1"], ["X", "--attest=oci:o:v1"]),
        (["X", "--", "--attest"], ["X", "--", "--attest"]),
    ],
)
def test_attest_alone_is_read_as_the_target(args: list[str], read: list[str]) -> None:
    assert attest_alone(args) == read


def test_sbom_attest_alone_attests_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    ref = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["build", str(HELLO), "-t", ref]) == 0
    prefix = str(tmp_path / "cosign")
    assert run(["generate-key-pair", "--output-key-prefix", prefix]) == 0
    assert run(["sbom", ref, "--attest", "--key", f"{prefix}.key", "-o", "/dev/null"]) == 0
    capsys.readouterr()
    verify = ["verify", "--key", f"{prefix}.pub", "--attestation", "cyclonedx", ref]
    assert run(verify) == 0


def test_sbom_attest_alone_of_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["sbom", str(HELLO), "--attest", "--key", str(tmp_path / "k.key")]) == 2
    assert "--attest without REF attests TARGET" in capsys.readouterr().err
