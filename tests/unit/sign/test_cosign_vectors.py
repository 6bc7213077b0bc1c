"""Real cosign signatures: legacy simple signing (keyed and keyless), v3 bundles, attestations.

All offline: the keyless ones verify against the recorded production trusted root.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.vectors import COSIGN, PRODUCTION_ROOT, SIGSTORE
from wasmctl.sign.bundle import COSIGN_SIGN_PREDICATE, Bundle
from wasmctl.sign.keys import load_public_key
from wasmctl.sign.legacy import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    signed_digest,
    verify_simple_signing,
)
from wasmctl.sign.policy import IdentityPolicy, KeyPolicy
from wasmctl.sign.verifier import Expectation, TrustSource, verify_bundle

KEYED = COSIGN / "legacy-simplesigning-keyed"
KEYLESS = COSIGN / "legacy-simplesigning-keyless"
KUBEWARDEN = (
    SIGSTORE
    / "sigstore-rs"
    / "cosign-v3-image-signature.kubewarden-controller-v1.34.0.sigstore.json"
)
KUBEWARDEN_DIGEST = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"
KUBEWARDEN_IDENTITY = (
    "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml"
    "@refs/tags/v1.34.0"
)
GITHUB = "https://token.actions.githubusercontent.com"


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def trust() -> TrustSource:
    return TrustSource(PRODUCTION_ROOT)


# -- legacy simple signing, keyed -------------------------------------------------------------


def keyed_inputs() -> tuple[bytes, dict[str, str], KeyPolicy]:
    payload = (KEYED / "payload.json").read_bytes()
    annotations = {SIGNATURE_ANNOTATION: (KEYED / "signature.b64").read_text().strip()}
    key = load_public_key((KEYED / "cosign.pub").read_bytes())
    return payload, annotations, KeyPolicy((key,), "cosign.pub")


def test_legacy_keyed_signature_verifies_with_its_key() -> None:
    payload, annotations, policy = keyed_inputs()
    expected = Expectation(signed_digest(payload))
    check = verify_simple_signing(payload, annotations, expected, policy, trust(), source="t")
    assert check.ok, check.error
    assert check.signer is not None and check.signer.key_hint
    assert not check.logged


@pytest.mark.parametrize("inside", [b"busybox", b"registry-testing", b"image signature"])
def test_legacy_keyed_signature_fails_when_a_payload_byte_changes(inside: bytes) -> None:
    payload, annotations, policy = keyed_inputs()
    expected = Expectation(signed_digest(payload))
    changed = flip(payload, payload.index(inside) + 1)
    check = verify_simple_signing(changed, annotations, expected, policy, trust(), source="t")
    assert not check.ok
    assert "does not verify" in (check.error or "")


def test_legacy_keyed_signature_fails_when_a_signature_byte_changes() -> None:
    payload, annotations, policy = keyed_inputs()
    signature = base64.b64decode(annotations[SIGNATURE_ANNOTATION])
    annotations[SIGNATURE_ANNOTATION] = base64.b64encode(flip(signature, 20)).decode()
    expected = Expectation(signed_digest(payload))
    check = verify_simple_signing(payload, annotations, expected, policy, trust(), source="t")
    assert not check.ok


def test_legacy_signature_for_another_digest_is_refused() -> None:
    payload, annotations, policy = keyed_inputs()
    other = Expectation("sha256:" + "0" * 64)
    check = verify_simple_signing(payload, annotations, other, policy, trust(), source="t")
    assert not check.ok
    assert "not sha256:000" in (check.error or "")


# -- legacy simple signing, keyless (2021: Rekor SET, no SCT, no issuer extension) ------------


def keyless_inputs() -> tuple[bytes, dict[str, str]]:
    payload = (KEYLESS / "payload.json").read_bytes()
    annotations = {
        SIGNATURE_ANNOTATION: (KEYLESS / "signature.b64").read_text().strip(),
        CERTIFICATE_ANNOTATION: (KEYLESS / "cert.pem").read_text(),
        BUNDLE_ANNOTATION: (KEYLESS / "rekor-bundle.json").read_text(),
    }
    return payload, annotations


FLAVIO = IdentityPolicy(identity="flavio@castelli.me", issuer_regexp=".*")


def test_legacy_keyless_signature_verifies_chain_set_and_window() -> None:
    payload, annotations = keyless_inputs()
    expected = Expectation(signed_digest(payload))
    check = verify_simple_signing(payload, annotations, expected, FLAVIO, trust(), source="t")
    assert check.ok, check.error
    assert check.logged
    assert check.signer is not None and check.signer.identities == ("flavio@castelli.me",)


def test_legacy_keyless_signature_needs_the_right_identity() -> None:
    payload, annotations = keyless_inputs()
    policy = IdentityPolicy(identity="someone@example.com", issuer_regexp=".*")
    expected = Expectation(signed_digest(payload))
    check = verify_simple_signing(payload, annotations, expected, policy, trust(), source="t")
    assert not check.ok
    assert "someone@example.com" in (check.error or "")


def test_legacy_keyless_signature_fails_when_a_payload_byte_changes() -> None:
    payload, annotations = keyless_inputs()
    changed = flip(payload, payload.index(b"disallow-service") + 3)
    expected = Expectation(signed_digest(changed))
    check = verify_simple_signing(changed, annotations, expected, FLAVIO, trust(), source="t")
    assert not check.ok


def test_legacy_keyless_signature_fails_when_a_signature_byte_changes() -> None:
    payload, annotations = keyless_inputs()
    signature = base64.b64decode(annotations[SIGNATURE_ANNOTATION])
    annotations[SIGNATURE_ANNOTATION] = base64.b64encode(flip(signature, 30)).decode()
    expected = Expectation(signed_digest(payload))
    check = verify_simple_signing(payload, annotations, expected, FLAVIO, trust(), source="t")
    assert not check.ok


def test_legacy_keyless_signature_fails_when_the_set_is_altered() -> None:
    payload, annotations = keyless_inputs()
    annotations[BUNDLE_ANNOTATION] = annotations[BUNDLE_ANNOTATION].replace(
        '"integratedTime": 1634714717', '"integratedTime": 1634714718'
    )
    assert "1634714718" in annotations[BUNDLE_ANNOTATION]
    expected = Expectation(signed_digest(payload))
    check = verify_simple_signing(payload, annotations, expected, FLAVIO, trust(), source="t")
    assert not check.ok
    assert "signed entry timestamp" in (check.error or "")


def test_legacy_keyless_signature_fails_against_a_foreign_root() -> None:
    payload, annotations = keyless_inputs()
    foreign = TrustSource(
        SIGSTORE / "conformance" / "intoto-with-custom-trust-root" / "trusted_root.json"
    )
    expected = Expectation(signed_digest(payload))
    check = verify_simple_signing(payload, annotations, expected, FLAVIO, foreign, source="t")
    assert not check.ok
    assert "not in the trusted root" in (check.error or "")


# -- cosign v3 bundles ------------------------------------------------------------------------


def test_cosign_v3_image_signature_verifies_for_its_manifest_digest() -> None:
    bundle = Bundle.from_bytes(KUBEWARDEN.read_bytes())
    policy = IdentityPolicy(identity=KUBEWARDEN_IDENTITY, issuer=GITHUB)
    expected = Expectation(KUBEWARDEN_DIGEST, COSIGN_SIGN_PREDICATE)
    check = verify_bundle(bundle, expected, policy, trust(), source="t")
    assert check.ok, check.error
    assert check.subjects == (KUBEWARDEN_DIGEST,)
    assert check.signer is not None
    assert check.signer.claims["github-repository"].endswith("kubewarden/kubewarden-controller")
    assert check.signer.claims["github-ref"] == "refs/tags/v1.34.0"


def test_cosign_v3_image_signature_is_refused_for_another_digest() -> None:
    bundle = Bundle.from_bytes(KUBEWARDEN.read_bytes())
    policy = IdentityPolicy(identity=KUBEWARDEN_IDENTITY, issuer=GITHUB)
    expected = Expectation("sha256:" + "1" * 64, COSIGN_SIGN_PREDICATE)
    check = verify_bundle(bundle, expected, policy, trust(), source="t")
    assert not check.ok
    assert KUBEWARDEN_DIGEST in (check.error or "")


def test_cosign_v3_image_signature_checks_github_claims() -> None:
    bundle = Bundle.from_bytes(KUBEWARDEN.read_bytes())
    good = IdentityPolicy(
        identity_regexp=r"https://github\.com/kubewarden/.*",
        issuer=GITHUB,
        claims={"github-repository": "kubewarden/kubewarden-controller"},
    )
    bad = IdentityPolicy(
        identity_regexp=r"https://github\.com/kubewarden/.*",
        issuer=GITHUB,
        claims={"github-repository": "acme/other"},
    )
    expected = Expectation(KUBEWARDEN_DIGEST, COSIGN_SIGN_PREDICATE)
    assert verify_bundle(bundle, expected, good, trust(), source="t").ok
    refused = verify_bundle(bundle, expected, bad, trust(), source="t")
    assert not refused.ok and "acme/other" in (refused.error or "")


def test_identity_regexp_is_anchored_unlike_cosign() -> None:
    bundle = Bundle.from_bytes(KUBEWARDEN.read_bytes())
    unanchored_match = IdentityPolicy(identity_regexp="kubewarden-controller", issuer=GITHUB)
    expected = Expectation(KUBEWARDEN_DIGEST, COSIGN_SIGN_PREDICATE)
    check = verify_bundle(bundle, expected, unanchored_match, trust(), source="t")
    assert not check.ok
    assert "whole string" in (check.error or "")


def test_cosign_attestation_bundle_verifies_with_its_predicate() -> None:
    bundle = Bundle.from_bytes((COSIGN / "oci-attestation.sigstore.json").read_bytes())
    policy = IdentityPolicy(identity="cody@soyland.com", issuer="https://github.com/login/oauth")
    digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    expected = Expectation(digest, "https://cosign.sigstore.dev/attestation/v1")
    check = verify_bundle(bundle, expected, policy, trust(), source="t")
    assert check.ok, check.error
    wrong_type = Expectation(digest, "https://cyclonedx.org/bom")
    refused = verify_bundle(bundle, wrong_type, policy, trust(), source="t")
    assert not refused.ok and "predicate type" in (refused.error or "")


def test_sigstore_python_wheel_bundle_verifies_by_file_digest(tmp_path: Path) -> None:
    from wasmctl.sign.targets import verify_file

    wheel = SIGSTORE / "sigstore-python" / "rfc8785-0.1.2-py3-none-any.whl"
    policy = IdentityPolicy(
        identity="https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml"
        "@refs/tags/v0.1.2",
        issuer=GITHUB,
    )
    result = verify_file(
        wheel, policy, trust(), bundle_path=wheel.with_name(wheel.name + ".sigstore.json")
    )
    assert result.passed, result.to_json()
