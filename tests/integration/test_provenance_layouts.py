"""Real SLSA provenance kept by `cosign save`, verified offline (issue 16, part 2).

The two layouts in shared/testdata/provenance/ hold container images built by the SLSA
GitHub generator and their keyless legacy attestations, as `cosign save` writes them: no
tags, `index.json` entries marked `kind: dev.cosignproject.cosign/imageIndex` and `.../atts`.
Each verifies against the public-good trusted root with the generator's identity; each way
of spoiling it (a flipped byte of the envelope, the statement moved beside another image, a
wrong identity) is a denial with the reason. Altered copies are made in `tmp_path`; the
shared data is only read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wasmctl.cli import run
from wasmctl.oci.models import sha256_digest
from wasmctl.sign import storage

SHARED = Path(__file__).parents[3] / "shared" / "testdata"
PROVENANCE = SHARED / "provenance"
TRUSTED_ROOT = SHARED / "sigstore" / "trust" / "trusted_root.production.json"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/"
)
ISSUER = "https://token.actions.githubusercontent.com"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
ATTS = "dev.cosignproject.cosign/atts"


@dataclass(frozen=True)
class Saved:
    """One `cosign save` layout of the test data, and what it is known to hold."""

    version: str

    @property
    def path(self) -> Path:
        return PROVENANCE / f"gha-container-{self.version}" / "container_workflow_dispatch"

    @property
    def digest(self) -> str:
        return self.path.with_suffix(".digest").read_text().strip()

    @property
    def identity(self) -> str:
        return GENERATOR + self.version


SAVED = [Saved("v1.10.0"), Saved("v2.0.0")]
V2 = SAVED[1]


def verify(target: str, identity: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """`wasmctl verify --attestation slsaprovenance` with the generator's issuer, offline; the
    exit code and the JSON report."""
    capsys.readouterr()
    code = run([
        "verify", target, "-f", "json", "--attestation", "slsaprovenance",
        "--certificate-identity", identity, "--certificate-oidc-issuer", ISSUER,
        "--trusted-root", str(TRUSTED_ROOT),
    ])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


# -- altering a copy ---------------------------------------------------------------------------


def copy_layout(saved: Saved, tmp_path: Path) -> Path:
    target = tmp_path / "layout"
    shutil.copytree(saved.path, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def read_index(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "index.json").read_bytes())
    return data


def write_index(root: Path, index: dict[str, Any]) -> None:
    (root / "index.json").write_text(json.dumps(index))


def blob(root: Path, digest: str) -> bytes:
    return (root / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def put_blob(root: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    (root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
    return digest


def atts_entry(index: dict[str, Any]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = index["manifests"]
    (entry,) = [e for e in entries if e.get("annotations", {}).get("kind") == ATTS]
    return entry


def replace_envelope(root: Path, alter: Any) -> None:
    """Store `alter(envelope bytes)` as the attestation layer, under its own digest, with a
    manifest and `index.json` entry that name it: every digest agrees, so what fails is
    the signature over the altered bytes."""
    index = read_index(root)
    entry = atts_entry(index)
    manifest_raw = blob(root, entry["digest"])
    (layer,) = json.loads(manifest_raw)["layers"]
    envelope = blob(root, layer["digest"])
    altered = alter(envelope)
    assert len(altered) == len(envelope) and altered != envelope
    new_layer = put_blob(root, altered)
    new_manifest = manifest_raw.replace(layer["digest"].encode(), new_layer.encode())
    entry["digest"] = put_blob(root, new_manifest)
    write_index(root, index)


def flip_in_base64(envelope: bytes, field: str) -> bytes:
    """The envelope with one byte of the decoded `field` flipped, re-encoded in place (the
    rest of the envelope unchanged): in the statement (`payload`), a letter of the source
    repository's name, so it still reads as the same statement about the same image; in
    the first signature (`sig`), its last byte."""
    import base64

    data = json.loads(envelope)
    value = data["payload"] if field == "payload" else data["signatures"][0]["sig"]
    decoded = bytearray(base64.b64decode(value))
    offset = decoded.index(b"example-package") + len("example-") if field == "payload" else -1
    decoded[offset] ^= 0x01
    return envelope.replace(value.encode(), base64.b64encode(bytes(decoded)), 1)


# -- what verifies -------------------------------------------------------------------------------


@pytest.mark.parametrize("saved", SAVED, ids=lambda s: s.version)
def test_the_generator_provenance_verifies_offline_by_digest(
    saved: Saved, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = verify(f"oci:{saved.path}@{saved.digest}", saved.identity, capsys)
    assert code == 0, report
    (check,) = report["signatures"]
    assert check["verified"] and check["format"] == "cosign-attestation"
    assert check["source"].startswith("cosign-save atts sha256:")
    assert check["subjects"] == [saved.digest]
    assert check["predicateType"] == SLSA_V02
    assert report["problems"] == []


def test_a_cosign_save_layout_without_a_digest_is_its_one_image(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = verify(f"oci:{V2.path}", V2.identity, capsys)
    assert code == 0, report
    assert report["digest"] == V2.digest


def test_the_provenance_under_a_legacy_att_tag_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same manifests tagged as cosign pushes them to a registry: the image by a tag,
    the attestations under `sha256-<hex>.att`, no `kind` annotations."""
    root = copy_layout(V2, tmp_path)
    index = read_index(root)
    for entry in index["manifests"]:
        kind = entry.pop("annotations")["kind"]
        tag = V2.digest.replace(":", "-") + ".att" if kind == ATTS else "v1"
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    write_index(root, index)
    code, report = verify(f"oci:{root}:v1", V2.identity, capsys)
    assert code == 0, report
    assert [c["source"] for c in report["signatures"]] == [f"tag {V2.digest.replace(':', '-')}.att"]


# -- what does not --------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["payload", "sig"], ids=["statement-byte", "signature-byte"])
@pytest.mark.parametrize("saved", SAVED, ids=lambda s: s.version)
def test_a_flipped_byte_in_the_envelope_is_denied(
    saved: Saved, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_layout(saved, tmp_path)
    replace_envelope(root, lambda envelope: flip_in_base64(envelope, field))
    code, report = verify(f"oci:{root}@{saved.digest}", saved.identity, capsys)
    assert code == 1, report
    (check,) = report["signatures"]
    assert not check["verified"]
    assert check["subjects"] == [saved.digest]  # found, about this image, and still refused
    # the signature's failure (or the log entry's, which names the envelope's hash)
    assert "signature does not verify" in check["error"] or "log entry" in check["error"]


@pytest.mark.parametrize("saved", SAVED, ids=lambda s: s.version)
def test_a_statement_moved_beside_another_image_is_denied(
    saved: Saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attestations entry kept, the image entry swapped for another image (the index's
    own linux/amd64 manifest): discovery offers the statement, the verifier refuses it
    because its subject is the original digest."""
    root = copy_layout(saved, tmp_path)
    index = read_index(root)
    original = json.loads(blob(root, saved.digest))
    other = next(m for m in original["manifests"] if m.get("platform", {}).get("os") == "linux")
    index["manifests"] = [
        {**other, "annotations": {"kind": "dev.cosignproject.cosign/image"}},
        atts_entry(index),
    ]
    write_index(root, index)
    code, report = verify(f"oci:{root}@{other['digest']}", saved.identity, capsys)
    assert code == 1, report
    (check,) = report["signatures"]
    assert check["error"] == f"the statement is about {saved.digest}"


def test_a_statement_under_another_digests_att_tag_is_denied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_layout(V2, tmp_path)
    index = read_index(root)
    original = json.loads(blob(root, V2.digest))
    other = original["manifests"][0]["digest"]
    entry = atts_entry(index)
    entry["annotations"] = {"org.opencontainers.image.ref.name": other.replace(":", "-") + ".att"}
    index["manifests"].append(
        {**original["manifests"][0], "annotations": {"org.opencontainers.image.ref.name": "v1"}}
    )
    write_index(root, index)
    code, report = verify(f"oci:{root}:v1", V2.identity, capsys)
    assert code == 1, report
    assert [c["error"] for c in report["signatures"]] == [f"the statement is about {V2.digest}"]


@pytest.mark.parametrize("saved", SAVED, ids=lambda s: s.version)
def test_another_identity_is_denied_with_the_one_found(
    saved: Saved, capsys: pytest.CaptureFixture[str]
) -> None:
    other = next(s for s in SAVED if s != saved)
    code, report = verify(f"oci:{saved.path}@{saved.digest}", other.identity, capsys)
    assert code == 1, report
    (check,) = report["signatures"]
    assert check["error"] == f"identity is not {other.identity!r}"
    assert check["signer"]["identities"] == [saved.identity]


def test_the_denial_says_why_in_the_table_too(capsys: pytest.CaptureFixture[str]) -> None:
    other = SAVED[0]
    assert run([
        "verify", f"oci:{V2.path}@{V2.digest}", "--attestation", "slsaprovenance",
        "--certificate-identity", other.identity, "--certificate-oidc-issuer", ISSUER,
        "--trusted-root", str(TRUSTED_ROOT),
    ]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "NOT verified" in out
    assert f"reason: identity is not '{other.identity}'" in out


# -- what a hostile layout cannot do ------------------------------------------------------------


def missing_entry(n: int) -> dict[str, Any]:
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256_digest(f"missing {n}".encode()),
        "size": 100,
        "annotations": {"kind": ATTS},
    }


def test_an_entry_whose_manifest_is_missing_is_reported_beside_one_that_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_layout(V2, tmp_path)
    index = read_index(root)
    index["manifests"].insert(1, missing_entry(0))
    write_index(root, index)
    code, report = verify(f"oci:{root}@{V2.digest}", V2.identity, capsys)
    assert code == 0, report
    (problem,) = report["problems"]
    assert problem.startswith(f"cosign-save atts {missing_entry(0)['digest']}: ")
    assert "missing" in problem


def test_only_missing_manifests_are_a_denial_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_layout(V2, tmp_path)
    index = read_index(root)
    index["manifests"] = [index["manifests"][0], missing_entry(0)]
    write_index(root, index)
    code, report = verify(f"oci:{root}@{V2.digest}", V2.identity, capsys)
    assert code == 1, report
    assert report["signatures"] == [] and len(report["problems"]) == 1


def test_many_entries_are_read_up_to_a_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_layout(V2, tmp_path)
    index = read_index(root)
    many = [missing_entry(n) for n in range(10 * storage.MAX_COSIGN_STORES)]
    index["manifests"] = [index["manifests"][0], *many, index["manifests"][1]]
    write_index(root, index)
    code, report = verify(f"oci:{root}@{V2.digest}", V2.identity, capsys)
    assert code == 1, report  # the real one is beyond the bound: never read
    problems = report["problems"]
    assert len(problems) == storage.MAX_COSIGN_STORES + 1
    assert problems[-1] == (
        f"cosign save: {len(many) + 1} signature entries beside the image; the first "
        f"{storage.MAX_COSIGN_STORES} were read"
    )


def test_an_image_entry_of_no_cosign_kind_gets_no_saved_signatures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signatures stand beside the image `cosign save` marked, not beside any manifest."""
    root = copy_layout(V2, tmp_path)
    index = read_index(root)
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    write_index(root, index)
    code, report = verify(f"oci:{root}:v1", V2.identity, capsys)
    assert code == 1, report
    assert report["signatures"] == [] and report["problems"] == []


# -- gate and inspect take the layout by digest too ------------------------------------------------


def test_gate_reads_the_layout_by_digest_and_gives_a_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Gate judges Wasm artifacts; a container image named directly gets its verdict for any
    other image (today: denied as not Wasm), never an input error or a crash."""
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        "version: 1\nattestations:\n  - predicateType: slsaprovenance\n"
        "    signers:\n      keyless:\n"
        f"        - identity: {V2.identity}\n          issuer: {ISSUER}\n"
        f"trust:\n  trustedRoot: {TRUSTED_ROOT}\n"
    )
    code = run(["gate", "-p", str(policy), "-f", "json", f"oci:{V2.path}@{V2.digest}"])
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1), report
    (target,) = report["targets"]
    assert target["reference"] == f"oci:{V2.path}@{V2.digest}"


def test_inspect_names_the_image_and_its_saved_attestation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["inspect", "-f", "json", f"oci:{V2.path}@{V2.digest}"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["wasm"], data["format"], data["digest"]) == (False, "unknown", V2.digest)
    (saved,) = data["cosignSaved"]
    (signature,) = data["signatures"]
    assert signature["source"] == f"cosign-save atts {saved['digest']}"
    assert signature["signer"].startswith(V2.identity)


# -- offline, provably ----------------------------------------------------------------------------


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not unshare_works(), reason="unshare --net is not permitted here")
def test_verification_runs_in_a_namespace_without_network(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "wasmctl", "verify", "-f", "json",
         f"oci:{V2.path}@{V2.digest}", "--attestation", "slsaprovenance",
         "--certificate-identity", V2.identity, "--certificate-oidc-issuer", ISSUER,
         "--trusted-root", str(TRUSTED_ROOT)],
        env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert json.loads(result.stdout)["passed"] is True
    assert list(tmp_path.rglob("*")) == []
