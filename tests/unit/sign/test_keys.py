"""cosign's key files: real keys decrypt, new keys match cosign's format, hostile files are
refused before any work, signatures round-trip, and key pairs are written safely."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from tests.vectors import SIGSTORE
from wasmctl.sign.keys import (
    COSIGN_LABEL,
    SIGSTORE_LABEL,
    KeyFileError,
    KeyPair,
    encrypt_private_key,
    generate_key_pair,
    key_hint,
    load_private_key,
    load_public_key,
    public_key_pem,
    read_password,
    sign_bytes,
    verify_signature,
    write_key_pair,
)

# The project's shared test data, next to the checkout: tests/unit/sign -> /work/main -> ..
SIGSTORE_DATA = SIGSTORE
KEYS = SIGSTORE_DATA / "cosign" / "keys"
CONFORMANCE_KEY = SIGSTORE_DATA / "conformance" / "managed-key-happy-path" / "key.pub"

REAL_KEYS = [
    pytest.param("sigstore-labeled-ecdsa-p256.password-hello", b"hello", id="sigstore-label"),
    pytest.param("cosign-generated.password-empty", b"", id="empty-password"),
    pytest.param("cosign-labeled-ecdsa-p256.password-123", b"123", id="legacy-cosign-label"),
]
# A real key with N=32768, the cheapest to decrypt, as the base for malformed variants.
BASE_KEY = KEYS / "cosign-labeled-ecdsa-p256.password-123.key"
PASSWORD = b"correct horse battery staple"


def spki(key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem_label(pem: bytes) -> str:
    return pem.split(b"\n", 1)[0].decode().removeprefix("-----BEGIN ").removesuffix("-----")


def encrypted_document(pem: bytes) -> dict[str, Any]:
    """The JSON inside an encrypted key's PEM block."""
    body = b"".join(pem.strip().split(b"\n")[1:-1])
    doc: dict[str, Any] = json.loads(base64.b64decode(body))
    return doc


def pem_block(body: bytes, label: str = SIGSTORE_LABEL) -> bytes:
    text = base64.b64encode(body).decode()
    return f"-----BEGIN {label}-----\n{text}\n-----END {label}-----\n".encode()


def encrypted_pem(doc: object, label: str = SIGSTORE_LABEL) -> bytes:
    return pem_block(json.dumps(doc).encode(), label)


def unencrypted_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def refusal(data: bytes, source: str = "evil.key") -> KeyFileError:
    """The error loading `data` raises, checked to come before any expensive work."""
    start = time.monotonic()
    with pytest.raises(KeyFileError) as caught:
        load_private_key(data, PASSWORD, source=source)
    assert time.monotonic() - start < 0.5
    assert source in str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    """One generated key pair (scrypt at cosign's cost is ~0.2 s, so made once)."""
    return generate_key_pair(PASSWORD)


# -- real cosign keys -------------------------------------------------------------------------


@pytest.mark.parametrize(("stem", "password"), REAL_KEYS)
def test_real_cosign_key_decrypts_to_the_key_of_its_pub_file(stem: str, password: bytes) -> None:
    private = load_private_key((KEYS / f"{stem}.key").read_bytes(), password)
    public = load_public_key((KEYS / f"{stem}.pub").read_bytes())
    assert spki(private.public_key()) == spki(public)


def test_the_legacy_label_vector_really_has_the_legacy_label() -> None:
    assert pem_label(BASE_KEY.read_bytes()) == COSIGN_LABEL


def test_wrong_password_is_refused_without_revealing_the_password() -> None:
    secret = "hunter2-not-the-password"
    with pytest.raises(KeyFileError, match="wrong password") as caught:
        load_private_key(BASE_KEY.read_bytes(), secret.encode(), source="cosign.key")
    error = caught.value
    shown = [str(error), repr(error), error.diagnostics(), repr(error.__context__)]
    assert "cosign.key" in str(error)
    assert not any(secret in text for text in shown)


def test_password_may_be_given_as_text() -> None:
    key = load_private_key(BASE_KEY.read_bytes(), "123")
    assert isinstance(key.curve, ec.SECP256R1)


# -- generated keys ---------------------------------------------------------------------------


def test_generated_key_loads_with_its_password(pair: KeyPair) -> None:
    private = load_private_key(pair.private_pem, PASSWORD)
    assert spki(private.public_key()) == spki(load_public_key(pair.public_pem))


def test_generated_key_has_the_sigstore_label_and_cosign_scrypt_cost(pair: KeyPair) -> None:
    doc = encrypted_document(pair.private_pem)
    assert pem_label(pair.private_pem) == SIGSTORE_LABEL
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24


def test_generated_public_key_is_a_public_key_pem(pair: KeyPair) -> None:
    assert pem_label(pair.public_pem) == "PUBLIC KEY"


def test_each_encryption_has_a_fresh_salt_and_nonce(pair: KeyPair) -> None:
    again = encrypted_document(generate_key_pair(PASSWORD).private_pem)
    first = encrypted_document(pair.private_pem)
    assert again["kdf"]["salt"] != first["kdf"]["salt"]
    assert again["cipher"]["nonce"] != first["cipher"]["nonce"]


def test_encrypted_key_round_trips_the_same_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    loaded = load_private_key(encrypt_private_key(key, b""), b"")
    assert loaded.private_numbers() == key.private_numbers()


# -- unencrypted and unsupported private keys ----------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
    ids=["PRIVATE KEY", "EC PRIVATE KEY"],
)
def test_unencrypted_private_key_loads_ignoring_the_password(
    form: serialization.PrivateFormat,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
    loaded = load_private_key(pem, b"any password")
    assert loaded.private_numbers() == key.private_numbers()


@pytest.mark.parametrize(
    "key",
    [ec.generate_private_key(ec.SECP384R1()), ed25519.Ed25519PrivateKey.generate()],
    ids=["ecdsa-p384", "ed25519"],
)
def test_private_key_other_than_p256_is_refused(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
) -> None:
    with pytest.raises(KeyFileError, match="not supported"):
        load_private_key(unencrypted_pem(key), b"")


def test_public_key_file_is_not_a_private_key() -> None:
    with pytest.raises(KeyFileError, match="PUBLIC KEY"):
        load_private_key((KEYS / "cosign-generated.password-empty.pub").read_bytes(), b"")


# -- hostile and malformed key files -----------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"N": 2**30, "r": 8, "p": 1},
        {"N": 2**21, "r": 1, "p": 1},
        {"N": 65537, "r": 8, "p": 1},
        {"N": 0, "r": 8, "p": 1},
        {"N": 2**20, "r": 8, "p": 1},
        {"N": 65536, "r": 8, "p": 2**20},
        {"N": 65536, "r": 0, "p": 1},
    ],
    ids=[
        "N-2^30",
        "N-above-2^20",
        "N-not-power-of-2",
        "N-zero",
        "1-GiB-of-memory",
        "p-too-large",
        "r-zero",
    ],
)
def test_absurd_scrypt_parameters_are_refused_before_deriving(params: dict[str, int]) -> None:
    doc = encrypted_document(BASE_KEY.read_bytes())
    doc["kdf"]["params"] = params
    error = refusal(encrypted_pem(doc))
    assert "scrypt parameters" in str(error)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("kdf", "name"), "argon2id", "unsupported kdf"),
        (("kdf", "name"), "SCRYPT", "unsupported kdf"),
        (("cipher", "name"), "aes-256-gcm", "unsupported cipher"),
    ],
    ids=["argon2id", "kdf-name-case", "aes-gcm"],
)
def test_unknown_algorithms_are_refused(path: tuple[str, str], value: str, message: str) -> None:
    doc = encrypted_document(BASE_KEY.read_bytes())
    doc[path[0]][path[1]] = value
    assert message in str(refusal(encrypted_pem(doc)))


def _set(doc: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    target = changed
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("ciphertext",), base64.b64encode(b"0123456789").decode(), "truncated"),
        (("ciphertext",), None, "ciphertext is missing"),
        (("kdf", "salt"), "not*base64!", "kdf.salt is not base64"),
        (("kdf", "salt"), "", "kdf.salt is empty"),
        (("cipher", "nonce"), base64.b64encode(b"short").decode(), "cipher.nonce has 5 bytes"),
        (("kdf", "params", "N"), "65536", "kdf.params.N is missing or not an integer"),
        (("kdf", "params", "r"), True, "kdf.params.r is missing or not an integer"),
        (("kdf", "params"), [65536, 8, 1], "kdf.params is missing or not an object"),
        (("kdf",), "scrypt", "kdf is missing or not an object"),
    ],
    ids=[
        "truncated-ciphertext",
        "no-ciphertext",
        "bad-base64-salt",
        "empty-salt",
        "short-nonce",
        "N-as-string",
        "r-as-bool",
        "params-as-list",
        "kdf-as-string",
    ],
)
def test_malformed_encrypted_key_is_refused_naming_the_file(
    path: tuple[str, ...], value: object, message: str
) -> None:
    doc = _set(encrypted_document(BASE_KEY.read_bytes()), path, value)
    assert message in str(refusal(encrypted_pem(doc, COSIGN_LABEL)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"just some text\n", "not a PEM file"),
        (b"", "not a PEM file"),
        (f"-----BEGIN {SIGSTORE_LABEL}-----\neyJ\n".encode(), "no END line"),
        (pem_block(b"x").replace(b"eA==", b"!!"), "not base64"),
        (pem_block(b"{not json"), "not JSON"),
        (encrypted_pem([1, 2]), "the encrypted key is missing or not an object"),
        (pem_block(b"\x06\x08*\x86H\xce=\x03\x01\x07", "EC PARAMETERS"), "label"),
        (b"x" * (2 << 20), "too large"),
    ],
    ids=[
        "not-pem",
        "empty",
        "no-end",
        "bad-base64-body",
        "not-json",
        "json-not-object",
        "other-label",
        "huge",
    ],
)
def test_unreadable_key_file_is_refused_naming_the_file(data: bytes, message: str) -> None:
    assert message in str(refusal(data))


def test_damaged_pkcs8_body_is_refused() -> None:
    assert "cannot be read" in str(refusal(pem_block(b"\x30\x03\x02\x01\x00", "PRIVATE KEY")))


# -- public keys and hints -------------------------------------------------------------------


def test_key_hint_is_base64_sha256_of_the_spki() -> None:
    key = load_public_key(CONFORMANCE_KEY.read_bytes())
    assert key_hint(key) == "TLMsSDfG3ajPsWge+z/vX5T/zluXnmvbkTkwLIV68Tk="


def test_public_key_pem_round_trips() -> None:
    original = CONFORMANCE_KEY.read_bytes()
    assert public_key_pem(load_public_key(original)) == original


def test_certificate_gives_its_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    loaded = load_public_key(certificate.public_bytes(serialization.Encoding.PEM))
    assert spki(loaded) == spki(key.public_key())


@pytest.mark.parametrize(
    "key",
    [
        ed25519.Ed25519PrivateKey.generate().public_key(),
        ec.generate_private_key(ec.SECP384R1()).public_key(),
    ],
    ids=["ed25519", "ecdsa-p384"],
)
def test_other_supported_public_keys_load(
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey,
) -> None:
    assert spki(load_public_key(public_key_pem(key))) == spki(key)


@pytest.mark.parametrize(
    "pem",
    [
        dsa.generate_private_key(1024)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        ec.generate_private_key(ec.SECP256K1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    ],
    ids=["dsa", "secp256k1"],
)
def test_unsupported_public_key_is_refused(pem: bytes) -> None:
    with pytest.raises(KeyFileError, match=r"^ring\.pub: .* not supported"):
        load_public_key(pem, source="ring.pub")


def test_private_key_is_not_a_public_key(pair: KeyPair) -> None:
    with pytest.raises(KeyFileError, match="not a public key"):
        load_public_key(pair.private_pem, source="cosign.key")


# -- signatures ------------------------------------------------------------------------------


P256 = ec.generate_private_key(ec.SECP256R1())
MESSAGE = b"wasm artifact digest"


def test_signature_verifies_with_the_public_key() -> None:
    assert verify_signature(P256.public_key(), sign_bytes(P256, MESSAGE), MESSAGE)


def test_signature_over_other_data_does_not_verify() -> None:
    signature = sign_bytes(P256, MESSAGE)
    tampered = bytes([MESSAGE[0] ^ 1]) + MESSAGE[1:]
    assert not verify_signature(P256.public_key(), signature, tampered)


def test_signature_by_another_key_does_not_verify() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert not verify_signature(other.public_key(), sign_bytes(P256, MESSAGE), MESSAGE)


def test_signature_is_ecdsa_sha256_der() -> None:
    P256.public_key().verify(sign_bytes(P256, MESSAGE), MESSAGE, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("signature", [b"", b"not a DER signature", b"\x30\x00"])
def test_malformed_signature_is_false_not_an_exception(signature: bytes) -> None:
    assert not verify_signature(P256.public_key(), signature, MESSAGE)


def test_ed25519_signature_verifies() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signature = key.sign(MESSAGE)
    assert verify_signature(key.public_key(), signature, MESSAGE)
    assert not verify_signature(key.public_key(), signature, MESSAGE + b"!")


def test_p384_signature_is_checked_with_sha384() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    assert verify_signature(key.public_key(), key.sign(MESSAGE, ec.ECDSA(hashes.SHA384())), MESSAGE)
    assert not verify_signature(
        key.public_key(), key.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), MESSAGE
    )


def test_rsa_signature_is_pkcs1v15_sha256() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    assert verify_signature(key.public_key(), signature, MESSAGE)
    assert not verify_signature(key.public_key(), signature, MESSAGE + b"!")


# -- writing a key pair -------------------------------------------------------------------------


def test_key_pair_is_written_as_prefix_key_and_pub(pair: KeyPair, tmp_path: Path) -> None:
    key_path, pub_path = write_key_pair(pair, tmp_path / "release.v1")
    assert (key_path.name, pub_path.name) == ("release.v1.key", "release.v1.pub")
    assert key_path.read_bytes() == pair.private_pem
    assert pub_path.read_bytes() == pair.public_pem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.v1.key", "release.v1.pub"]


def test_private_key_file_is_readable_by_its_owner_only(pair: KeyPair, tmp_path: Path) -> None:
    key_path, _ = write_key_pair(pair, tmp_path / "cosign")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("existing", ["cosign.key", "cosign.pub"])
def test_existing_file_is_not_overwritten_without_force(
    pair: KeyPair, tmp_path: Path, existing: str
) -> None:
    (tmp_path / existing).write_bytes(b"keep me")
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_pair(pair, tmp_path / "cosign")
    assert (tmp_path / existing).read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == [existing]


def test_force_overwrites_an_existing_pair(pair: KeyPair, tmp_path: Path) -> None:
    (tmp_path / "cosign.key").write_bytes(b"old key")
    (tmp_path / "cosign.key").chmod(0o644)
    (tmp_path / "cosign.pub").write_bytes(b"old pub")
    key_path, pub_path = write_key_pair(pair, tmp_path / "cosign", force=True)
    assert key_path.read_bytes() == pair.private_pem
    assert pub_path.read_bytes() == pair.public_pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosign.key", "cosign.pub"]


def test_unwritable_directory_is_a_key_file_error(pair: KeyPair, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create"):
        write_key_pair(pair, tmp_path / "missing" / "cosign")


def test_a_forced_write_that_fails_is_a_key_file_error(pair: KeyPair, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot write"):
        write_key_pair(pair, tmp_path / "missing" / "cosign", force=True)
    assert not (tmp_path / "missing").exists()


def test_the_public_key_is_world_readable_whatever_the_umask(pair: KeyPair, tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        _, pub_path = write_key_pair(pair, tmp_path / "cosign")
    finally:
        os.umask(old)
    assert stat.S_IMODE(pub_path.stat().st_mode) == 0o644


# -- the password from the environment ---------------------------------------------------------


def test_password_comes_from_cosign_password() -> None:
    assert read_password({"COSIGN_PASSWORD": "s3cret"}) == b"s3cret"


def test_empty_cosign_password_is_an_empty_password() -> None:
    assert read_password({"COSIGN_PASSWORD": ""}) == b""


def test_unset_cosign_password_means_ask() -> None:
    assert read_password({"OTHER": "x"}) is None


def test_password_is_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "from-env")
    assert read_password() == b"from-env"
