"""Signing with cosign keys and verifying, against the real registry and OCI layouts."""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.registry import RegistryServer
from tests.vectors import COSIGN
from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, Manifest
from wasmctl.oci.reference import RegistryReference, parse_reference
from wasmctl.oci.referrers import fallback_tag, push_referrer
from wasmctl.oci.registry import RegistryClient
from wasmctl.oci.source import RegistryOptions, RegistrySource, Session
from wasmctl.sign.keys import generate_key_pair, key_hint, load_public_key, write_key_pair
from wasmctl.sign.legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING, verify_simple_signing
from wasmctl.sign.policy import KeyPolicy
from wasmctl.sign.storage import find_candidates
from wasmctl.sign.verifier import Expectation, TrustSource

EXAMPLES = Path(__file__).parents[2] / "examples" / "modules"
HELLO = EXAMPLES / "hello.wasm"
ADD = EXAMPLES / "add.wasm"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.setenv("COSIGN_PASSWORD", "correct horse")


@pytest.fixture
def keys(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """Make a named cosign key pair in tmp_path; returns (key, pub)."""

    def make(name: str) -> tuple[Path, Path]:
        return write_key_pair(generate_key_pair(b"correct horse"), tmp_path / name)

    return make


def verify_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()  # drop what earlier commands printed
    code = run(["verify", "--format", "json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def test_key_signature_round_trip_on_the_registry(
    registry: RegistryServer,
    repo_name: str,
    keys: Callable[[str], tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, pub = keys("cosign")
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    assert run(["sign", "--key", str(key), ref, "--plain-http", host]) == 0
    code, report = verify_json(["--key", str(pub), ref, "--plain-http", host], capsys)
    assert code == 0, report
    hint = key_hint(load_public_key(pub.read_bytes()))
    [check] = report["signatures"]
    assert check["verified"] and check["signer"] == {"key": hint}
    assert check["subjects"] == [report["digest"]]

    # The stored shape is cosign v3's: a bundle referrer in the sha256-<hex> fallback index.
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        raw, _, _ = client.get_manifest(repo_name, fallback_tag(report["digest"]))
        [entry] = json.loads(raw)["manifests"]
        assert entry["artifactType"] == BUNDLE
        manifest = json.loads(client.get_manifest(repo_name, entry["digest"])[0])
    assert manifest["config"] == {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 2}
    assert manifest["subject"]["digest"] == report["digest"]
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert (
        manifest["annotations"]["dev.sigstore.bundle.predicateType"]
        == "https://sigstore.dev/cosign/sign/v1"
    )
    assert [layer["mediaType"] for layer in manifest["layers"]] == [BUNDLE]

    assert run(["inspect", "--format", "json", ref, "--plain-http", host]) == 0
    listed = json.loads(capsys.readouterr().out)["signatures"]
    assert [(s["kind"], s["signer"]) for s in listed] == [("signature", f"key {hint}")]


def test_another_key_is_refused_with_both_keys_named(
    registry: RegistryServer,
    repo_name: str,
    keys: Callable[[str], tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, pub = keys("signer")
    _, other_pub = keys("other")
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    assert run(["sign", "--key", str(key), ref, "--plain-http", host]) == 0
    capsys.readouterr()
    code = run(["verify", "--key", str(other_pub), ref, "--plain-http", host])
    out = capsys.readouterr().out
    assert code == 1
    assert "NOT verified" in out
    assert key_hint(load_public_key(pub.read_bytes())) in out  # what was found
    assert str(other_pub) in out  # what the policy asked for
    assert "does not verify" in out


def test_a_re_pushed_tag_fails_verification(
    registry: RegistryServer,
    repo_name: str,
    keys: Callable[[str], tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, pub = keys("cosign")
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    assert run(["sign", "--key", str(key), ref, "--plain-http", host]) == 0
    assert run(["build", str(ADD), "-t", ref, "--plain-http", host]) == 0
    capsys.readouterr()
    code, report = verify_json(["--key", str(pub), ref, "--plain-http", host], capsys)
    assert code == 1
    assert report["signatures"] == [] and report["passed"] is False
    capsys.readouterr()
    assert run(["verify", "--key", str(pub), ref, "--plain-http", host]) == 1
    assert "no signatures found" in capsys.readouterr().out


def test_a_bundle_for_another_digest_is_refused(
    registry: RegistryServer,
    repo_name: str,
    keys: Callable[[str], tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A valid signature of artifact A, attached as a referrer of artifact B, proves nothing."""
    key, pub = keys("cosign")
    host = registry.host
    a, b = f"{host}/{repo_name}:a", f"{host}/{repo_name}:b"
    assert run(["build", str(HELLO), "-t", a, "--plain-http", host]) == 0
    assert run(["build", str(ADD), "-t", b, "--plain-http", host]) == 0
    assert run(["sign", "--key", str(key), a, "--plain-http", host]) == 0
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        subject_a = client.head_manifest(repo_name, "a")
        subject_b = client.head_manifest(repo_name, "b")
        assert subject_a is not None and subject_b is not None
        index = json.loads(client.get_manifest(repo_name, fallback_tag(subject_a.digest))[0])
        signed_a = Manifest.from_bytes(
            client.get_manifest(repo_name, index["manifests"][0]["digest"])[0]
        )
        moved = Manifest(
            signed_a.config,
            signed_a.layers,
            artifact_type=signed_a.artifact_type,
            subject=Descriptor(subject_b.media_type, subject_b.digest, subject_b.size),
            annotations=signed_a.annotations,
        )
        push_referrer(client, repo_name, moved.to_bytes())
    capsys.readouterr()
    code, report = verify_json(["--key", str(pub), b, "--plain-http", host], capsys)
    assert code == 1
    [check] = report["signatures"]
    assert check["subjects"] == [subject_a.digest]
    assert f"not {subject_b.digest}" in check["error"]


def test_copy_recursive_carries_the_signature_and_it_still_verifies(
    registry: RegistryServer,
    repo_name: str,
    keys: Callable[[str], tuple[Path, Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, pub = keys("cosign")
    host = registry.host
    src, dst = f"{host}/{repo_name}:v1", f"{host}/{repo_name}-mirror:v1"
    layout = f"oci:{tmp_path / 'mirror'}:v1"
    assert run(["build", str(HELLO), "-t", src, "--plain-http", host]) == 0
    assert run(["sign", "--key", str(key), src, "--plain-http", host]) == 0
    assert run(["copy", "-r", src, dst, "--plain-http", host]) == 0
    assert run(["copy", "-r", src, layout, "--plain-http", host]) == 0
    assert run(["verify", "--key", str(pub), dst, "--plain-http", host]) == 0
    assert run(["verify", "--key", str(pub), layout]) == 0
    capsys.readouterr()
    # Without -r nothing is carried, and the copy does not verify.
    plain = f"{host}/{repo_name}-plain:v1"
    assert run(["copy", src, plain, "--plain-http", host]) == 0
    assert run(["verify", "--key", str(pub), plain, "--plain-http", host]) == 1


def test_layouts_and_archives_sign_and_verify_offline(
    tmp_path: Path, keys: Callable[[str], tuple[Path, Path]]
) -> None:
    key, pub = keys("cosign")
    other_key, other_pub = keys("other")
    both = ["--key", str(pub), "--key", str(other_pub)]
    for ref in (f"oci:{tmp_path / 'out'}:v1", f"oci-archive:{tmp_path / 'app.tar'}:v1"):
        assert run(["build", str(HELLO), "-t", ref]) == 0
        assert run(["sign", "--key", str(key), ref]) == 0
        assert run(["verify", "--key", str(pub), ref]) == 0
        assert run(["verify", *both, ref, "--require", "2"]) == 1
        assert run(["sign", "--key", str(key), ref]) == 0  # the same signer again
        assert run(["verify", *both, ref, "--require", "2"]) == 1
        assert run(["sign", "--key", str(other_key), ref]) == 0  # a second signer
        assert run(["verify", *both, ref, "--require", "2"]) == 0


def test_a_file_signature_sits_beside_the_file(
    tmp_path: Path, keys: Callable[[str], tuple[Path, Path]]
) -> None:
    key, pub = keys("cosign")
    module = tmp_path / "hello.wasm"
    module.write_bytes(HELLO.read_bytes())
    assert run(["sign", "--key", str(key), str(module)]) == 0
    bundle = tmp_path / "hello.wasm.sigstore.json"
    assert json.loads(bundle.read_text())["messageSignature"]
    assert run(["verify", "--key", str(pub), str(module)]) == 0
    module.write_bytes(HELLO.read_bytes() + b"\x00")
    assert run(["verify", "--key", str(pub), str(module)]) == 1


def test_a_wrong_password_is_bad_input_and_does_not_leak(
    tmp_path: Path,
    keys: Callable[[str], tuple[Path, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, _ = keys("cosign")
    module = tmp_path / "hello.wasm"
    module.write_bytes(HELLO.read_bytes())
    monkeypatch.setenv("COSIGN_PASSWORD", "hunter2-wrong")
    assert run(["sign", "--key", str(key), str(module)]) == 2
    captured = capsys.readouterr()
    assert "hunter2-wrong" not in captured.out + captured.err
    assert not (tmp_path / "hello.wasm.sigstore.json").exists()


def cosign_image(client: RegistryClient, repo: str, layer: Descriptor, data: bytes) -> bytes:
    """Push the blobs of a one-layer image as cosign v1/v2 writes its `.sig`/`.att` tags (the
    empty go-containerregistry config); return the manifest to put."""
    config_bytes = (
        b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
    )
    config = Descriptor.of(mt.OCI_CONFIG, config_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        for descriptor, content in ((layer, data), (config, config_bytes)):
            path = Path(tmp) / descriptor.digest.replace(":", "-")
            path.write_bytes(content)
            client.push_blob(repo, descriptor, path)
    return Manifest(config, (layer,)).to_bytes()


def legacy_sig_manifest(
    client: RegistryClient, repo: str, payload: bytes, signature_b64: str
) -> bytes:
    """A cosign v1/v2 `.sig` image: one simple-signing layer with the signature annotation."""
    layer = Descriptor.of(SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: signature_b64})
    return cosign_image(client, repo, layer, payload)


def test_the_cosign_vector_sig_manifests_are_found_and_verify_from_the_registry(
    registry: RegistryServer, repo_name: str
) -> None:
    """The real keyed and keyless vectors, stored as cosign stores them (one layer each
    under the `.sig` tag), read back from the registry and verified."""
    from tests.vectors import PRODUCTION_ROOT
    from wasmctl.sign.legacy import BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION
    from wasmctl.sign.policy import IdentityPolicy

    keyed, keyless = COSIGN / "legacy-simplesigning-keyed", COSIGN / "legacy-simplesigning-keyless"
    key = load_public_key((keyed / "cosign.pub").read_bytes())
    cases = [
        (keyed, {}, KeyPolicy((key,), "cosign.pub"), TrustSource()),
        (
            keyless,
            {
                CERTIFICATE_ANNOTATION: (keyless / "cert.pem").read_text(),
                BUNDLE_ANNOTATION: (keyless / "rekor-bundle.json").read_text(),
            },
            IdentityPolicy(identity="flavio@castelli.me", issuer_regexp=".*"),
            TrustSource(PRODUCTION_ROOT),
        ),
    ]
    with RegistryClient(registry.host, plain_http=True, use_config=False) as client:
        for vector, extra, policy, trust in cases:
            payload = (vector / "payload.json").read_bytes()
            digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
            annotations = {SIGNATURE_ANNOTATION: (vector / "signature.b64").read_text().strip()}
            layer = Descriptor.of(SIMPLE_SIGNING, payload, {**annotations, **extra})
            raw = cosign_image(client, repo_name, layer, payload)
            client.put_manifest(repo_name, digest.replace(":", "-") + ".sig", mt.OCI_MANIFEST, raw)
            ref = parse_reference(f"{registry.host}/{repo_name}@{digest}")
            assert isinstance(ref, RegistryReference)
            store = RegistrySource(Session(client), ref)
            candidates, problems = find_candidates(store, digest)
            assert problems == []
            [candidate] = candidates
            assert candidate.source == f"tag {digest.replace(':', '-')}.sig"
            check = verify_simple_signing(
                candidate.data,
                candidate.annotations,
                Expectation(digest),
                policy,
                trust,
                source=candidate.source,
            )
            assert check.ok, (vector.name, check.error)
            assert check.logged == (vector is keyless)


def test_a_legacy_sig_tag_made_by_the_tests_verifies_end_to_end(
    registry: RegistryServer,
    repo_name: str,
    keys: Callable[[str], tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """cosign v2's layout for our own artifact: payload naming the digest, `.sig` tag."""
    from wasmctl.sign.keys import load_private_key, sign_bytes

    key, pub = keys("legacy")
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    private = load_private_key(key.read_bytes(), b"correct horse")
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        subject = client.head_manifest(repo_name, "v1")
        assert subject is not None
        payload = json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": f"{host}/{repo_name}"},
                    "image": {"docker-manifest-digest": subject.digest},
                    "type": "cosign container image signature",
                },
                "optional": None,
            },
            separators=(",", ":"),
        ).encode()
        signature = base64.b64encode(sign_bytes(private, payload)).decode()
        raw = legacy_sig_manifest(client, repo_name, payload, signature)
        tag = subject.digest.replace(":", "-") + ".sig"
        client.put_manifest(repo_name, tag, mt.OCI_MANIFEST, raw)
    code, report = verify_json(["--key", str(pub), ref, "--plain-http", host], capsys)
    assert code == 0, report
    assert [c["format"] for c in report["signatures"]] == ["cosign-simplesigning"]


def test_inspect_lists_signatures_through_the_library(
    registry: RegistryServer, repo_name: str, keys: Callable[[str], tuple[Path, Path]]
) -> None:
    from wasmctl.inspect.artifact import inspect_reference

    key, _ = keys("cosign")
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    assert run(["sign", "--key", str(key), ref, "--plain-http", host]) == 0
    info = inspect_reference(parse_reference(ref), RegistryOptions(plain_http=frozenset({host})))
    assert [s["format"] for s in info["signatures"]] == ["sigstore-bundle"]


def test_attestations_are_verified_by_predicate_type(
    tmp_path: Path, keys: Callable[[str], tuple[Path, Path]]
) -> None:
    from wasmctl.sign.keys import load_private_key
    from wasmctl.sign.signer import KeySigning
    from wasmctl.sign.targets import sign_reference

    key, pub = keys("cosign")
    ref = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", ref]) == 0
    backend = KeySigning(load_private_key(key.read_bytes(), b"correct horse"))
    signed = sign_reference(
        parse_reference(ref),
        backend,
        predicate_type="https://cyclonedx.org/bom",
        predicate={"bomFormat": "CycloneDX", "specVersion": "1.6"},
    )
    assert signed.predicate_type == "https://cyclonedx.org/bom"
    assert run(["verify", "--key", str(pub), "--attestation", "cyclonedx", ref]) == 0
    assert run(["verify", "--key", str(pub), "--attestation", "spdx", ref]) == 1
    assert run(["verify", "--key", str(pub), ref]) == 1  # an attestation is not a signature


def test_a_legacy_att_layer_verifies_and_names_its_subject(
    registry: RegistryServer,
    repo_name: str,
    keys: Callable[[str], tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """cosign v2's `.att` tag: a DSSE envelope layer around an in-toto v0.1 statement."""
    from wasmctl.sign.bundle import pae
    from wasmctl.sign.keys import load_private_key, sign_bytes
    from wasmctl.sign.legacy import DSSE_LAYER

    key, pub = keys("att")
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    assert run(["build", str(HELLO), "-t", ref, "--plain-http", host]) == 0
    private = load_private_key(key.read_bytes(), b"correct horse")
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        subject = client.head_manifest(repo_name, "v1")
        assert subject is not None
        statement = json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://cyclonedx.org/bom",
                "subject": [
                    {"name": f"{host}/{repo_name}", "digest": {"sha256": subject.digest[7:]}}
                ],
                "predicate": {"bomFormat": "CycloneDX"},
            }
        ).encode()
        envelope = json.dumps(
            {
                "payloadType": "application/vnd.in-toto+json",
                "payload": base64.b64encode(statement).decode(),
                "signatures": [
                    {
                        "keyid": "",
                        "sig": base64.b64encode(
                            sign_bytes(private, pae("application/vnd.in-toto+json", statement))
                        ).decode(),
                    }
                ],
            }
        ).encode()
        layer = Descriptor.of(
            DSSE_LAYER,
            envelope,
            {SIGNATURE_ANNOTATION: "", "predicateType": "https://cyclonedx.org/bom"},
        )
        raw = cosign_image(client, repo_name, layer, envelope)
        tag = subject.digest.replace(":", "-") + ".att"
        client.put_manifest(repo_name, tag, mt.OCI_MANIFEST, raw)
    args = ["--key", str(pub), "--attestation", "cyclonedx", ref, "--plain-http", host]
    code, report = verify_json(args, capsys)
    assert code == 0, report
    [check] = report["signatures"]
    assert check["format"] == "cosign-attestation"
    assert check["subjects"] == [subject.digest]
    assert run(["verify", "--key", str(pub), ref, "--plain-http", host]) == 1  # not a signature
