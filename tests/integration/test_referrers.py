"""Referrers on a registry without the referrers API (distribution 2.8): the fallback tag."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tests.registry import RegistryServer
from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, Manifest
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.referrers import fallback_tag, list_referrers, push_referrer
from wasmctl.oci.registry import RegistryClient
from wasmctl.oci.source import RegistryOptions
from wasmctl.oci.transfer import copy

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"
SBOM = "application/vnd.cyclonedx+json"
SIGNATURE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(autouse=True)
def private_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))


def referrer(client: RegistryClient, repo: str, subject: Descriptor, artifact_type: str,
             content: bytes, note: str) -> bytes:  # fmt: skip
    """Push a referrer's blobs (empty config, one layer); return the referrer's manifest."""
    blob = Descriptor.of(artifact_type, content)
    empty = Descriptor.of(mt.OCI_EMPTY, mt.EMPTY_JSON)
    with tempfile.TemporaryDirectory() as tmp:
        for descriptor, data in ((blob, content), (empty, mt.EMPTY_JSON)):
            path = Path(tmp) / descriptor.digest.replace(":", "-")
            path.write_bytes(data)
            client.push_blob(repo, descriptor, path)
    manifest = Manifest(empty, (blob,), artifact_type=artifact_type, subject=subject,
                        annotations={"org.example.note": note})  # fmt: skip
    return manifest.to_bytes()


def test_fallback_index_is_created_extended_and_never_duplicated(
    registry: RegistryServer, repo_name: str
) -> None:
    target = f"{registry.host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", target, "--plain-http", registry.host]) == 0
    with RegistryClient(registry.host, plain_http=True, use_config=False) as client:
        subject = client.head_manifest(repo_name, "v1")
        assert subject is not None
        sbom = referrer(client, repo_name, subject, SBOM, b'{"bomFormat":"CycloneDX"}', "sbom")
        first = push_referrer(client, repo_name, sbom)
        assert first.fallback_updated  # distribution 2.8 sends no OCI-Subject
        again = push_referrer(client, repo_name, sbom)
        assert not again.fallback_updated
        sig = referrer(client, repo_name, subject, SIGNATURE, b'{"mediaType":"bundle"}', "sig")
        push_referrer(client, repo_name, sig)
        raw, _, _ = client.get_manifest(repo_name, fallback_tag(subject.digest))
        index = json.loads(raw)
        assert [m["artifactType"] for m in index["manifests"]] == [SBOM, SIGNATURE]
        assert index["manifests"][0]["annotations"] == {"org.example.note": "sbom"}
        assert [d.artifact_type for d in list_referrers(client, repo_name, subject.digest)] == [
            SBOM, SIGNATURE,
        ]  # fmt: skip
        only = list_referrers(client, repo_name, subject.digest, SIGNATURE)
        assert [d.artifact_type for d in only] == [SIGNATURE]


def test_copy_recursive_carries_referrers_to_registries_and_layouts(
    registry: RegistryServer, repo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = registry.host
    target = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", target, "--plain-http", host]) == 0
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        subject = client.head_manifest(repo_name, "v1")
        assert subject is not None
        push_referrer(client, repo_name, referrer(client, repo_name, subject, SBOM, b"{}", "s"))
    options = RegistryOptions(plain_http=frozenset({host}))
    mirror = parse_reference(f"{host}/{repo_name}-mirror:v1")
    _, stats = copy(parse_reference(target), mirror, options, recursive=True)
    assert any(SBOM in d for d in stats.details)
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        found = list_referrers(client, f"{repo_name}-mirror", subject.digest)
    assert [d.artifact_type for d in found] == [SBOM]
    # into a layout, and back out of it: referrers listed untagged in index.json
    layout = f"oci:{tmp_path / 'layout'}:v1"
    assert run(["copy", "-r", "--plain-http", host, target, layout]) == 0
    capsys.readouterr()
    assert run(["inspect", "--format", "json", layout]) == 0
    assert [r["artifactType"] for r in json.loads(capsys.readouterr().out)["referrers"]] == [SBOM]
    assert run(["inspect", "--format", "json", "--plain-http", host, target]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["format"] == "wasm" and [r["artifactType"] for r in shown["referrers"]] == [SBOM]
    # without --recursive, nothing but the artifact
    plain = f"{host}/{repo_name}-plain:v1"
    assert run(["copy", "--plain-http", host, target, plain]) == 0
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        assert list_referrers(client, f"{repo_name}-plain", subject.digest) == []
