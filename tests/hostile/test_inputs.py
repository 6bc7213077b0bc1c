"""Hostile local input: special files, deep nesting, alias bombs, and outputs that cannot be
written. Each case runs the real command line under resource limits (tests/hostile/harness.py)
and must end with a clear error and the right exit code, having written nothing stray."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.hostile.harness import expect, run_bounded
from tests.wasmbytes import core_module, section
from wasmctl.cli import run

DEEP = 100_000
HELLO = core_module(section(1, b"\x01\x60\x00\x00"))  # one type, nothing imported


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A directory holding a module and a layout `out` with tag v1, built by wasmctl."""
    box = tmp_path / "box"
    box.mkdir()
    (box / "app.wasm").write_bytes(HELLO)
    assert run(["build", str(box / "app.wasm"), "-t", f"oci:{box / 'out'}:v1"]) == 0
    return box


def special(path: Path, kind: str) -> Path:
    """`path` made a FIFO, or a link to /dev/zero."""
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    return path


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


# -- special files ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_key_that_is_a_special_file_is_refused(sandbox: Path, kind: str) -> None:
    key = special(sandbox / "cosign.pub", kind)
    outcome = run_bounded(["verify", "--key", str(key), "oci:out:v1"], sandbox=sandbox, wall=30)
    expect(outcome, 2, says="not a regular file")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_private_key_that_is_a_special_file_is_refused(sandbox: Path, kind: str) -> None:
    key = special(sandbox / "cosign.key", kind)
    outcome = run_bounded(
        ["sign", "--key", str(key), "oci:out:v1"],
        sandbox=sandbox,
        env={"COSIGN_PASSWORD": ""},
        wall=30,
    )
    expect(outcome, 2, says="not a regular file")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_gate_policy_key_that_is_a_special_file_is_refused(sandbox: Path, kind: str) -> None:
    special(sandbox / "gate.pub", kind)
    (sandbox / "gate.yaml").write_text("version: 1\nsignatures: {keys: [gate.pub]}\n")
    outcome = run_bounded(["gate", "--policy", "gate.yaml", "oci:out:v1"], sandbox=sandbox)
    expect(outcome, 2, says="not a regular file")


@pytest.mark.parametrize("name", ["index.json", "oci-layout"])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_layout_file_that_is_a_special_file_is_refused(
    sandbox: Path, name: str, kind: str
) -> None:
    special(sandbox / "out" / name, kind)
    outcome = run_bounded(["inspect", "oci:out:v1"], sandbox=sandbox, wall=30)
    expect(outcome, 2, says="not a regular file")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_module_that_is_a_special_file_is_refused(sandbox: Path, kind: str) -> None:
    module = special(sandbox / "odd.wasm", kind)
    says = "is a FIFO" if kind == "fifo" else "is a device"
    for argv in (["inspect", str(module)], ["scan", str(module)], ["sbom", str(module)]):
        expect(run_bounded(argv, sandbox=sandbox, wall=30), 2, says=says)


def test_signing_a_special_file_is_refused(sandbox: Path) -> None:
    special(sandbox / "blob.bin", "zero")
    (sandbox / "k").mkdir()
    outcome = run_bounded(["sign", "--key", "k/none.key", "blob.bin"], sandbox=sandbox)
    assert outcome.returncode == 2, outcome.explain()


# -- deep nesting -----------------------------------------------------------------------


def test_a_deeply_nested_layout_index_is_refused(sandbox: Path) -> None:
    (sandbox / "out" / "index.json").write_text(deep_json())
    expect(run_bounded(["inspect", "oci:out:v1"], sandbox=sandbox), 2, says="nested deeper")


def test_a_deeply_nested_kubernetes_json_manifest_is_refused(sandbox: Path) -> None:
    (sandbox / "gate.yaml").write_text("version: 1\nformats: [wasm]\n")
    (sandbox / "pod.json").write_text('{"kind": "Pod", "spec": ' + deep_json() + "}")
    outcome = run_bounded(["gate", "--policy", "gate.yaml", "pod.json"], sandbox=sandbox)
    expect(outcome, 2, says="nested deeper")


def test_a_deeply_nested_bundle_is_refused(sandbox: Path) -> None:
    (sandbox / "app.wasm.sigstore.json").write_text(deep_json())
    (sandbox / "k.pub").write_text("-----BEGIN PUBLIC KEY-----\n")
    outcome = run_bounded(["verify", "--offline", "--key", "k.pub", "app.wasm"], sandbox=sandbox)
    assert outcome.returncode == 2 and "Traceback" not in outcome.stderr, outcome.explain()


def test_a_deeply_nested_trusted_root_is_refused(tmp_path: Path) -> None:
    from wasmctl.sign.trust import TrustedRoot, TrustRootError

    (tmp_path / "root.json").write_text(deep_json())
    with pytest.raises(TrustRootError, match="nested deeper"):
        TrustedRoot.from_file(tmp_path / "root.json")


def test_a_deeply_nested_encrypted_key_is_refused(sandbox: Path) -> None:
    body = deep_json(20_000).encode()
    import base64

    text = base64.encodebytes(body).decode()
    (sandbox / "deep.key").write_text(
        f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{text}"
        "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    outcome = run_bounded(
        ["sign", "--key", "deep.key", "oci:out:v1"], sandbox=sandbox, env={"COSIGN_PASSWORD": "x"}
    )
    expect(outcome, 2, says="nested deeper")


def test_a_deeply_nested_docker_config_is_refused(sandbox: Path) -> None:
    config = sandbox / ".home" / ".docker"
    config.mkdir(parents=True)
    (config / "config.json").write_text('{"auths": ' + deep_json() + "}")
    outcome = run_bounded(
        ["pull", "--plain-http", "127.0.0.1:9", "127.0.0.1:9/a/b:c"], sandbox=sandbox
    )
    expect(outcome, 2, says="nested deeper")


# -- YAML bombs -------------------------------------------------------------------------


def alias_bomb_list() -> str:
    """A ~600-byte Kubernetes List whose aliases stand for 10^9 pods."""
    lines = [
        "apiVersion: v1",
        "kind: List",
        "x0: &a0 {kind: Pod, spec: {containers: [{name: c, image: ghcr.io/a/b:c}]}}",
    ]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    lines.append("items: *a9")
    return "\n".join(lines) + "\n"


def test_a_kubernetes_alias_bomb_is_refused_at_once(sandbox: Path) -> None:
    (sandbox / "gate.yaml").write_text("version: 1\nformats: [wasm]\n")
    (sandbox / "list.yaml").write_text(alias_bomb_list())
    outcome = run_bounded(
        ["gate", "--policy", "gate.yaml", "list.yaml"], sandbox=sandbox, memory=1 << 30, cpu=20
    )
    expect(outcome, 2, says="aliases expand")


def test_a_deeply_nested_yaml_manifest_is_refused(sandbox: Path) -> None:
    (sandbox / "gate.yaml").write_text("version: 1\nformats: [wasm]\n")
    (sandbox / "deep.yaml").write_text("kind: Pod\nspec: " + deep_json(20_000) + "\n")
    outcome = run_bounded(["gate", "--policy", "gate.yaml", "deep.yaml"], sandbox=sandbox)
    expect(outcome, 2, says="nested deeper")


# -- outputs that cannot be written -----------------------------------------------------


@pytest.mark.parametrize(
    ("target", "says"),
    [
        (".", "is a directory"),
        ("missing/dir/report.json", "is not a directory"),
        ("/dev/full", "No space left"),
    ],
)
def test_an_output_that_cannot_be_written_is_bad_input(
    sandbox: Path, target: str, says: str
) -> None:
    outcome = run_bounded(["inspect", "app.wasm", "-o", target], sandbox=sandbox)
    expect(outcome, 2, says=says)


def test_a_closed_stdout_is_bad_input_not_denied(sandbox: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "wasmctl", "scan", "--preset", "no-network", "app.wasm"],
        cwd=sandbox,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
        timeout=60,
        # close fd 1 in the child: the shell's `>&-`
        preexec_fn=lambda: os.close(1),
    )
    assert proc.returncode == 2, proc.stderr
    assert b"standard output is closed" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_a_reader_that_goes_away_is_never_success(sandbox: Path) -> None:
    import subprocess
    import sys

    big = core_module(
        section(1, b"\x01\x60\x00\x00"),
        section(2, bytes([0x80, 0x04]) + b"".join(
            b"\x01m" + bytes([1 + len(str(i))]) + b"f" + str(i).encode() + b"\x00\x00"
            for i in range(512)
        )),
    )  # fmt: skip
    (sandbox / "big.wasm").write_bytes(big)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wasmctl", "inspect", "--format", "json", "big.wasm"],
        cwd=sandbox,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        assert proc.wait(timeout=60) == 2
        assert b"output pipe closed" in proc.stderr.read()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_output_files_follow_the_umask(sandbox: Path, umask: int) -> None:
    outcome = run_bounded(
        ["inspect", "app.wasm", "-o", "report.txt"],
        sandbox=sandbox,
        may_write=[sandbox / "report.txt"],
        umask=umask,
    )
    expect(outcome, 0)
    mode = stat.S_IMODE((sandbox / "report.txt").stat().st_mode)
    assert mode == 0o666 & ~umask, oct(mode)


def test_an_endless_password_on_stdin_is_refused(sandbox: Path) -> None:
    outcome = run_bounded(
        ["login", "127.0.0.1:9", "-u", "me", "--password-stdin"],
        sandbox=sandbox,
        stdin=b"\0" * (1 << 20),
        memory=1 << 30,
    )
    expect(outcome, 2, says="longer than")


@pytest.mark.parametrize("value", ["99999999999999", "-5", "1e3", "٣"])
def test_a_source_date_epoch_out_of_range_is_bad_input_everywhere(
    sandbox: Path, value: str
) -> None:
    for argv, may_write in (
        (["sbom", "app.wasm"], []),
        (["build", "app.wasm", "-t", "oci:again:v1"], [sandbox / "again"]),
    ):
        outcome = run_bounded(
            argv, sandbox=sandbox, env={"SOURCE_DATE_EPOCH": value}, may_write=may_write
        )
        expect(outcome, 2, says="SOURCE_DATE_EPOCH")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_docker_config_that_is_a_special_file_is_refused(sandbox: Path, kind: str) -> None:
    config = sandbox / ".home" / ".docker"
    config.mkdir(parents=True)
    special(config / "config.json", kind)
    outcome = run_bounded(
        ["pull", "--plain-http", "127.0.0.1:9", "127.0.0.1:9/a/b:c"], sandbox=sandbox, wall=30
    )
    expect(outcome, 2, says="not a regular file")


def test_an_opa_bundle_that_is_a_fifo_is_refused(sandbox: Path) -> None:
    special(sandbox / "bundle.tar.gz", "fifo")
    outcome = run_bounded(["build", "bundle.tar.gz", "-t", "oci:opa:v1"], sandbox=sandbox, wall=30)
    expect(outcome, 2)


@pytest.mark.parametrize("fmt", ["wasm", "compat"])
def test_a_layer_blob_that_is_a_fifo_is_refused(sandbox: Path, fmt: str) -> None:
    layout = sandbox / f"lay-{fmt}"
    assert run(["build", "--format", fmt, str(sandbox / "app.wasm"), "-t", f"oci:{layout}:v1"]) == 0
    index = json.loads((layout / "index.json").read_bytes())
    manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_bytes())
    layer = manifest["layers"][0]["digest"].split(":", 1)[1]
    special(layout / "blobs" / "sha256" / layer, "fifo")
    for argv in (["scan", f"oci:lay-{fmt}:v1"], ["pull", "-o", "pulled", f"oci:lay-{fmt}:v1"]):
        outcome = run_bounded(argv, sandbox=sandbox, wall=30)
        expect(outcome, 2)
