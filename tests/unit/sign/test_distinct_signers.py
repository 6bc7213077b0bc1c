"""`required` counts distinct signers, not stored copies (issue 11, item 2).

One key's signature listed twice (two signings, or the same bundle re-wrapped under a second
referrer manifest, or one `.sig` layer twice, or a bundle beside the same key's legacy `.sig`)
is one signer; so are two certificates for one keyless identity. `verify --require 2` fails
on such copies and says there is one distinct signer.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.schemas import doc_schema
from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Manifest
from wasmctl.oci.reference import LayoutReference
from wasmctl.oci.referrers import add_layout_referrer
from wasmctl.oci.source import open_source
from wasmctl.sign.keys import (
    generate_key_pair,
    load_private_key,
    load_public_key,
    sign_bytes,
    write_key_pair,
)
from wasmctl.sign.legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING
from wasmctl.sign.policy import KeyPolicy, Signer, distinct_signers, key_signer
from wasmctl.sign.storage import bundle_referrer, find_candidates
from wasmctl.sign.targets import verify_reference
from wasmctl.sign.verifier import TrustSource

HELLO = Path(__file__).parents[3] / "examples" / "modules" / "hello.wasm"
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def built(tmp_path: Path) -> LayoutReference:
    assert run(["build", str(HELLO), "-t", "oci:out:v1"]) == 0
    return LayoutReference(tmp_path / "out", "v1", None)


def key_pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    return write_key_pair(generate_key_pair(b""), tmp_path / name)


def verify_json(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run(["verify", "-f", "json", *args])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, doc_schema("verify.schema.json"))
    return code, report


# -- who is one signer ---------------------------------------------------------------------


def test_one_key_is_one_signer_and_two_keys_are_two(tmp_path: Path) -> None:
    a = load_public_key(key_pair(tmp_path, "a")[1].read_bytes())
    b = load_public_key(key_pair(tmp_path, "b")[1].read_bytes())
    assert distinct_signers([key_signer(a), key_signer(a), key_signer(b)]) == [0, 0, 1]
    assert (key_signer(a).key_id or "").startswith("sha256:")


def test_one_keyless_identity_at_one_issuer_is_one_signer() -> None:
    alice = Signer(("alice@example.com",), ISSUER, {"github-ref": "refs/heads/main"})
    alice_again = Signer(("alice@example.com",), ISSUER, {"github-ref": "refs/tags/v1"})
    alice_elsewhere = Signer(("alice@example.com",), "https://accounts.google.com")
    bob = Signer(("bob@example.com",), ISSUER)
    assert distinct_signers([alice, alice_again, alice_elsewhere, bob]) == [0, 0, 1, 2]


def test_extra_identities_on_a_certificate_do_not_split_a_signer() -> None:
    signers = [
        Signer(("a@example.com",), ISSUER),
        Signer(("b@example.com",), ISSUER),
        Signer(("a@example.com", "b@example.com"), ISSUER),  # joins the two above
    ]
    assert distinct_signers(signers) == [0, 0, 0]


def test_a_key_and_an_identity_are_never_the_same_signer(tmp_path: Path) -> None:
    key = load_public_key(key_pair(tmp_path, "a")[1].read_bytes())
    assert distinct_signers([key_signer(key), Signer(("a@example.com",), ISSUER)]) == [0, 1]


# -- copies of one signature, verified ------------------------------------------------------


def test_the_same_key_signing_twice_is_one_signer(
    built: LayoutReference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = key_pair(tmp_path, "cosign")
    assert run(["sign", "--key", str(key), "oci:out:v1"]) == 0
    assert run(["sign", "--key", str(key), "oci:out:v1"]) == 0
    code, report = verify_json("--key", str(pub), "--require", "2", "oci:out:v1", capsys=capsys)
    assert code == 1
    assert (report["passed"], report["verified"], report["signers"]) == (False, 2, 1)
    first, second = report["signatures"]
    assert first["duplicateOf"] is None and second["duplicateOf"] == first["source"]

    assert run(["verify", "--key", str(pub), "--require", "2", "oci:out:v1"]) == 1
    text = capsys.readouterr().out
    assert "NOT verified" in text and "by 1 distinct signer;" in text
    assert f"duplicate: the same signer as {first['source']}, counted once" in text
    assert run(["verify", "--key", str(pub), "oci:out:v1"]) == 0


def test_one_bundle_rewrapped_under_a_second_referrer_is_one_signer(
    built: LayoutReference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, pub = key_pair(tmp_path, "cosign")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    assert run(["sign", "--key", str(key), "oci:out:v1"]) == 0
    with open_source(built) as store:
        subject = store.subject()
        [candidate], _ = find_candidates(store, subject.digest)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "2")  # another `created`: another manifest
    blobs, manifest = bundle_referrer(subject, candidate.data, candidate.predicate_type or "")
    with OCILayout.writer(built.path) as writer:
        for descriptor, data in blobs:
            writer.add_bytes(descriptor.media_type, data)
        add_layout_referrer(writer, manifest)
    policy = KeyPolicy((load_public_key(pub.read_bytes()),), "cosign.pub")
    result = verify_reference(built, policy, TrustSource(), required=2)
    assert result.verified == 2 and len({c.source for c in result.checks}) == 2
    assert result.signers == 1 and not result.passed


def legacy_signature(
    ref: LayoutReference, key: Path, *, copies: int
) -> tuple[Descriptor, list[tuple[Descriptor, bytes]]]:
    """cosign v2's `.sig` image for the artifact: one simple-signing layer, `copies` times."""
    with open_source(ref) as store:
        subject = store.subject()
    payload = json.dumps({"critical": {
        "identity": {"docker-reference": "out"},
        "image": {"docker-manifest-digest": subject.digest},
        "type": "cosign container image signature"}, "optional": None}).encode()  # fmt: skip
    private = load_private_key(key.read_bytes(), b"")
    signature = base64.b64encode(sign_bytes(private, payload)).decode()
    layer = Descriptor.of(SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: signature})
    config = b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
    config_d = Descriptor.of(mt.OCI_CONFIG, config)
    raw = Manifest(config_d, (layer,) * copies).to_bytes()
    with OCILayout.writer(ref.path) as writer:
        writer.add_bytes(mt.OCI_CONFIG, config)
        writer.add_bytes(SIMPLE_SIGNING, payload)
        manifest = writer.add_bytes(mt.OCI_MANIFEST, raw)
        writer.tag(manifest, subject.digest.replace(":", "-") + ".sig")
    return subject, [(layer, payload)]


def test_one_sig_layer_listed_twice_is_one_signer(
    built: LayoutReference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = key_pair(tmp_path, "cosign")
    legacy_signature(built, key, copies=2)
    code, report = verify_json("--key", str(pub), "--require", "2", "oci:out:v1", capsys=capsys)
    assert code == 1
    assert [s["format"] for s in report["signatures"]] == ["cosign-simplesigning"] * 2
    assert (report["verified"], report["signers"]) == (2, 1)


def test_a_bundle_and_a_legacy_signature_by_one_key_are_one_signer(
    built: LayoutReference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = key_pair(tmp_path, "cosign")
    assert run(["sign", "--key", str(key), "oci:out:v1"]) == 0
    legacy_signature(built, key, copies=1)
    code, report = verify_json("--key", str(pub), "--require", "2", "oci:out:v1", capsys=capsys)
    assert code == 1
    formats = {s["format"] for s in report["signatures"]}
    assert formats == {"sigstore-bundle", "cosign-simplesigning"}
    assert (report["verified"], report["signers"]) == (2, 1)


def test_two_keys_are_two_signers(
    built: LayoutReference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_key, a_pub = key_pair(tmp_path, "a")
    b_key, b_pub = key_pair(tmp_path, "b")
    assert run(["sign", "--key", str(a_key), "oci:out:v1"]) == 0
    assert run(["sign", "--key", str(b_key), "oci:out:v1"]) == 0
    code, report = verify_json("--key", str(a_pub), "--key", str(b_pub), "--require", "2",
                               "oci:out:v1", capsys=capsys)  # fmt: skip
    assert code == 0, report
    assert (report["verified"], report["signers"]) == (2, 2)
    assert all(s["duplicateOf"] is None for s in report["signatures"])


# -- keyless: one identity signing twice ----------------------------------------------------


def test_one_keyless_identity_signing_twice_is_one_signer(
    sigstore_standin: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.sigstore_standin import DEFAULT_IDENTITY, GITHUB_ISSUER

    config = sigstore_standin.write_trust_config(tmp_path / "trust-config.json")
    root = sigstore_standin.write_trusted_root(tmp_path / "trusted-root.json")
    assert run(["build", str(HELLO), "-t", "oci:out:v1"]) == 0
    for _ in range(2):  # two tokens, two Fulcio certificates, one identity
        token = sigstore_standin.identity_token()
        assert run(["sign", "oci:out:v1", "--identity-token", token,
                    "--trust-config", str(config)]) == 0  # fmt: skip
    identity = ["--certificate-identity", DEFAULT_IDENTITY, "--certificate-oidc-issuer",
                GITHUB_ISSUER, "--trusted-root", str(root)]  # fmt: skip
    code, report = verify_json(*identity, "--require", "2", "oci:out:v1", capsys=capsys)
    assert code == 1
    assert (report["verified"], report["signers"]) == (2, 1)
    assert report["signatures"][1]["duplicateOf"] == report["signatures"][0]["source"]
