"""Making signatures: with a cosign key, or keyless through sigstore-python.

Both signers produce Sigstore bundles (v0.3), either over a digest (a file, as
`cosign sign-blob` does) or as a DSSE envelope around an in-toto statement (an artifact, as
cosign v3 signs images). A key signature is not logged anywhere, as with cosign's
`--tlog-upload=false`: the key is the trust anchor, and the bundle names it by its hint.

Keyless signing gets a short-lived certificate from Fulcio for an OIDC identity and logs
the signature in Rekor. The identity token is the one given, else the CI's ambient
credential (GitHub Actions, GitLab, Buildkite, CircleCI, Google Cloud, found by the PyPA
`id` package), else at a terminal the interactive browser flow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from wasmctl._files import read_limited
from wasmctl.errors import InputError, RemoteError
from wasmctl.sign.bundle import (
    INTOTO_PAYLOAD_TYPE,
    Envelope,
    EnvelopeSignature,
    MessageSignature,
    Statement,
    key_bundle,
    pae,
)
from wasmctl.sign.keys import key_hint, sign_bytes
from wasmctl.sign.trust import MAX_TRUST_FILE


class SigningBackend(Protocol):
    """What signing an artifact or a file needs: two kinds of bundle."""

    def sign_statement(self, statement: Statement) -> bytes: ...

    def sign_digest(self, digest: bytes) -> bytes: ...


@dataclass(frozen=True)
class KeySigning:
    """Signatures made with a cosign key (ECDSA P-256)."""

    key: ec.EllipticCurvePrivateKey

    def sign_statement(self, statement: Statement) -> bytes:
        payload = statement.to_bytes()
        signature = sign_bytes(self.key, pae(INTOTO_PAYLOAD_TYPE, payload))
        envelope = Envelope(INTOTO_PAYLOAD_TYPE, payload, (EnvelopeSignature("", signature),))
        return key_bundle(key_hint(self.key.public_key()), envelope=envelope)

    def sign_digest(self, digest: bytes) -> bytes:
        signature = self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        message = MessageSignature("SHA2_256", digest, signature)
        return key_bundle(key_hint(self.key.public_key()), message=message)


class KeylessSigning:
    """Fulcio and Rekor through sigstore-python; use as a context manager (one certificate
    serves every signature made inside it)."""

    def __init__(
        self,
        *,
        trust_config: Path | None = None,
        identity_token: str | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.trust_config = trust_config
        self.identity_token = identity_token
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self._signer: Any = None
        self._context: Any = None
        self.identity: str | None = None

    def __enter__(self) -> KeylessSigning:
        from sigstore.sign import SigningContext

        config = self._config()
        token = self._token(config)
        self.identity = token.identity
        try:
            context = SigningContext.from_trust_config(config)
            self._context = context.signer(token, cache=True)
            self._signer = self._context.__enter__()
        except _service_errors() as e:
            raise _sigstore_error(e, "cannot start keyless signing") from None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._context is not None:
            self._context.__exit__(kind, error, tb)

    def _config(self) -> Any:
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import ClientTrustConfig

        if self.trust_config is None:
            try:
                return ClientTrustConfig.production()
            except (SigstoreError, OSError) as e:
                raise RemoteError(
                    f"cannot load Sigstore's signing configuration over TUF: {e}",
                    hint="for a private deployment, pass --trust-config FILE",
                ) from None
        raw = read_limited(self.trust_config, MAX_TRUST_FILE, "trust config")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"cannot read trust config {self.trust_config}: {e}") from None
        try:
            return ClientTrustConfig.from_json(text)
        except Exception as e:  # pydantic and sigstore both raise here; either is bad input
            raise InputError(
                f"{self.trust_config}: not a Sigstore client trust config ({_first_line(e)})"
            ) from None

    def _token(self, config: Any) -> Any:
        from sigstore.oidc import IdentityError, IdentityToken, Issuer, detect_credential

        raw = self.identity_token
        try:
            if raw is None:
                raw = detect_credential()
            if raw is None and self.interactive:
                raw = str(Issuer(config.signing_config.get_oidc_url()).identity_token())
            if raw is None:
                raise InputError(
                    "no identity token for keyless signing",
                    hint="pass --identity-token, run in CI with an OIDC token (GitHub Actions: "
                    "permissions: id-token: write), run at a terminal, or sign with --key",
                )
            return IdentityToken(raw)
        except IdentityError as e:
            raise InputError(
                f"identity token: {_first_line(e)}",
                hint="in GitHub Actions the job needs `permissions: id-token: write`",
            ) from None

    def sign_statement(self, statement: Statement) -> bytes:
        from sigstore.dsse import Statement as SigstoreStatement

        try:
            bundle = self._signer.sign_dsse(SigstoreStatement(statement.to_bytes()))
        except _service_errors() as e:
            raise _sigstore_error(e, "keyless signing failed") from None
        return str(bundle.to_json()).encode()

    def sign_digest(self, digest: bytes) -> bytes:
        from sigstore.hashes import Hashed
        from sigstore_models.common.v1 import HashAlgorithm

        try:
            bundle = self._signer.sign_artifact(
                Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
            )
        except _service_errors() as e:
            raise _sigstore_error(e, "keyless signing failed") from None
        return str(bundle.to_json()).encode()


def _service_errors() -> tuple[type[Exception], ...]:
    """What sigstore-python raises when Fulcio, Rekor or a timestamp authority fails or
    refuses (its client errors are not `sigstore.errors.Error`)."""
    import requests
    from sigstore._internal.fulcio.client import FulcioClientError
    from sigstore._internal.rekor import RekorClientError
    from sigstore._internal.timestamp import TimestampError
    from sigstore.errors import Error as SigstoreError

    return (
        SigstoreError,
        FulcioClientError,
        RekorClientError,
        TimestampError,
        requests.RequestException,
    )


def _sigstore_error(error: Exception, what: str) -> RemoteError:
    service = type(error).__name__.removesuffix("ClientError")
    detail = _first_line(error) if str(error).strip() else "refused the request"
    if service in ("Fulcio", "Rekor"):
        detail = f"{service}: {detail}"
    hint = None
    if service == "Fulcio":
        hint = "is the identity token valid, unexpired, and meant for this Sigstore instance?"
    return RemoteError(f"{what}: {detail}", hint=hint)


def _first_line(error: Exception) -> str:
    return (str(error).strip().split("\n", 1)[0] or type(error).__name__)[:300]
