"""Finding the files to scan, and scanning what cannot be read."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests import wasmbytes as wb
from wasmctl.scan import Verdict, load_preset, scan_paths
from wasmctl.scan.engine import find_wasm_files
from wasmctl.wasm import parse_file

Wat = Callable[[str], Path]


def test_directories_are_searched_recursively_in_order(tmp_path: Path, wat: Wat) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    for rel in ("b/deep/z.wasm", "a/y.wasm", "x.wasm"):
        wat("(module)").rename(tmp_path / rel)
    (tmp_path / "a" / "notes.txt").write_text("not wasm")
    found = [p.relative_to(tmp_path).as_posix() for p in find_wasm_files(tmp_path)]
    assert found == ["x.wasm", "a/y.wasm", "b/deep/z.wasm"]


def test_symlinked_directories_are_not_followed(tmp_path: Path, wat: Wat) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    wat("(module)").rename(outside / "elsewhere.wasm")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    assert find_wasm_files(root) == []


def test_missing_files_and_empty_directories_are_errors(tmp_path: Path) -> None:
    report = scan_paths([tmp_path / "missing.wasm", tmp_path], [load_preset("no-network")])
    errors = [t.error for t in report.targets]
    assert report.verdict is Verdict.ERROR
    assert errors[0] is not None and "No such file" in errors[0]
    assert errors[1] == "no *.wasm files found under this directory"


def test_undecodable_file_names_are_reported_printably(tmp_path: Path, wat: Wat) -> None:
    name = os.fsdecode(b"caf\xe9.wasm")
    wat("(module)").rename(tmp_path / name)
    (target,) = scan_paths([tmp_path], [load_preset("no-network")]).targets
    assert target.path.endswith("caf\\xe9.wasm")
    target.path.encode("utf-8")  # printable on any terminal


def test_huge_sparse_input_is_read_by_its_section_headers(tmp_path: Path) -> None:
    # A 4 GiB file that is one custom section: the reader never touches its payload.
    size = 4 << 30
    section_size = size - len(wb.CORE_PREAMBLE) - 1 - 5  # id byte, 5-byte LEB128 size
    header = wb.CORE_PREAMBLE + b"\x00" + wb.uleb(section_size) + wb.name("payload")
    assert len(wb.uleb(section_size)) == 5
    path = tmp_path / "huge.wasm"
    with path.open("wb") as f:
        f.write(header)
        f.truncate(size)
    module = parse_file(path)
    (section,) = module.custom_sections
    assert section.name == "payload"
    assert section.offset + section.size == size
