"""A reference without a registry host is docker's for reading and refused for writing
(DESIGN.md §1): `build -t out:v1` must not publish to Docker Hub."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wasmctl.cli import run
from wasmctl.oci.reference import (
    InvalidReferenceError,
    LayoutReference,
    RegistryReference,
    parse_destination,
    parse_reference,
    registry_host,
)

HELLO = '(module (func (export "_start")))'
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text", ["out:v1", "out", "acme/app:v1", f"out@{DIGEST}", "docker://out:v1"]
)
def test_a_destination_without_a_host_is_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_destination(text)
    assert caught.value.exit_code == 2


def test_the_refusal_names_the_layout_and_the_docker_hub_spelling() -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_destination("out:v1")
    text = caught.value.diagnostics()
    assert "oci:out:v1" in text
    assert "docker.io/library/out:v1" in text


@pytest.mark.parametrize(
    "text",
    [
        "docker.io/library/out:v1",
        "index.docker.io/acme/app:v1",
        "localhost:5000/app:v1",
        "localhost/app",
        "ghcr.io/acme/app:v1",
        f"registry.example/app@{DIGEST}",
        "docker://ghcr.io/acme/app:v1",
    ],
)
def test_a_destination_with_a_host_is_accepted(text: str) -> None:
    assert isinstance(parse_destination(text), RegistryReference)


@pytest.mark.parametrize("text", ["oci:out:v1", "oci-archive:out.tar:v1", "oci:out"])
def test_a_layout_destination_is_accepted(text: str) -> None:
    assert isinstance(parse_destination(text), LayoutReference)


def test_reading_a_bare_name_keeps_dockers_meaning() -> None:
    assert str(parse_reference("out:v1")) == "docker.io/library/out:v1"
    assert str(parse_reference("acme/app")) == "docker.io/acme/app:latest"


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("out:v1", None),
        ("acme/app:v1", None),
        ("localhost:5000/app:v1", "localhost:5000"),
        ("a.b/c", "a.b"),
        (f"a:b@{DIGEST}", None),
        ("localhost", None),
    ],
)
def test_registry_host_is_what_was_written(text: str, host: str | None) -> None:
    assert registry_host(text) == host


# -- every writing command ------------------------------------------------------------------


@pytest.fixture
def module(wat: Callable[[str], Path]) -> Path:
    return wat(HELLO)


@pytest.fixture
def layout(module: Path, tmp_path: Path) -> str:
    ref = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["build", str(module), "-t", ref]) == 0
    return ref


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], layout_hint: str) -> str:
    """Runs a command that must be refused; returns its stdout."""
    assert run(argv) == 2
    out, err = capsys.readouterr()
    assert f"oci:{layout_hint}" in err, err
    assert "docker.io/" in err, err
    return out


def test_build_refuses_a_bare_tag(
    module: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _refused(["build", str(module), "-t", "out:v1"], capsys, "out:v1")
    assert not (tmp_path / "out").exists()


def test_push_refuses_a_bare_destination(layout: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    _refused(["push", layout, "acme/app:v1"], capsys, "acme/app:v1")


def test_copy_refuses_a_bare_destination(layout: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    _refused(["copy", layout, "out:v1"], capsys, "out:v1")


def test_tag_refuses_a_bare_reference(capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["tag", "acme/app:v1", "stable"], capsys, "acme/app:v1")


def test_sign_refuses_a_bare_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # refused before the key is even opened
    _refused(["sign", "--key", str(tmp_path / "none.key"), "acme/app:v1"], capsys, "acme/app:v1")


def test_sbom_attach_refuses_a_bare_reference(
    module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _refused(["sbom", str(module), "--attach", "out:v1"], capsys, "out:v1")
    assert out == ""  # refused before the SBOM was written


def test_sbom_attest_refuses_a_bare_reference(
    module: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sbom", str(module), "--attest", "out:v1", "--key", str(tmp_path / "none.key")]
    _refused(argv, capsys, "out:v1")
