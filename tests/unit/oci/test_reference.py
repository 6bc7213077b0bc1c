"""References: docker normalisation, layout and archive forms, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmctl.oci.reference import (
    InvalidReferenceError,
    LayoutReference,
    RegistryReference,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", RegistryReference("docker.io", "library/alpine", "latest")),
        ("alpine:3.20", RegistryReference("docker.io", "library/alpine", "3.20")),
        ("acme/app", RegistryReference("docker.io", "acme/app", "latest")),
        ("docker.io/alpine", RegistryReference("docker.io", "library/alpine", "latest")),
        ("index.docker.io/acme/app:v1", RegistryReference("docker.io", "acme/app", "v1")),
        ("ghcr.io/acme/app:v1", RegistryReference("ghcr.io", "acme/app", "v1")),
        ("localhost/app", RegistryReference("localhost", "app", "latest")),
        ("localhost:5000/a/b/c:t", RegistryReference("localhost:5000", "a/b/c", "t")),
        ("127.0.0.1:5000/app", RegistryReference("127.0.0.1:5000", "app", "latest")),
        (f"ghcr.io/acme/app@{DIGEST}", RegistryReference("ghcr.io", "acme/app", None, DIGEST)),
        (f"ghcr.io/acme/app:v1@{DIGEST}", RegistryReference("ghcr.io", "acme/app", "v1", DIGEST)),
        ("docker://quay.io/x/y:z", RegistryReference("quay.io", "x/y", "z")),
        ("[::1]:5000/app:v1", RegistryReference("[::1]:5000", "app", "v1")),
    ],
)
def test_registry_references_are_normalised(text: str, expected: RegistryReference) -> None:
    assert parse_reference(text) == expected


def test_registry_reference_prints_back() -> None:
    assert str(parse_reference("alpine")) == "docker.io/library/alpine:latest"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oci:out", LayoutReference(Path("out"))),
        ("oci:out:v1", LayoutReference(Path("out"), "v1")),
        ("oci:/tmp/a/b:1.0-rc_1", LayoutReference(Path("/tmp/a/b"), "1.0-rc_1")),
        (f"oci:out@{DIGEST}", LayoutReference(Path("out"), None, DIGEST)),
        ("oci-archive:x.tar", LayoutReference(Path("x.tar"), archive=True)),
        ("oci-archive:x.tar:v2", LayoutReference(Path("x.tar"), "v2", archive=True)),
    ],
)
def test_layout_references(text: str, expected: LayoutReference) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Acme/App",  # repositories are lowercase
        "acme/app:",
        "acme/app:-bad",
        "acme/app@sha256:xyz",
        "acme//app",
        "oci:",
        "oci:out:bad tag",
        "oci:out:a::b",  # not a ref name (a tag may hold ":" and "/", as image-spec allows)
        f"oci-archive:x.tar@{DIGEST}",
        "exa mple.com/app",
        "a" * 300,
    ],
)
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


def test_a_layout_tag_may_hold_a_whole_registry_reference() -> None:
    ref = parse_reference("oci:mirror:ghcr.io/acme/app:v1.2")
    assert isinstance(ref, LayoutReference)
    assert (ref.path, ref.tag) == (Path("mirror"), "ghcr.io/acme/app:v1.2")
