"""The Sigstore stand-in is honest: a real client signs against it and verifies what it gets.

Signing and verification go through sigstore-python's public API and its CLI only, so a pass
means sigstore-python 4.5 accepts the stand-in's certificates, log entries, inclusion proofs,
checkpoints and SETs. The refusal tests show it does not accept just anything.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID
from id import AmbientCredentialError, detect_credential
from sigstore.dsse import StatementBuilder, Subject
from sigstore.errors import VerificationError
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier, policy

from tests.sigstore_standin import (
    DEFAULT_IDENTITY,
    GITHUB_ISSUER,
    OIDC_ISSUER_OID,
    SigstoreStandin,
    github_workflow_claims,
)

GITHUB_IDENTITY = policy.Identity(identity=DEFAULT_IDENTITY, issuer=GITHUB_ISSUER)
ARTIFACT = b"\x00asm\x01\x00\x00\x00"


@pytest.fixture
def trust_config(sigstore_standin: SigstoreStandin) -> ClientTrustConfig:
    return ClientTrustConfig.from_json(sigstore_standin.trust_config_json())


@pytest.fixture
def signing_context(trust_config: ClientTrustConfig) -> SigningContext:
    return SigningContext.from_trust_config(trust_config)


@pytest.fixture
def verifier(trust_config: ClientTrustConfig) -> Verifier:
    return Verifier(trusted_root=trust_config.trusted_root)


@pytest.fixture(scope="module")
def foreign_standin(sigstore_standin: SigstoreStandin) -> Iterator[SigstoreStandin]:
    """A second, independent instance (it relies on ``sigstore_standin``'s ``NO_PROXY``)."""
    with SigstoreStandin("foreign-standin") as standin:
        yield standin


def sign(context: SigningContext, token: str, data: bytes = ARTIFACT) -> Bundle:
    with context.signer(IdentityToken(token)) as signer:
        return signer.sign_artifact(data)


def tlog_entry(bundle: Bundle) -> dict[str, Any]:
    """The bundle's transparency log entry, as the bundle format spells it."""
    entry: dict[str, Any] = json.loads(bundle.to_json())["verificationMaterial"]["tlogEntries"][0]
    return entry


def san_values(certificate: x509.Certificate) -> list[tuple[str, str]]:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert extension.critical
    return [(type(name).__name__, name.value) for name in extension.value]


# -- Signing and verifying ----------------------------------------------------------


def test_signed_artifact_verifies_for_the_token_identity(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier
) -> None:
    before = sigstore_standin.requests
    bundle = sign(signing_context, sigstore_standin.identity_token())

    verifier.verify_artifact(ARTIFACT, bundle, GITHUB_IDENTITY)
    verifier.verify_artifact(ARTIFACT, Bundle.from_json(bundle.to_json()), GITHUB_IDENTITY)
    calls = sigstore_standin.requests - before
    assert calls == {"fulcio": 1, "rekor": 1}
    assert sigstore_standin.entries[-1].kind == "hashedrekord"
    assert sigstore_standin.certificates[-1] == bundle.signing_certificate


def test_signature_over_other_data_is_rejected(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier
) -> None:
    bundle = sign(signing_context, sigstore_standin.identity_token())

    with pytest.raises(VerificationError):
        verifier.verify_artifact(ARTIFACT + b"\x00", bundle, GITHUB_IDENTITY)


def test_certificate_carries_the_github_workflow_extensions(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier
) -> None:
    sha = "1f" * 20
    token = sigstore_standin.identity_token(event_name="release", sha=sha)
    bundle = sign(signing_context, token)

    repository, ref = "acme/app", "refs/tags/v1.0.0"
    expected = policy.AllOf(
        [
            GITHUB_IDENTITY,
            policy.OIDCIssuerV2(GITHUB_ISSUER),
            policy.GitHubWorkflowTrigger("release"),
            policy.GitHubWorkflowSHA(sha),
            policy.GitHubWorkflowName("release"),
            policy.GitHubWorkflowRepository(repository),
            policy.GitHubWorkflowRef(ref),
            policy.OIDCBuildSignerURI(DEFAULT_IDENTITY),
            policy.OIDCSourceRepositoryURI(f"https://github.com/{repository}"),
            policy.OIDCSourceRepositoryDigest(sha),
            policy.OIDCSourceRepositoryRef(ref),
        ]
    )
    verifier.verify_artifact(ARTIFACT, bundle, expected)
    assert san_values(bundle.signing_certificate) == [
        ("UniformResourceIdentifier", DEFAULT_IDENTITY)
    ]


@pytest.mark.parametrize(
    ("identity", "issuer", "san_type"),
    [
        ("alice@example.com", "https://accounts.google.com", "RFC822Name"),
        ("https://ci.example/jobs/7", "https://oidc.test.invalid", "UniformResourceIdentifier"),
        ("builder@ci.example", "https://oidc.test.invalid", "RFC822Name"),
    ],
)  # fmt: skip
def test_certificate_identity_follows_the_issuer(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier,
    identity: str, issuer: str, san_type: str,
) -> None:  # fmt: skip
    bundle = sign(signing_context, sigstore_standin.identity_token(identity, issuer))

    verifier.verify_artifact(ARTIFACT, bundle, policy.Identity(identity=identity, issuer=issuer))
    certificate = bundle.signing_certificate
    assert san_values(certificate) == [(san_type, identity)]
    assert certificate.subject == x509.Name([])
    issuer_extension = certificate.extensions.get_extension_for_oid(OIDC_ISSUER_OID)
    assert isinstance(issuer_extension.value, x509.UnrecognizedExtension)
    assert issuer_extension.value.value == issuer.encode()
    with pytest.raises(VerificationError):  # no GitHub claims, no GitHub extensions
        policy.GitHubWorkflowRepository("acme/app").verify(certificate)


def test_dsse_statement_verifies(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier
) -> None:
    digest = hashlib.sha256(ARTIFACT).hexdigest()
    statement = (
        StatementBuilder()
        .subjects([Subject(name="app.wasm", digest={"sha256": digest})])
        .predicate_type("https://example.com/wasmctl/test/v1")
        .predicate({"built": True})
        .build()
    )
    with signing_context.signer(IdentityToken(sigstore_standin.identity_token())) as signer:
        bundle = signer.sign_dsse(statement)

    payload_type, payload = verifier.verify_dsse(bundle, GITHUB_IDENTITY)
    assert payload_type == "application/vnd.in-toto+json"
    assert json.loads(payload)["subject"] == [{"name": "app.wasm", "digest": {"sha256": digest}}]
    logged = sigstore_standin.entries[-1]
    assert logged.kind == "dsse"
    assert logged.body_json["spec"]["payloadHash"]["value"] == hashlib.sha256(payload).hexdigest()


def test_consecutive_signings_extend_one_log(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier
) -> None:
    with signing_context.signer(IdentityToken(sigstore_standin.identity_token())) as signer:
        first = signer.sign_artifact(b"first")
        second = signer.sign_artifact(b"second")

    one, two = tlog_entry(first), tlog_entry(second)
    index = int(one["logIndex"])
    assert int(two["logIndex"]) == index + 1
    assert int(one["inclusionProof"]["treeSize"]) == index + 1
    assert int(two["inclusionProof"]["treeSize"]) == index + 2
    assert one["inclusionProof"]["rootHash"] != two["inclusionProof"]["rootHash"]
    assert two["inclusionProof"]["checkpoint"]["envelope"].splitlines()[1] == str(index + 2)
    assert [e.log_index for e in sigstore_standin.entries[-2:]] == [index, index + 1]
    # The first proof is for the smaller tree, and still checks out.
    verifier.verify_artifact(b"first", first, GITHUB_IDENTITY)
    verifier.verify_artifact(b"second", second, GITHUB_IDENTITY)


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [
        ("https://github.com/acme/other/.github/workflows/release.yml@refs/tags/v1.0.0",
         GITHUB_ISSUER),
        (DEFAULT_IDENTITY, "https://oidc.test.invalid"),
    ],
    ids=["other-identity", "other-issuer"],
)  # fmt: skip
def test_policy_for_another_identity_rejects_the_bundle(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier,
    identity: str, issuer: str,
) -> None:  # fmt: skip
    bundle = sign(signing_context, sigstore_standin.identity_token())

    with pytest.raises(VerificationError):
        verifier.verify_artifact(
            ARTIFACT, bundle, policy.Identity(identity=identity, issuer=issuer)
        )


def test_trusted_root_file_verifies(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, tmp_path: Path
) -> None:
    bundle = sign(signing_context, sigstore_standin.identity_token())
    path = sigstore_standin.write_trusted_root(tmp_path / "trusted_root.json")

    trusted_root = TrustedRoot.from_file(str(path))
    Verifier(trusted_root=trusted_root).verify_artifact(ARTIFACT, bundle, GITHUB_IDENTITY)


# -- Another instance ---------------------------------------------------------------


def test_instances_have_their_own_keys(
    sigstore_standin: SigstoreStandin, foreign_standin: SigstoreStandin
) -> None:
    def spki(key: PublicKeyTypes) -> bytes:
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    ours, theirs = sigstore_standin, foreign_standin
    assert spki(ours.rekor_public_key) != spki(theirs.rekor_public_key)
    assert spki(ours.ctlog_public_key) != spki(theirs.ctlog_public_key)
    assert spki(ours.ca_certificate.public_key()) != spki(theirs.ca_certificate.public_key())
    assert ours.log_id != theirs.log_id
    assert ours.token_secret != theirs.token_secret


def test_trusted_root_of_another_instance_rejects_the_bundle(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext,
    foreign_standin: SigstoreStandin,
) -> None:  # fmt: skip
    bundle = sign(signing_context, sigstore_standin.identity_token())
    foreign = ClientTrustConfig.from_json(foreign_standin.trust_config_json())

    with pytest.raises(VerificationError):
        Verifier(trusted_root=foreign.trusted_root).verify_artifact(
            ARTIFACT, bundle, GITHUB_IDENTITY
        )


def test_fulcio_refuses_a_token_of_another_instance(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext,
    foreign_standin: SigstoreStandin,
) -> None:  # fmt: skip
    logged = len(sigstore_standin.entries)
    token = foreign_standin.identity_token()

    # sigstore-python raises its private FulcioClientError (without Fulcio's message).
    with pytest.raises(Exception) as raised:
        sign(signing_context, token)
    assert type(raised.value).__name__ == "FulcioClientError"
    assert sigstore_standin.calls[-1].service == "fulcio"
    assert sigstore_standin.calls[-1].status == 401
    assert len(sigstore_standin.entries) == logged


# -- Refusals seen on the wire ------------------------------------------------------


def csr_pem(*, tamper: bool = False) -> bytes:
    """A CSR like sigstore-python's; ``tamper`` flips a bit of its signature."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    if tamper:
        der[-1] ^= 0x01  # the last byte of the signature's s
    body = base64.encodebytes(bytes(der)).decode()
    return (
        f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n".encode()
    )


def post_signing_cert(standin: SigstoreStandin, token: str, csr: bytes) -> httpx.Response:
    return httpx.post(
        f"{standin.url}/api/v2/signingCert",
        headers={"Authorization": f"Bearer {token}"},
        json={"certificateSigningRequest": base64.b64encode(csr).decode()},
    )


def test_fulcio_issues_for_a_valid_token_and_csr(sigstore_standin: SigstoreStandin) -> None:
    response = post_signing_cert(sigstore_standin, sigstore_standin.identity_token(), csr_pem())

    assert response.status_code == 201
    chain = response.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    assert [x509.load_pem_x509_certificate(pem.encode()) for pem in chain][1:] == [
        sigstore_standin.ca_certificate
    ]


def test_fulcio_refuses_an_expired_token(sigstore_standin: SigstoreStandin) -> None:
    now = int(time.time())
    token = sigstore_standin.identity_token(iat=now - 900, nbf=None, exp=now - 300)

    response = post_signing_cert(sigstore_standin, token, csr_pem())
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_fulcio_refuses_a_token_for_another_audience(sigstore_standin: SigstoreStandin) -> None:
    token = sigstore_standin.identity_token(aud="not-sigstore")

    response = post_signing_cert(sigstore_standin, token, csr_pem())
    assert response.status_code == 401


def test_fulcio_refuses_a_csr_whose_signature_does_not_verify(
    sigstore_standin: SigstoreStandin,
) -> None:
    token = sigstore_standin.identity_token()

    response = post_signing_cert(sigstore_standin, token, csr_pem(tamper=True))
    assert response.status_code == 400
    assert "signature" in response.json()["message"]


def test_rekor_refuses_a_signature_that_does_not_verify(sigstore_standin: SigstoreStandin) -> None:
    logged = len(sigstore_standin.entries)
    digest = hashlib.sha256(ARTIFACT).digest()
    stranger = ec.generate_private_key(ec.SECP256R1())
    certificate = _self_signed(ec.generate_private_key(ec.SECP256R1()))
    entry = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "signature": {
                "content": base64.b64encode(
                    stranger.sign(digest, ec.ECDSA(hashes.SHA256()))
                ).decode(),
                "publicKey": {"content": base64.b64encode(certificate).decode()},
            },
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        },
    }

    response = httpx.post(f"{sigstore_standin.url}/api/v1/log/entries", json=entry)
    assert response.status_code == 400
    assert len(sigstore_standin.entries) == logged


def _self_signed(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=5))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


# -- GitHub Actions' ambient credential ---------------------------------------------


def test_ambient_github_credential_carries_the_configured_claims(
    sigstore_standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sigstore_standin.github_actions_env(event_name="workflow_dispatch")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    token = detect_credential(audience="sigstore")
    assert token is not None
    claims = sigstore_standin.verify_identity_token(token)
    assert claims["iss"] == GITHUB_ISSUER
    assert claims["sub"] == DEFAULT_IDENTITY
    assert claims["aud"] == "sigstore"
    assert claims["event_name"] == "workflow_dispatch"
    assert claims["repository"] == github_workflow_claims(DEFAULT_IDENTITY)["repository"]
    assert IdentityToken(token).identity == DEFAULT_IDENTITY
    assert sigstore_standin.calls[-1].service == "github-token"


def test_ambient_github_credential_signs(
    sigstore_standin: SigstoreStandin, signing_context: SigningContext, verifier: Verifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    for name, value in sigstore_standin.github_actions_env(event_name="release").items():
        monkeypatch.setenv(name, value)
    token = detect_credential(audience="sigstore")
    assert token is not None

    bundle = sign(signing_context, token)
    verifier.verify_artifact(
        ARTIFACT, bundle, policy.AllOf([GITHUB_IDENTITY, policy.GitHubWorkflowTrigger("release")])
    )


def test_ambient_github_credential_needs_the_granted_request_token(
    sigstore_standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sigstore_standin.github_actions_env() | {"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "guessed"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(AmbientCredentialError, match="code=401"):
        detect_credential(audience="sigstore")


# -- The sigstore CLI ---------------------------------------------------------------


@dataclass(frozen=True)
class CliSigning:
    """An artifact signed by ``python -m sigstore sign`` and what verifying it needs."""

    config: Path
    artifact: Path
    bundle: Path
    env: dict[str, str]


def sigstore_cli(
    *args: str | Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sigstore", *map(str, args)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


def cli_env(directory: Path) -> dict[str, str]:
    """This process's environment (``NO_PROXY`` included) without any CI's ambient credential,
    and with private XDG directories so nothing touches the user's cache."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GITHUB_", "ACTIONS_"))
    }
    env["XDG_CACHE_HOME"] = str(directory / "cache")
    env["XDG_DATA_HOME"] = str(directory / "data")
    return env


@pytest.fixture(scope="module")
def cli_signing(
    sigstore_standin: SigstoreStandin, tmp_path_factory: pytest.TempPathFactory
) -> CliSigning:
    directory = tmp_path_factory.mktemp("sigstore-cli")
    signing = CliSigning(
        config=sigstore_standin.write_trust_config(directory / "trust_config.json"),
        artifact=directory / "app.wasm",
        bundle=directory / "app.wasm.sigstore.json",
        env=cli_env(directory),
    )
    signing.artifact.write_bytes(ARTIFACT)
    sigstore_cli(
        "--trust-config", signing.config, "sign",
        "--identity-token", sigstore_standin.identity_token(),
        "--bundle", signing.bundle, signing.artifact,
        env=signing.env,
    )  # fmt: skip
    return signing


def test_sigstore_cli_verifies_what_it_signed(cli_signing: CliSigning) -> None:
    result = sigstore_cli(
        "--trust-config", cli_signing.config, "verify", "identity",
        "--bundle", cli_signing.bundle,
        "--cert-identity", DEFAULT_IDENTITY, "--cert-oidc-issuer", GITHUB_ISSUER,
        cli_signing.artifact,
        env=cli_signing.env,
    )  # fmt: skip
    assert f"OK: {cli_signing.artifact}" in result.stderr + result.stdout


def test_sigstore_cli_rejects_another_identity(cli_signing: CliSigning) -> None:
    result = sigstore_cli(
        "--trust-config", cli_signing.config, "verify", "identity",
        "--bundle", cli_signing.bundle,
        "--cert-identity", "https://github.com/acme/other/.github/workflows/x.yml@refs/heads/main",
        "--cert-oidc-issuer", GITHUB_ISSUER,
        cli_signing.artifact,
        env=cli_signing.env, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "FAIL" in result.stderr


def test_sigstore_cli_signs_with_the_ambient_github_credential(
    sigstore_standin: SigstoreStandin, verifier: Verifier, tmp_path: Path
) -> None:
    config = sigstore_standin.write_trust_config(tmp_path / "trust_config.json")
    artifact = tmp_path / "app.wasm"
    artifact.write_bytes(ARTIFACT)
    bundle = tmp_path / "app.wasm.sigstore.json"
    env = cli_env(tmp_path) | sigstore_standin.github_actions_env()

    sigstore_cli("--trust-config", config, "sign", "--bundle", bundle, artifact, env=env)
    verifier.verify_artifact(ARTIFACT, Bundle.from_json(bundle.read_bytes()), GITHUB_IDENTITY)
