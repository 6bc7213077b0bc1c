"""Tables written into a pipe never break a name (issue 15): a module, import, export,
custom section or layer name of 150 characters appears whole on one line, the rows that
fit stay within the width, and `COLUMNS` sets the width when it is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.wasmbytes import core_module, custom_section, name, section, uleb, vec, vec_section
from wasmctl._columns import fitted_lines, plain
from wasmctl.cli import run
from wasmctl.gate.model import CheckResult, GateReport, Status, TargetResult
from wasmctl.gate.report import table as gate_table

TITLE = "org.opencontainers.image.title"
LONG_FIELD = "handle_" + "very_long_import_name_" * 6 + "end"  # 142 + the module's name
LONG_MODULE = "vendor_" + "x" * 140
LONG_EXPORT = "exported_" + "y" * 141
LONG_SECTION = "custom_" + "z" * 143
IMPORTS = [
    ("wasi_snapshot_preview1", "fd_write"),
    ("env", LONG_FIELD),
    (LONG_MODULE, "f"),
    ("wasi_snapshot_preview1", "sock_accept"),
]
NAMES = [f"env:{LONG_FIELD}", f"{LONG_MODULE}:f", LONG_EXPORT, LONG_SECTION]


def _module() -> bytes:
    func_type = b"\x60" + vec([]) + vec([])
    imports = [name(m) + name(f) + b"\x00" + uleb(0) for m, f in IMPORTS]
    return core_module(
        vec_section(1, func_type),
        vec_section(2, *imports),
        vec_section(3, uleb(0)),
        vec_section(7, name(LONG_EXPORT) + b"\x00" + uleb(len(IMPORTS))),
        section(10, vec([uleb(2) + b"\x00\x0b"])),
        custom_section(LONG_SECTION, b"payload"),
    )


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe: the width is 100
    path = tmp_path / "long.wasm"
    path.write_bytes(_module())
    return path


def _whole(out: str, names: list[str]) -> None:
    lines = out.splitlines()
    for text in names:
        assert any(text in line for line in lines), f"{text[:30]}… is broken:\n{out}"


def _within(out: str, width: int, names: list[str]) -> None:
    """Only a line holding a long name may be wider than the pipe."""
    for line in out.splitlines():
        assert len(line) <= width or any(n in line for n in names), line


def test_inspect_into_a_pipe_writes_every_long_name_whole(
    module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["inspect", str(module)]) == 0
    out = capsys.readouterr().out
    _whole(out, NAMES)
    _within(out, 100, NAMES)


def test_scan_into_a_pipe_writes_every_long_import_whole(
    module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["scan", str(module)])
    out = capsys.readouterr().out
    _whole(out, NAMES[:2])
    _within(out, 100, [*NAMES[:2], str(module)])


def test_scan_rows_that_fit_keep_their_columns_and_a_long_one_continues_below(
    module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["scan", str(module)])
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if "sock_accept" in line)
    assert row.split() == [
        "network.socket", "wasi_snapshot_preview1:sock_accept", "func", "allow", "default:", "allow"
    ]  # fmt: skip
    long_row = next(i for i, line in enumerate(lines) if LONG_FIELD in line)
    rest = lines[long_row + 1]
    assert rest.split() == ["func", "warn", "unknown", "imports:", "warn"]
    assert rest.index("func") == row.index("func")  # under its own column


def test_the_columns_environment_variable_sets_the_width(
    module: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    assert run(["inspect", str(module)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if LONG_FIELD in line)
    assert row.split()[1:] == ["func", "unknown"]  # wide enough: one row, not two


def test_an_artifact_layer_with_a_long_title_is_written_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    title = "layer_" + "t" * 140 + ".wasm"
    (tmp_path / title).write_bytes(_module())
    layout = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["build", str(tmp_path / title), "-t", layout]) == 0
    capsys.readouterr()
    assert run(["inspect", "-f", "json", layout]) == 0
    layer = json.loads(capsys.readouterr().out)["layers"][0]
    shown = f"{layer['digest'][:19]}… {layer['annotations'][TITLE]}"  # as long as build keeps
    assert len(shown) > 80  # with the other columns, wider than the pipe
    assert run(["inspect", layout]) == 0
    _whole(capsys.readouterr().out, [shown])


def test_the_gate_table_writes_a_long_target_whole() -> None:
    target = "registry.example/" + "team/" * 20 + "app:v1"
    report = GateReport(
        policy="gate.yaml",
        targets=(
            TargetResult(
                target=target,
                origin=None,
                checks=(CheckResult("signature", Status.FAIL, f"no signature on {target}"),),
            ),
        ),
    )
    _whole(gate_table(report), [target, f"no signature on {target}"])


def test_a_name_too_long_for_its_column_has_a_line_of_its_own() -> None:
    rows = [
        [("short", ""), ("func", ""), ("a reason in a few words", "")],
        [("n" * 60, ""), ("func", ""), ("another reason that is long enough to wrap", "")],
    ]
    lines = [plain(line) for line in fitted_lines(("name", "kind", "why"), rows, 40, prose=2)]
    assert "n" * 60 in lines
    assert all(len(line) <= 40 for line in lines if "n" * 60 not in line)
    assert lines[0].split() == ["name", "kind", "why"]
    # the rest of the long name's row, aligned under its columns, prose wrapped by words
    after = lines[lines.index("n" * 60) + 1 :]
    assert after[0].split()[0] == "func" and after[0].startswith(" ")
    assert " ".join(" ".join(line.split()[1:] if i == 0 else line.split())
                    for i, line in enumerate(after)) == (
        "another reason that is long enough to wrap"
    )  # fmt: skip
