"""SBOMs of artifacts in the real registry: purl, --attach, --attest, verify, inspect."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import pytest

from tests.registry import RegistryServer
from tests.sbom_fixtures import rust_module
from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, Index, Manifest
from wasmctl.oci.referrers import fallback_tag
from wasmctl.oci.registry import RegistryClient
from wasmctl.sign.keys import generate_key_pair, write_key_pair

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1732579200")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """A cosign key pair (password "pw", as COSIGN_PASSWORD says)."""
    return write_key_pair(generate_key_pair(b"pw"), tmp_path / "cosign")


@pytest.fixture
def pushed(registry: RegistryServer, repo_name: str, tmp_path: Path) -> str:
    """A Rust module (with .dep-v0) built into the registry; returns its reference."""
    ref = f"{registry.host}/{repo_name}:v1"
    module = rust_module(tmp_path)
    assert run(["build", str(module), "-t", ref, "--plain-http", registry.host]) == 0
    return ref


def test_an_artifact_sbom_names_it_by_an_oci_purl(
    registry: RegistryServer, repo_name: str, pushed: str, tmp_path: Path
) -> None:
    out = tmp_path / "bom.json"
    assert run(["sbom", pushed, "--plain-http", registry.host, "-o", str(out)]) == 0
    bom = json.loads(out.read_text())
    component = bom["metadata"]["component"]
    with RegistryClient(registry.host, plain_http=True, use_config=False) as client:
        subject = client.head_manifest(repo_name, "v1")
    assert subject is not None
    name = repo_name.rsplit("/", 1)[-1]
    # as purl-spec's own example: pkg:oci/debian@sha256:244f...?repository_url=docker.io/...
    assert component["purl"] == (
        f"pkg:oci/{name}@{subject.digest}?repository_url={registry.host}/{repo_name}&tag=v1"
    )
    digests = [p["value"] for p in component["properties"]
               if p["name"] == "wasmctl:oci:manifest-digest"]  # fmt: skip
    assert digests == [subject.digest]
    assert any(c["purl"] == "pkg:cargo/serde@1.0.215" for c in bom["components"])

    spdx = tmp_path / "bom.spdx.json"
    assert run(["sbom", pushed, "-f", "spdx-json", "--plain-http", registry.host,
                "-o", str(spdx)]) == 0  # fmt: skip
    package = json.loads(spdx.read_text())["packages"][0]
    assert package["externalRefs"][0]["referenceLocator"] == component["purl"]


def test_attach_stores_the_sbom_as_a_referrer(
    registry: RegistryServer, repo_name: str, pushed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    host = registry.host
    assert run(["sbom", pushed, "--attach", pushed, "--plain-http", host, "-o", "/dev/null"]) == 0
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        subject = client.head_manifest(repo_name, "v1")
        assert subject is not None
        index = json.loads(client.get_manifest(repo_name, fallback_tag(subject.digest))[0])
        [entry] = index["manifests"]
        assert entry["artifactType"] == "application/vnd.cyclonedx+json"
        manifest = Manifest.from_bytes(client.get_manifest(repo_name, entry["digest"])[0])
        [layer] = manifest.layers
        stored = json.loads(client.read_blob(repo_name, layer))
    assert stored["bomFormat"] == "CycloneDX"
    assert manifest.subject is not None and manifest.subject.digest == subject.digest
    capsys.readouterr()
    assert run(["inspect", "-f", "json", pushed, "--plain-http", host]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sboms"] == [{"digest": entry["digest"],
                              "artifactType": "application/vnd.cyclonedx+json"}]  # fmt: skip


def test_attest_signs_the_sbom_and_verify_checks_it(
    registry: RegistryServer,
    repo_name: str,
    pushed: str,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = registry.host
    key, pub = keys
    for fmt in ("cyclonedx-json", "spdx-json"):
        assert run(["sbom", pushed, "-f", fmt, "--attest", pushed, "--key", str(key),
                    "--plain-http", host, "-o", "/dev/null"]) == 0  # fmt: skip
    for kind in ("cyclonedx", "spdx", "https://spdx.dev/Document"):
        assert run(["verify", "--key", str(pub), "--attestation", kind, pushed,
                    "--plain-http", host]) == 0, kind  # fmt: skip
    assert run(["verify", "--key", str(pub), "--attestation", "slsaprovenance1", pushed,
                "--plain-http", host]) == 1  # fmt: skip
    capsys.readouterr()
    assert run(["inspect", "-f", "json", pushed, "--plain-http", host]) == 0
    listed = json.loads(capsys.readouterr().out)["signatures"]
    assert sorted(s["predicateType"] for s in listed if s["kind"] == "attestation") == [
        "https://cyclonedx.org/bom", "https://spdx.dev/Document",
    ]  # fmt: skip


def test_a_tampered_attested_sbom_fails_verification(
    registry: RegistryServer,
    repo_name: str,
    pushed: str,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Swap the registry's attestation for one whose SBOM says something else."""
    host = registry.host
    key, pub = keys
    assert run(["sbom", pushed, "--attest", pushed, "--key", str(key), "--plain-http", host,
                "-o", "/dev/null"]) == 0  # fmt: skip
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        subject = client.head_manifest(repo_name, "v1")
        assert subject is not None
        tag = fallback_tag(subject.digest)
        [entry] = json.loads(client.get_manifest(repo_name, tag)[0])["manifests"]
        original = Manifest.from_bytes(client.get_manifest(repo_name, entry["digest"])[0])
        bundle = json.loads(client.read_blob(repo_name, original.layers[0]))
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        statement["predicate"]["components"] = [
            c for c in statement["predicate"]["components"] if c["name"] != "serde"
        ]  # hide a dependency
        bundle["dsseEnvelope"]["payload"] = base64.b64encode(
            json.dumps(statement).encode()
        ).decode()
        data = json.dumps(bundle).encode()
        layer = Descriptor.of(BUNDLE, data)
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "bundle"
            staged.write_bytes(data)
            client.push_blob(repo_name, layer, staged)
        forged = Manifest(original.config, (layer,), artifact_type=BUNDLE,
                          subject=original.subject, annotations=original.annotations)  # fmt: skip
        raw = forged.to_bytes()
        descriptor = Descriptor.of(mt.OCI_MANIFEST, raw, dict(original.annotations),
                                   artifact_type=BUNDLE)  # fmt: skip
        client.put_manifest(repo_name, descriptor.digest, mt.OCI_MANIFEST, raw)
        index = Index((descriptor,), media_type=mt.OCI_INDEX)
        client.put_manifest(repo_name, tag, mt.OCI_INDEX, index.to_bytes())
    capsys.readouterr()
    code = run(["verify", "-f", "json", "--key", str(pub), "--attestation", "cyclonedx", pushed,
                "--plain-http", host])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    [check] = report["signatures"]
    assert not check["verified"] and "does not verify" in check["error"]
