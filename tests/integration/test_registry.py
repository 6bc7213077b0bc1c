"""push, pull, copy, tag and login against Debian's docker-registry, with peers checking.

skopeo and the oras Python SDK read what wasmctl pushed; wasmctl pulls what skopeo pushed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.registry import RegistryServer
from wasmctl.cli import run
from wasmctl.oci.models import sha256_digest

EXAMPLES = Path(__file__).parents[2] / "examples" / "modules"
HELLO = EXAMPLES / "hello.wasm"
SERVER = EXAMPLES / "echo_server.wasm"


@pytest.fixture(autouse=True)
def private_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test reads and writes its own credentials file, never the machine's."""
    path = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    return path


def skopeo(*args: str) -> str:
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed: scripts/setup --test installs it (apt)")
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def build(tmp_path: Path, module: Path = HELLO, *flags: str) -> str:
    ref = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["build", str(module), "-t", ref, *flags]) == 0
    return ref


def test_push_is_read_by_skopeo_and_pulled_back(
    registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = build(tmp_path)
    capsys.readouterr()
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["push", "--plain-http", registry.host, source, target]) == 0
    digest = capsys.readouterr().out.strip()
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{target}")
    assert sha256_digest(raw.encode()) == digest
    assert json.loads(raw)["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", f"docker://{target}",
           f"oci:{tmp_path / 'skopeo'}:v1")  # fmt: skip
    assert sha256_digest(skopeo("inspect", "--raw", f"oci:{tmp_path / 'skopeo'}:v1").encode()) == (
        digest
    )
    out = tmp_path / "pulled"
    assert run(["pull", "--plain-http", registry.host, target, "-o", str(out)]) == 0
    assert (out / "hello.wasm").read_bytes() == HELLO.read_bytes()


def test_wasmctl_pulls_what_skopeo_pushed(
    registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    source = build(tmp_path, SERVER, "--format", "compat", "--index")
    target = f"{registry.host}/{repo_name}:compat"
    skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", "--all", source,
           f"docker://{target}")  # fmt: skip
    out = tmp_path / "pulled"
    assert run(["pull", "--plain-http", registry.host, target, "-o", str(out)]) == 0
    assert (out / "echo_server.wasm").read_bytes() == SERVER.read_bytes()
    # and the registry copy keeps the index digest
    assert run(["copy", "--plain-http", registry.host, target, f"oci:{tmp_path / 'back'}:c"]) == 0
    ours = json.loads((tmp_path / "layout" / "index.json").read_text())["manifests"]
    back = json.loads((tmp_path / "back" / "index.json").read_text())["manifests"]
    assert ours[0]["digest"] == back[0]["digest"]


def test_oras_pulls_the_wasm_artifact(
    registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    import oras.provider

    target = f"{registry.host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", target, "--plain-http", registry.host]) == 0
    client = oras.provider.Registry(hostname=registry.host, insecure=True)
    files = client.pull(target=target, outdir=str(tmp_path / "oras"))
    assert [Path(f).name for f in files] == ["hello.wasm"]
    assert Path(files[0]).read_bytes() == HELLO.read_bytes()


def test_tag_and_cross_repository_copy(
    registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", target, "--plain-http", registry.host]) == 0
    digest = capsys.readouterr().out.strip()
    assert run(["tag", "--plain-http", registry.host, target, "stable"]) == 0
    raw = skopeo("inspect", "--tls-verify=false", "--raw",
                 f"docker://{registry.host}/{repo_name}:stable")  # fmt: skip
    assert sha256_digest(raw.encode()) == digest
    other = f"{registry.host}/{repo_name}-mirror:v1"
    assert run(["copy", "--plain-http", registry.host, target, other]) == 0
    assert "0 blob(s) sent" in capsys.readouterr().err  # mounted, not sent


def test_a_re_push_sends_no_blob_bytes(fault_proxy, repo_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = build(tmp_path, SERVER)
    target = f"{fault_proxy.host}/{repo_name}:v1"
    assert run(["push", "--plain-http", fault_proxy.host, source, target]) == 0
    assert fault_proxy.request_bytes(path=r"/blobs/uploads/") > 0
    fault_proxy.clear_log()
    assert run(["push", "--plain-http", fault_proxy.host, source, target]) == 0
    assert fault_proxy.request_bytes(path=r"/blobs/uploads/") == 0
    assert fault_proxy.count("POST", r"/blobs/uploads/") == 0


def test_missing_things_are_input_errors_and_unreachable_registries_remote(
    registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    assert run(["pull", "--plain-http", registry.host, f"{registry.host}/{repo_name}:nope"]) == 2
    closed = "127.0.0.1:9"  # discard port: nothing listens
    assert run(["pull", "--plain-http", closed, f"{closed}/a/b:v1", "-o", str(tmp_path)]) == 3


def test_tls_registry_needs_its_ca(
    tls_registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    source = build(tmp_path)
    target = f"{tls_registry.host}/{repo_name}:v1"
    assert run(["push", source, target]) == 3  # unknown CA: TLS verification fails
    assert tls_registry.ca_file is not None
    assert run(["push", "--ca-file", str(tls_registry.ca_file), source, target]) == 0
    out = tmp_path / "out"
    assert run(["pull", "--ca-file", str(tls_registry.ca_file), target, "-o", str(out)]) == 0
    assert (out / "hello.wasm").is_file()


def test_basic_auth_login_and_secrets_never_shown(
    basic_registry: RegistryServer,
    repo_name: str,
    tmp_path: Path,
    private_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    host, user, password = basic_registry.host, basic_registry.username, basic_registry.password
    assert user and password
    source = build(tmp_path)
    target = f"{host}/{repo_name}:v1"
    assert run(["push", "--plain-http", host, source, target]) == 3  # no credentials
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong-password\n"))
    assert run(["login", "--plain-http", host, "-u", user, "--password-stdin", host]) == 3
    assert not private_credentials.exists()
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert run(["-v", "login", "--plain-http", host, "-u", user, "--password-stdin", host]) == 0
    stored = json.loads(private_credentials.read_text())
    assert set(stored["auths"]) == {host}
    assert private_credentials.stat().st_mode & 0o077 == 0
    assert run(["-v", "push", "--plain-http", host, source, target]) == 0
    assert run(["logout", host]) == 0
    assert json.loads(private_credentials.read_text())["auths"] == {}
    captured = capsys.readouterr()
    assert password not in captured.out + captured.err
    assert "wrong-password" not in captured.out + captured.err


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def start(self, key: str, label: str, total: int) -> None:
        self.events.append(("start", label, total))

    def advance(self, key: str, amount: int) -> None:
        self.events.append(("advance", key, amount))

    def finish(self, key: str) -> None:
        self.events.append(("finish", key, 0))


def test_transfers_report_progress(
    registry: RegistryServer, repo_name: str, tmp_path: Path
) -> None:
    from wasmctl.oci.reference import parse_reference
    from wasmctl.oci.source import RegistryOptions
    from wasmctl.oci.transfer import copy, pull_modules

    progress = RecordingProgress()
    options = RegistryOptions(plain_http=frozenset({registry.host}), progress=progress)
    target = parse_reference(f"{registry.host}/{repo_name}:v1")
    copy(parse_reference(build(tmp_path, SERVER)), target, options)
    starts = [e for e in progress.events if e[0] == "start"]
    assert {label.split()[0] for _, label, _ in starts} == {"push"}
    assert sum(e[2] for e in progress.events if e[0] == "advance") == sum(t for *_, t in starts)
    assert len([e for e in progress.events if e[0] == "finish"]) == len(starts)
    progress.events.clear()
    pull_modules(target, tmp_path / "out", options)
    assert ("start", "pull echo_server.wasm", SERVER.stat().st_size) in progress.events


def test_progress_bars_only_at_a_terminal() -> None:
    from wasmctl.cli._progress import TransferBars, TransferLines, transfer_progress

    # pytest's stderr is not a terminal: plain lines (tests/cli/test_progress.py), no bars
    assert isinstance(transfer_progress(), TransferLines)
    bars = TransferBars()
    bars.start("small", "push tiny", 10)  # too small for a bar
    bars.start("big", "push big", 64 << 20)
    bars.advance("big", 1 << 20)
    bars.finish("big")
    bars.finish("small")
    assert bars._progress is None and bars._tasks == {}


def test_scan_and_inspect_registry_references(
    registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = registry.host
    target = f"{host}/{repo_name}:compat"
    assert run(["build", "--format", "compat", "--index", str(SERVER), "-t", target,
                "--plain-http", host]) == 0  # fmt: skip
    capsys.readouterr()
    assert run(["scan", "--preset", "no-network", "-f", "json", "--plain-http", host, target]) == 1
    (report,) = json.loads(capsys.readouterr().out)["targets"]
    assert report["path"] == f"{target}#echo_server.wasm"
    assert {f["name"] for f in report["findings"]} >= {"sock_accept"}
    assert run(["inspect", "-f", "json", "--plain-http", host, target]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "compat" and info["index"]["kind"] == "index"
    closed = "127.0.0.1:9"
    assert run(["scan", "--plain-http", closed, f"{closed}/a/b:v1"]) == 3
