"""The command line: exit codes (DESIGN.md §1), formats, output files, help."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wasmctl import __version__
from wasmctl.cli import COMMANDS, run

Wat = Callable[[str], Path]
SOCKETS = '(module (import "wasi_snapshot_preview1" "sock_accept" (func)))'
HELLO = '(module (import "wasi_snapshot_preview1" "fd_write" (func)) (func (export "_start")))'


def test_allowed_scan_exits_0(wat: Wat, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["scan", "--preset", "no-network", str(wat(HELLO))]) == 0
    assert "ALLOW" in capsys.readouterr().out


def test_denied_scan_exits_1(wat: Wat, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["scan", "--preset", "no-network", str(wat(SOCKETS))]) == 1
    assert "sock_accept" in capsys.readouterr().out


def test_malformed_module_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\x00asm\x01\x00\x00\x00\x02\x09\x01")
    assert run(["scan", "--preset", "no-network", str(bad)]) == 2
    assert run(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.wasm" in err and "byte offset" in err and "Traceback" not in err


def test_denial_wins_over_errors_with_several_targets(wat: Wat, tmp_path: Path) -> None:
    (tmp_path / "bad.wasm").write_bytes(b"junk")
    assert run(["scan", "--preset", "no-network", str(wat(SOCKETS)), str(tmp_path)]) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "--preset", "no-such-preset", "x.wasm"],
        ["scan", "--format", "xml", "x.wasm"],
        ["scan", "--policy", "/nonexistent/policy.yaml", "x.wasm"],
        ["inspect", "/nonexistent.wasm"],
        ["frobnicate"],
    ],
)
def test_usage_and_input_errors_exit_2(argv: list[str]) -> None:
    assert run(argv) == 2


def test_allow_override(wat: Wat) -> None:
    path = str(wat(SOCKETS))
    assert run(["scan", "--preset", "wasi-p1-strict", path]) == 1
    assert run(["scan", "--preset", "wasi-p1-strict", "--allow", "network.socket", path]) == 0


def test_scan_json_and_output_file(wat: Wat, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert (
        run(["scan", "--preset", "no-network", "-f", "json", "-o", str(out), str(wat(SOCKETS))])
        == 1
    )
    assert json.loads(out.read_text())["verdict"] == "deny"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"] or "report.json" in {
        p.name for p in tmp_path.iterdir()
    }
    assert not list(tmp_path.glob(".report.json.*"))


def test_failed_run_leaves_no_output_file(tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    assert run(["scan", "--preset", "bogus", "-f", "sarif", "-o", str(out), "x.wasm"]) == 2
    assert not out.exists()


def test_inspect_json_shape(wat: Wat, capsys: pytest.CaptureFixture[str]) -> None:
    path = wat(
        """(component (import "wasi:sockets/tcp@0.2.0" (instance))
             (core module (import "env" "f" (func))))"""
    )
    assert run(["inspect", "--format", "json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "component" and data["size"] == path.stat().st_size
    assert len(data["sha256"]) == 64
    assert data["imports"] == [
        {
            "module": "wasi:sockets/tcp@0.2.0",
            "name": "",
            "kind": "instance",
            "capability": "network.socket",
        }
    ]
    assert data["nested"][0]["imports"][0]["module"] == "env"
    assert {"exports", "custom_sections", "producers"} <= set(data["nested"][0])


def test_bugs_exit_4_and_say_so(
    monkeypatch: pytest.MonkeyPatch, wat: Wat, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr("wasmctl.scan.scan_paths", boom)
    assert run(["scan", str(wat(HELLO))]) == 4
    assert "internal error" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wasmctl {__version__}"


def test_every_command_has_examples_in_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name in COMMANDS:
        assert run([name, "--help"]) == 0
        assert "Examples" in capsys.readouterr().out


def test_python_dash_m_and_the_console_script(wat: Wat) -> None:
    path = str(wat(SOCKETS))
    for argv in ([sys.executable, "-m", "wasmctl"], ["wasmctl"]):
        proc = subprocess.run(
            [*argv, "scan", "--preset", "no-network", path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr


def test_no_color_when_piped(wat: Wat) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wasmctl", "scan", str(wat(SOCKETS))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "\x1b[" not in proc.stdout


def test_inspect_table_shows_producers_imports_and_nesting(
    wat: Wat, capsys: pytest.CaptureFixture[str]
) -> None:
    path = wat(
        """(component
             (import "wasi:sockets/tcp@0.2.0" (instance))
             (core module $inner (import "env\\1b[31m" "f" (func)))
             (@producers (processed-by "wit-component" "0.262.0")))"""
    )
    assert run(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "processed-by  wit-component 0.262.0" in out
    assert "wasi:sockets/tcp@0.2.0" in out and "network.socket" in out
    assert f"{path} /0" in out
    assert "\x1b" not in out and "env\\x1b[31m:f" in out


def test_build_flags_become_annotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wasmctl.oci.layout import OCILayout
    from wasmctl.oci.models import Manifest

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    hello = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"
    argv = ["build", str(hello), "-t", f"oci:{tmp_path}/out:v1", "--version", "1.2.3",
            "--source", "https://example.com/src", "--revision", "abc", "--description", "hi",
            "--license", "MIT", "-a", "com.example.team=edge", "--author", "Ada"]  # fmt: skip
    assert run(argv) == 0
    digest = capsys.readouterr().out.strip()
    layout = OCILayout.open(tmp_path / "out")
    descriptor = layout.resolve("v1")
    assert descriptor.digest == digest
    annotations = Manifest.from_bytes(layout.read_blob(descriptor)).annotations
    assert {k: v for k, v in annotations.items() if k != "module.wasm.image/variant"} == {
        "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
        "org.opencontainers.image.version": "1.2.3",
        "org.opencontainers.image.source": "https://example.com/src",
        "org.opencontainers.image.revision": "abc",
        "org.opencontainers.image.description": "hi",
        "org.opencontainers.image.licenses": "MIT",
        "com.example.team": "edge",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "examples/modules/README-missing.wasm", "-t", "oci:OUT:v1"],
        ["build", "examples/modules/hello.wat", "-t", "oci:OUT:v1"],
        ["build", "examples/modules/hello.wasm", "-t", "ghcr.io/Acme/app:v1"],
        ["build", "examples/modules/hello.wasm", "-t", "oci:OUT:bad::tag"],
        ["build", "examples/modules/hello.wasm", "-t", "oci:OUT", "-a", "novalue"],
        ["build", "examples/modules/hello.wasm", "-t", "oci:OUT", "--format", "docker"],
    ],
)
def test_build_input_errors_exit_2_and_write_nothing(tmp_path: Path, argv: list[str]) -> None:
    root = Path(__file__).parents[2]
    argv = [a.replace("examples/", f"{root}/examples/").replace("OUT", str(tmp_path / "o"))
            for a in argv]  # fmt: skip
    assert run(argv) == 2
    assert not (tmp_path / "o").exists()


def test_output_to_a_device_writes_through_it_and_never_replaces_it(tmp_path: Path) -> None:
    """`-o /dev/null` must not rename a file over the device (a FIFO stands in for it)."""
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert run(["inspect", "-f", "json", "-o", str(fifo), "examples/modules/hello.wasm"]) == 0
    reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(received[0])["kind"] == "module"
