"""Transfer progress off a terminal: a line per blob started and finished, as skopeo prints,
a line every few seconds for a long transfer, and nothing with --quiet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.registry import RegistryServer
from wasmctl.cli import run
from wasmctl.cli._common import SETTINGS
from wasmctl.cli._progress import TransferBars, TransferLines, transfer_progress

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"


@pytest.fixture(autouse=True)
def _settings_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """`-q` sets a global for the process: leave it as it was."""
    monkeypatch.setattr(SETTINGS, "quiet", False)


def _blobs(layout: Path) -> list[str]:
    """The config and layer digests of the one artifact in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / digest[7:]).read_text())
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


@pytest.fixture
def layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert run(["build", str(HELLO), "-t", f"oci:{tmp_path / 'layout'}:v1"]) == 0
    capsys.readouterr()
    return tmp_path / "layout"


def _assert_a_line_per_blob(err: str, blobs: list[str], verb: str) -> None:
    lines = err.splitlines()
    for blob in blobs:
        short = blob[:19]
        assert len([ln for ln in lines if ln.startswith(f"{verb}ing blob {short}")]) == 1, err
        assert len([ln for ln in lines if ln.startswith(f"{verb}ed blob {short}")]) == 1, err


def test_a_push_off_a_terminal_prints_a_line_per_blob_started_and_finished(
    registry: RegistryServer, repo_name: str, layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["push", "--plain-http", registry.host, f"oci:{layout}:v1", target]) == 0
    _assert_a_line_per_blob(capsys.readouterr().err, _blobs(layout), "Push")


def test_a_pull_off_a_terminal_prints_a_line_per_blob_started_and_finished(
    registry: RegistryServer,
    repo_name: str,
    layout: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["push", "--plain-http", registry.host, f"oci:{layout}:v1", target]) == 0
    capsys.readouterr()
    assert run(["pull", "--plain-http", registry.host, target, "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    _assert_a_line_per_blob(err, _blobs(layout), "Pull")
    assert "(hello.wasm)" in err  # the layer is named by its title too


def test_a_build_to_a_registry_prints_a_line_per_blob(
    registry: RegistryServer, repo_name: str, layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", target, "--plain-http", registry.host]) == 0
    _assert_a_line_per_blob(capsys.readouterr().err, _blobs(layout), "Push")


def test_quiet_silences_the_progress_lines(
    registry: RegistryServer,
    repo_name: str,
    layout: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["-q", "push", "--plain-http", registry.host, f"oci:{layout}:v1", target]) == 0
    assert capsys.readouterr().err == ""
    assert run(["-q", "pull", "--plain-http", registry.host, target, "-o", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_stderr_off_a_terminal_gets_lines_and_at_a_terminal_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(transfer_progress(), TransferLines)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert isinstance(transfer_progress(), TransferBars)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


DIGEST = "sha256:" + "ab" * 32
KEY = f"push {DIGEST}"


def test_a_long_transfer_gets_a_line_every_interval_with_the_bytes_done() -> None:
    out, clock = io.StringIO(), FakeClock()
    lines = TransferLines(out, clock=clock, interval=5.0)
    total = 100 << 20
    lines.start(KEY, "push app.wasm", total)
    for _ in range(10):  # 10 MiB a second, for 10 seconds
        clock.now += 1.0
        lines.advance(KEY, 10 << 20)
    lines.finish(KEY)
    assert out.getvalue().splitlines() == [
        "Pushing blob sha256:abababababab (app.wasm), 100.0 MiB",
        "  sha256:abababababab (app.wasm): 50.0 MiB of 100.0 MiB (50%)",
        "Pushed blob sha256:abababababab (app.wasm), 100.0 MiB in 10.0 s",
    ]


def test_a_short_transfer_gets_no_line_between_start_and_finish() -> None:
    out, clock = io.StringIO(), FakeClock()
    lines = TransferLines(out, clock=clock, interval=5.0)
    lines.start(KEY, "push abababababab", 4096)
    clock.now += 4.9
    lines.advance(KEY, 4096)
    lines.finish(KEY)
    assert out.getvalue().splitlines() == [
        "Pushing blob sha256:abababababab, 4.0 KiB",
        "Pushed blob sha256:abababababab, 4.0 KiB in 4.9 s",
    ]


def test_a_transfer_that_breaks_says_how_far_it_got() -> None:
    out = io.StringIO()
    lines = TransferLines(out, clock=FakeClock())
    lines.start(f"pull {DIGEST}", "pull app.wasm", 2048)
    lines.advance(f"pull {DIGEST}", 1024)
    lines.finish(f"pull {DIGEST}")
    assert out.getvalue().splitlines()[-1] == (
        "Stopped pulling blob sha256:abababababab (app.wasm) after 1.0 KiB of 2.0 KiB"
    )
