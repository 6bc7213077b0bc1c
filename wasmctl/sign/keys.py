"""cosign key files: the encrypted private key, the public key, and signing with them.

`cosign generate-key-pair` writes `cosign.key` and `cosign.pub`. The private key is a PEM
block whose body is JSON in the format of secure-systems-lab's `encrypted` package:

    -----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
    base64 of {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1},
                       "salt": B64},
               "cipher": {"name": "nacl/secretbox", "nonce": B64},
               "ciphertext": B64}
    -----END ENCRYPTED SIGSTORE PRIVATE KEY-----

The secretbox key is scrypt(password, salt, N, r, p) (32 bytes) and the plaintext is the
PKCS#8 DER of an ECDSA P-256 key. cosign before 2.0 labelled the block `ENCRYPTED COSIGN
PRIVATE KEY`; both labels are read, the new one is written. The public key is a
SubjectPublicKeyInfo PEM (`PUBLIC KEY`); a Sigstore bundle names it by its hint,
base64(sha256(SPKI DER)).

A key file is untrusted input and states its own scrypt cost, so the parameters are checked
against limits before any work is done: a hostile file must not take minutes of CPU or GiBs
of memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from wasmctl import _json
from wasmctl._files import read_limited, replace_atomically
from wasmctl.errors import InputError

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
"""The public keys a signature can be checked with: ECDSA, Ed25519 and RSA."""

SIGSTORE_LABEL: Final = "ENCRYPTED SIGSTORE PRIVATE KEY"
"""The PEM label cosign 2.x writes, and wasmctl too."""
COSIGN_LABEL: Final = "ENCRYPTED COSIGN PRIVATE KEY"
"""The PEM label of keys written by cosign 1.x; still read."""
PASSWORD_ENV: Final = "COSIGN_PASSWORD"

KDF_NAME: Final = "scrypt"
CIPHER_NAME: Final = "nacl/secretbox"
SALT_SIZE: Final = 32
MAX_KEY_FILE: Final = 1 << 20
"""A key is a few hundred bytes, a certificate a few KiB; anything near this is not a key."""

# Limits on the cost a key file may ask for. cosign writes N=65536, r=8, p=1 (64 MiB,
# ~0.2 s); older keys have N=32768. scrypt needs 128*N*r bytes and time in proportion to
# N*r*p.
MAX_SCRYPT_N: Final = 1 << 20
MAX_SCRYPT_MEMORY: Final = 256 << 20
MAX_SCRYPT_WORK: Final = 16 * 65536 * 8
"""N*r*p: sixteen times cosign's own cost, a few seconds."""

_ECDSA_HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
"""ECDSA's hash follows the curve, as Sigstore's key details (PKIX_ECDSA_P256_SHA_256, ...)."""

_PEM_BEGIN: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----")


class KeyFileError(InputError):
    """A key file that cannot be used: malformed, refused, or locked with another password."""


@dataclass(frozen=True)
class KeyPair:
    """A new cosign key pair, as the bytes of `cosign.key` and `cosign.pub`."""

    private_pem: bytes
    """The ECDSA P-256 private key, encrypted, labelled ENCRYPTED SIGSTORE PRIVATE KEY."""
    public_pem: bytes
    """The public key as a SubjectPublicKeyInfo PEM."""


@dataclass(frozen=True)
class ScryptParams:
    """The scrypt cost parameters of an encrypted key."""

    n: int
    r: int
    p: int

    @property
    def memory(self) -> int:
        """The bytes scrypt needs for these parameters."""
        return 128 * self.n * self.r

    def refusal(self) -> str | None:
        """Why a key file's parameters are not worked on, or None if they are acceptable."""
        if self.n < 2 or self.n & (self.n - 1):
            return f"N={self.n} is not a power of 2"
        if self.r < 1 or self.p < 1:
            return f"r={self.r} and p={self.p} must be positive"
        if self.n > MAX_SCRYPT_N:
            return f"N={self.n} is above the limit {MAX_SCRYPT_N}"
        if self.memory > MAX_SCRYPT_MEMORY:
            return f"N={self.n}, r={self.r} would need {self.memory >> 20} MiB"
        if self.n * self.r * self.p > MAX_SCRYPT_WORK:
            return f"N={self.n}, r={self.r}, p={self.p} would take too long"
        return None


COSIGN_SCRYPT: Final = ScryptParams(n=65536, r=8, p=1)
"""What `cosign generate-key-pair` uses, and so wasmctl."""


@dataclass(frozen=True)
class EncryptedKey:
    """The JSON document inside an encrypted private key's PEM block."""

    scrypt: ScryptParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> bytes:
        """The document as cosign writes it (its field order, no spaces)."""
        doc = {
            "kdf": {
                "name": KDF_NAME,
                "params": {"N": self.scrypt.n, "r": self.scrypt.r, "p": self.scrypt.p},
                "salt": _b64(self.salt),
            },
            "cipher": {"name": CIPHER_NAME, "nonce": _b64(self.nonce)},
            "ciphertext": _b64(self.ciphertext),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, body: bytes, source: str) -> EncryptedKey:
        """Read and check the document; every problem is a KeyFileError naming `source`."""
        doc = _json.loads(body, f"{source}: the encrypted key", KeyFileError)
        doc = _object(doc, "the encrypted key", source)
        kdf = _object(doc.get("kdf"), "kdf", source)
        cipher = _object(doc.get("cipher"), "cipher", source)
        if kdf.get("name") != KDF_NAME:
            raise KeyFileError(f"{source}: unsupported kdf {kdf.get('name')!r} (not scrypt)")
        if cipher.get("name") != CIPHER_NAME:
            raise KeyFileError(
                f"{source}: unsupported cipher {cipher.get('name')!r} (not nacl/secretbox)"
            )
        params = _object(kdf.get("params"), "kdf.params", source)
        scrypt = ScryptParams(
            n=_int(params.get("N"), "kdf.params.N", source),
            r=_int(params.get("r"), "kdf.params.r", source),
            p=_int(params.get("p"), "kdf.params.p", source),
        )
        refusal = scrypt.refusal()
        if refusal is not None:
            raise KeyFileError(
                f"{source}: refusing the key's scrypt parameters: {refusal}",
                hint="cosign writes N=65536, r=8, p=1; a file asking for far more is not "
                "a cosign key",
            )
        salt = _unb64(kdf.get("salt"), "kdf.salt", source)
        nonce = _unb64(cipher.get("nonce"), "cipher.nonce", source)
        ciphertext = _unb64(doc.get("ciphertext"), "ciphertext", source)
        if not salt:
            raise KeyFileError(f"{source}: kdf.salt is empty")
        if len(nonce) != SecretBox.NONCE_SIZE:
            raise KeyFileError(
                f"{source}: cipher.nonce has {len(nonce)} bytes, not {SecretBox.NONCE_SIZE}"
            )
        if len(ciphertext) <= SecretBox.MACBYTES:
            raise KeyFileError(f"{source}: the ciphertext is truncated ({len(ciphertext)} bytes)")
        return cls(scrypt, salt, nonce, ciphertext)


def generate_key_pair(password: bytes | str) -> KeyPair:
    """A new ECDSA P-256 key pair, the private key encrypted as cosign does it."""
    key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(encrypt_private_key(key, password), public_key_pem(key.public_key()))


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: bytes | str) -> bytes:
    """The key as an encrypted PEM (scrypt N=65536 r=8 p=1, fresh salt and nonce)."""
    plaintext = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(SecretBox.NONCE_SIZE)
    box = SecretBox(_derive(_password_bytes(password), salt, COSIGN_SCRYPT))
    ciphertext = box.encrypt(plaintext, nonce).ciphertext
    document = EncryptedKey(COSIGN_SCRYPT, salt, nonce, ciphertext)
    return _pem(SIGSTORE_LABEL, document.to_json())


def load_private_key(
    data: bytes, password: bytes | str, *, source: str = "key"
) -> ec.EllipticCurvePrivateKey:
    """The ECDSA P-256 key in a cosign key file.

    Reads both encrypted labels, and for convenience an unencrypted `PRIVATE KEY` (PKCS#8)
    or `EC PRIVATE KEY` (SEC1) PEM, for which the password is ignored. `source` names the
    file in errors; the password never appears in one.
    """
    label, body = _pem_block(data, source)
    if label in (SIGSTORE_LABEL, COSIGN_LABEL):
        encrypted = EncryptedKey.parse(body, source)
        box = SecretBox(_derive(_password_bytes(password), encrypted.salt, encrypted.scrypt))
        try:
            der = box.decrypt(encrypted.ciphertext, encrypted.nonce)
        except CryptoError:
            # secretbox cannot tell a wrong password from a damaged file: both fail the MAC.
            raise KeyFileError(
                f"cannot decrypt {source}: wrong password?",
                hint=f"the password comes from {PASSWORD_ENV} or the prompt (it may be empty)",
            ) from None
    elif label in ("PRIVATE KEY", "EC PRIVATE KEY"):
        der = body
    else:
        raise KeyFileError(f"{source}: PEM label {label!r} is not a cosign private key")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise KeyFileError(f"{source}: the private key cannot be read ({e})") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyFileError(
            f"{source}: {_describe(key)} is not supported",
            hint="cosign keys are ECDSA P-256",
        )
    return key


def read_key_file(path: Path) -> bytes:
    """The bytes of a key or certificate file: a regular file of at most `MAX_KEY_FILE`
    (a `--key /dev/zero` or a FIFO is refused, never read without end)."""
    return read_limited(path, MAX_KEY_FILE, "key")


def load_public_key_file(path: Path) -> PublicKey:
    """The public key in the PEM file at `path` (see `load_public_key`)."""
    return load_public_key(read_key_file(path), source=str(path))


def load_public_key(data: bytes, *, source: str = "public key") -> PublicKey:
    """The public key in a `PUBLIC KEY` PEM (like `cosign.pub`) or a `CERTIFICATE` PEM.

    ECDSA (P-256, P-384, P-521), Ed25519 and RSA keys are accepted; others are refused.
    """
    label, der = _pem_block(data, source)
    if label not in ("PUBLIC KEY", "CERTIFICATE"):
        raise KeyFileError(f"{source}: PEM label {label!r} is not a public key or a certificate")
    try:
        if label == "PUBLIC KEY":
            key: object = serialization.load_der_public_key(der)
        else:
            key = x509.load_der_x509_certificate(der).public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFileError(f"{source}: the {label.lower()} cannot be read ({e})") from e
    supported = supported_public_key(key)
    if supported is not None:
        return supported
    raise KeyFileError(
        f"{source}: {_describe(key)} is not supported",
        hint="keys may be ECDSA (P-256, P-384, P-521), Ed25519 or RSA",
    )


def supported_public_key(key: object) -> PublicKey | None:
    """`key` if signatures by it can be verified here (ECDSA on a known curve, Ed25519, RSA)."""
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _ECDSA_HASHES:
        return key
    if isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        return key
    return None


def spki_der(key: PublicKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo DER of any public key (what key IDs and hints hash)."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_pem(key: PublicKey) -> bytes:
    """The key as a SubjectPublicKeyInfo PEM, as in `cosign.pub`."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: PublicKey) -> str:
    """How a Sigstore bundle names a key: base64(sha256(SPKI DER))."""
    return _b64(hashlib.sha256(spki_der(key)).digest())


def sign_bytes(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """An ECDSA signature over `data` with SHA-256, DER-encoded (what cosign keys make)."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_signature(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether `signature` is `key`'s over `data`.

    ECDSA hashes with the curve's hash (P-256: SHA-256, P-384: SHA-384, P-521: SHA-512),
    Ed25519 signs the data itself, RSA is PKCS#1 v1.5 with SHA-256. A bad signature is
    False, never an exception.
    """
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            algorithm = _ECDSA_HASHES.get(key.curve.name)
            if algorithm is None:
                return False
            key.verify(signature, data, ec.ECDSA(algorithm()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def read_password(env: Mapping[str, str] | None = None) -> bytes | None:
    """`COSIGN_PASSWORD` if it is set, even to "" (an empty password is valid); else None,
    and the caller asks."""
    value = (os.environ if env is None else env).get(PASSWORD_ENV)
    # surrogateescape gives back the bytes of a non-UTF-8 environment value.
    return None if value is None else value.encode("utf-8", "surrogateescape")


def write_key_pair(pair: KeyPair, prefix: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write `<prefix>.key` (mode 0600) and `<prefix>.pub`; return their paths.

    Existing files are refused unless `force`. Each file is written to a temporary file
    and renamed into place, so a failure leaves no partial key behind.
    """
    key_path = prefix.parent / f"{prefix.name}.key"
    pub_path = prefix.parent / f"{prefix.name}.pub"
    reserved: list[Path] = []
    try:
        if not force:
            # O_EXCL claims both names before anything is written, so two runs cannot race.
            for path in (key_path, pub_path):
                _reserve(path)
                reserved.append(path)
        # durable before the rename: a crash must not leave an empty key in place of a key
        replace_atomically(key_path, pair.private_pem, mode=0o600, fsync=True, error=KeyFileError)
        replace_atomically(pub_path, pair.public_pem, mode=0o644, fsync=True, error=KeyFileError)
    except BaseException:
        for path in reserved:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return key_path, pub_path


# -- helpers --------------------------------------------------------------------------------


def _reserve(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{path} already exists", hint="use --force to overwrite the key pair"
        ) from None
    except OSError as e:
        raise KeyFileError(f"cannot create {path}: {e.strerror or e}") from e
    os.close(fd)


def _derive(password: bytes, salt: bytes, params: ScryptParams) -> bytes:
    kdf = Scrypt(salt=salt, length=SecretBox.KEY_SIZE, n=params.n, r=params.r, p=params.p)
    return kdf.derive(password)


def _password_bytes(password: bytes | str) -> bytes:
    return password.encode() if isinstance(password, str) else password


def _pem(label: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def _pem_block(data: bytes, source: str) -> tuple[str, bytes]:
    """The label and decoded body of the first PEM block in `data`."""
    if len(data) > MAX_KEY_FILE:
        raise KeyFileError(f"{source}: {len(data)} bytes is too large for a key file")
    begin = _PEM_BEGIN.search(data)
    if begin is None:
        raise KeyFileError(f"{source}: not a PEM file (no -----BEGIN line)")
    label = begin.group(1).decode()
    end = data.find(f"-----END {label}-----".encode(), begin.end())
    if end < 0:
        raise KeyFileError(f"{source}: the {label} PEM block has no END line")
    try:
        body = base64.b64decode(b"".join(data[begin.end() : end].split()), validate=True)
    except binascii.Error as e:
        raise KeyFileError(f"{source}: the {label} PEM block is not base64 ({e})") from e
    return label, body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: object, field: str, source: str) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError(f"{source}: {field} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyFileError(f"{source}: {field} is not base64 ({e})") from e


def _object(value: object, field: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise KeyFileError(f"{source}: {field} is missing or not an object")
    return value


def _int(value: object, field: str, source: str) -> int:
    # JSON true is a Python int; a cost parameter is a number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeyFileError(f"{source}: {field} is missing or not an integer")
    return value


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an ECDSA {key.curve.name} key"
    return f"a key of type {type(key).__name__}"
