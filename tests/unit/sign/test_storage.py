"""Signatures and attestations are read wherever they are stored (issue 16, part 2).

The referrers API and its `sha256-<hex>` fallback tag (bundles in both media type spellings,
as cosign v3 and GitHub's `actions/attest-build-provenance` write them), cosign's legacy
`.att` tag, and a `cosign save` layout's `sigs` / `atts` entries. Each manifest is read
once, and what is read is bounded. Registries are the in-process fake; the real
provenance is the shared test data, verified offline.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fake_registry import FakeRegistry
from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Manifest
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.referrers import fallback_tag
from wasmctl.oci.source import RegistryOptions, open_source
from wasmctl.oci.transfer import copy
from wasmctl.sign import storage
from wasmctl.sign.bundle import BUNDLE_V03, statement_for
from wasmctl.sign.keys import sign_bytes
from wasmctl.sign.legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING
from wasmctl.sign.policy import IdentityPolicy, KeyPolicy
from wasmctl.sign.signer import KeySigning
from wasmctl.sign.targets import verify_reference
from wasmctl.sign.verifier import TrustSource

HELLO = Path(__file__).parents[3] / "examples" / "modules" / "hello.wasm"
TESTDATA = Path(__file__).parents[4] / "shared" / "testdata"
SAVED = TESTDATA / "provenance" / "gha-container-v2.0.0" / "container_workflow_dispatch"
TRUSTED_ROOT = TESTDATA / "sigstore" / "trust" / "trusted_root.production.json"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v2.0.0"
)
ISSUER = "https://token.actions.githubusercontent.com"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
HOST = "fake.test"
GITHUB_BUNDLE_LAYER = "application/vnd.dev.sigstore.bundle+json;version=0.3"


def saved_digest() -> str:
    return SAVED.with_suffix(".digest").read_text().strip()


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A layout holding the hello module as a Wasm artifact under `v1`."""
    assert run(["build", str(HELLO), "-t", f"oci:{tmp_path / 'out'}:v1"]) == 0
    return tmp_path / "out"


# -- media types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "media_type",
    [
        BUNDLE_V03,
        GITHUB_BUNDLE_LAYER,
        "application/vnd.dev.sigstore.bundle+json; version=0.3",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "Application/Vnd.Dev.Sigstore.Bundle.v0.3+JSON",
    ],
)
def test_every_spelling_of_a_bundle_layer_is_a_bundle(media_type: str) -> None:
    assert storage.candidate_type(media_type) == BUNDLE_V03


@pytest.mark.parametrize(
    "media_type",
    [mt.OCI_EMPTY, "application/vnd.in-toto+json", "application/vnd.dev.sigstore.bundle+json"],
)
def test_other_layers_are_no_candidates(media_type: str) -> None:
    assert storage.candidate_type(media_type) is None


# -- GitHub's attest-build-provenance bundle, by referrers API and by fallback tag ----------------


def github_attestation(subject: Descriptor, key: ec.EllipticCurvePrivateKey) -> tuple[
    list[tuple[Descriptor, bytes]], bytes
]:  # fmt: skip
    """A referrer shaped as `actions/attest-build-provenance` pushes one: artifact type
    `...bundle.v0.3+json`, its one layer typed `...bundle+json;version=0.3`."""
    statement = statement_for("fake.test/app", subject.digest, SLSA_V1, {"buildDefinition": {}})
    bundle = KeySigning(key).sign_statement(statement)
    config = Descriptor.of(mt.OCI_EMPTY, mt.EMPTY_JSON)
    layer = Descriptor.of(GITHUB_BUNDLE_LAYER, bundle)
    manifest = Manifest(
        config=config,
        layers=(layer,),
        media_type=mt.OCI_MANIFEST,
        artifact_type=BUNDLE_V03,
        subject=Descriptor(subject.media_type, subject.digest, subject.size),
        annotations={
            storage.CONTENT_ANNOTATION: "dsse-envelope",
            storage.PREDICATE_ANNOTATION: SLSA_V1,
        },
    )
    return [(config, mt.EMPTY_JSON), (layer, bundle)], manifest.to_bytes()


@pytest.mark.parametrize("referrers_api", [True, False], ids=["referrers-api", "fallback-tag"])
def test_a_github_provenance_bundle_is_found_and_verifies(built: Path, referrers_api: bool) -> None:
    fake = FakeRegistry(referrers_api=referrers_api)
    options = RegistryOptions(transport=fake)
    subject, _ = copy(
        parse_reference(f"oci:{built}:v1"), parse_reference(f"{HOST}/app:v1"), options
    )
    key = ec.generate_private_key(ec.SECP256R1())
    with open_source(parse_reference(f"{HOST}/app:v1"), options, write=True) as store:
        referrer = store.attach(*github_attestation(subject, key))
    stored_fallback = fake.manifest("app", fallback_tag(subject.digest)) is not None
    assert stored_fallback is not referrers_api
    policy = KeyPolicy((key.public_key(),), "the test key")
    result = verify_reference(
        parse_reference(f"{HOST}/app:v1"), policy, TrustSource(), options, predicate_type=SLSA_V1
    )
    assert result.passed, result.to_json()
    (check,) = result.checks
    assert check.source == f"referrer {referrer.digest}"


def test_an_unknown_layer_type_in_a_referrer_is_not_read(built: Path) -> None:
    fake = FakeRegistry()
    options = RegistryOptions(transport=fake)
    subject, _ = copy(
        parse_reference(f"oci:{built}:v1"), parse_reference(f"{HOST}/app:v1"), options
    )
    blobs, raw = github_attestation(subject, ec.generate_private_key(ec.SECP256R1()))
    renamed = raw.replace(GITHUB_BUNDLE_LAYER.encode(), b"application/vnd.example.bundle")
    with open_source(parse_reference(f"{HOST}/app:v1"), options, write=True) as store:
        store.attach(blobs, renamed)
        assert storage.find_candidates(store, subject.digest) == ([], [])


# -- the legacy `.att` tag in a registry, with real provenance -----------------------------------


def test_real_provenance_under_a_registrys_att_tag_verifies() -> None:
    options = RegistryOptions(transport=FakeRegistry())
    digest = saved_digest()
    copy(parse_reference(f"oci:{SAVED}@{digest}"), parse_reference(f"{HOST}/prov:v1"), options)
    atts = next(
        e.descriptor
        for e in OCILayout.open(SAVED).cosign_entries()
        if e.kind.value.endswith("/atts")
    )
    tag = digest.replace(":", "-") + ".att"
    copy(
        parse_reference(f"oci:{SAVED}@{atts.digest}"),
        parse_reference(f"{HOST}/prov:{tag}"),
        options,
    )
    result = verify_reference(
        parse_reference(f"{HOST}/prov:v1"),
        IdentityPolicy(identity=GENERATOR, issuer=ISSUER),
        TrustSource(TRUSTED_ROOT),
        options,
        predicate_type=SLSA_V02,
    )
    assert result.passed, result.to_json()
    assert [c.source for c in result.checks] == [f"tag {tag}"]


# -- read once, and no more than the bounds ------------------------------------------------


def tagged_copy(tmp_path: Path) -> Path:
    """The saved layout, its attestations also tagged as cosign's `.att` tag."""
    import shutil

    root = tmp_path / "saved"
    shutil.copytree(SAVED, root)
    (root / "index.json").chmod(0o644)
    index = json.loads((root / "index.json").read_bytes())
    atts = dict(index["manifests"][1])
    tag = saved_digest().replace(":", "-") + ".att"
    atts["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index["manifests"].append(atts)
    (root / "index.json").write_text(json.dumps(index))
    return root


def test_a_manifest_named_twice_is_read_once(tmp_path: Path) -> None:
    root = tagged_copy(tmp_path)
    with open_source(parse_reference(f"oci:{root}@{saved_digest()}")) as store:
        candidates, problems = storage.find_candidates(store, saved_digest())
    assert [c.source for c in candidates] == [
        f"tag {saved_digest().replace(':', '-')}.att"  # the tag comes first; the entry is the same
    ]
    assert problems == []


def test_signature_layers_beyond_the_bound_are_reported_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage, "MAX_CANDIDATE_BYTES", 1000)  # the envelope is 13,908 bytes
    with open_source(parse_reference(f"oci:{SAVED}@{saved_digest()}")) as store:
        candidates, problems = storage.find_candidates(store, saved_digest())
    assert candidates == []
    (problem,) = problems
    assert problem.startswith("cosign-save atts sha256:") and "not read" in problem


def test_inspect_names_a_problems_source_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from wasmctl.sign.targets import list_signatures

    monkeypatch.setattr(storage, "MAX_CANDIDATE_BYTES", 1000)
    with open_source(parse_reference(f"oci:{SAVED}@{saved_digest()}")) as store:
        (found,) = list_signatures(store, saved_digest())
    assert found.source.startswith("cosign-save atts sha256:")
    assert len(found.source.rpartition(" ")[2]) == len("sha256:") + 64


def test_a_registry_keeps_no_cosign_save_entries(built: Path) -> None:
    options = RegistryOptions(transport=FakeRegistry())
    copy(parse_reference(f"oci:{built}:v1"), parse_reference(f"{HOST}/app:v1"), options)
    with open_source(parse_reference(f"{HOST}/app:v1"), options) as store:
        assert store.cosign_stores(store.subject().digest) == []


# -- a Wasm artifact in a `cosign save` layout: verify and gate read its signature --------


def save_as_cosign_does(built: Path, key: ec.EllipticCurvePrivateKey) -> str:
    """Rewrite `built` as `cosign save` would have written it after `cosign sign --key`
    (a legacy simple-signing signature): untagged, `kind` annotations. The image's digest."""
    layout = OCILayout.open(built)
    image = layout.resolve("v1")
    payload = json.dumps({"critical": {
        "identity": {"docker-reference": "out"},
        "image": {"docker-manifest-digest": image.digest},
        "type": "cosign container image signature"}, "optional": None}).encode()  # fmt: skip
    signature = base64.b64encode(sign_bytes(key, payload)).decode()
    layer = Descriptor.of(SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: signature})
    config = b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
    with OCILayout.writer(built) as writer:
        writer.add_bytes(mt.OCI_CONFIG, config)
        writer.add_bytes(SIMPLE_SIGNING, payload)
        manifest = Manifest(Descriptor.of(mt.OCI_CONFIG, config), (layer,)).to_bytes()
        sigs = writer.add_bytes(mt.OCI_MANIFEST, manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {"mediaType": image.media_type, "digest": image.digest, "size": image.size,
             "annotations": {"kind": "dev.cosignproject.cosign/image"}},
            {"mediaType": sigs.media_type, "digest": sigs.digest, "size": sigs.size,
             "annotations": {"kind": "dev.cosignproject.cosign/sigs"}},
        ],
    }  # fmt: skip
    (built / "index.json").write_text(json.dumps(index))
    return image.digest


def test_verify_and_gate_read_a_saved_wasm_artifacts_signature(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    digest = save_as_cosign_does(built, key)
    target = f"oci:{built}@{digest}"
    assert run(["verify", "--key", str(pub), target]) == 0
    assert "cosign-save sigs sha256:" in capsys.readouterr().out
    policy = tmp_path / "gate.yaml"
    policy.write_text(f"version: 1\nsignatures:\n  keys: [{pub}]\n")
    assert run(["gate", "-p", str(policy), target]) == 0, capsys.readouterr().out
