"""Who signed, and whether that is who the policy trusts.

A keyless signature's signer is described by its Fulcio certificate: the identity in the
subject alternative name (an email, a URI such as a GitHub workflow, or Sigstore's
otherName), the OIDC issuer, and for CI tokens claims such as the repository and ref
(Fulcio's OID registry, 1.3.6.1.4.1.57264.1.*). A key signature's signer is the key.

Patterns are matched with `re.fullmatch`: `--certificate-identity-regexp 'github.com/acme'`
matches only that string, where cosign (Go `MatchString`) would also accept
`https://evil.example/?github.com/acme`. Anchor nothing; widen with `.*` where you mean it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from wasmctl.errors import InputError
from wasmctl.sign.keys import PublicKey, key_hint, load_public_key_file, spki_der

_FULCIO = "1.3.6.1.4.1.57264.1."
OIDC_ISSUER_V1 = ObjectIdentifier(_FULCIO + "1")
OIDC_ISSUER_V2 = ObjectIdentifier(_FULCIO + "8")
SAN_OTHERNAME = ObjectIdentifier(_FULCIO + "7")

# claim name -> (v1 extension, raw bytes; v2 extension, DER UTF8String; v2 value prefix)
CLAIMS: dict[str, tuple[str | None, str | None, str]] = {
    "github-workflow-trigger": ("2", "20", ""),
    "github-workflow-sha": ("3", "13", ""),
    "github-workflow-name": ("4", None, ""),
    "github-repository": ("5", "12", "https://github.com/"),
    "github-ref": ("6", "14", ""),
    "build-signer-uri": (None, "9", ""),
    "runner-environment": (None, "11", ""),
}


class PolicyArgumentError(InputError):
    """A verification policy that cannot be applied (a bad regex, nothing to check)."""


@dataclass(frozen=True)
class Signer:
    """What a signature says about who made it."""

    identities: tuple[str, ...] = ()
    issuer: str | None = None
    claims: Mapping[str, str] = field(default_factory=dict)
    key_hint: str | None = None
    key_id: str | None = None  # sha256 of the SPKI DER of the key that verified

    @property
    def keyless(self) -> bool:
        return self.key_hint is None

    def describe(self) -> str:
        if self.key_hint is not None:
            return f"key {self.key_hint}"
        who = ", ".join(self.identities) or "(no identity)"
        return f"{who} (issuer {self.issuer or 'unknown'})"

    def to_json(self) -> dict[str, Any]:
        if self.key_hint is not None:
            return {"key": self.key_hint}
        return {"identities": list(self.identities), "issuer": self.issuer, **self.claims}


def certificate_signer(certificate: x509.Certificate) -> Signer:
    """The identity, issuer and CI claims a Fulcio certificate carries."""
    identities: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        identities += san.get_values_for_type(x509.RFC822Name)
        identities += san.get_values_for_type(x509.UniformResourceIdentifier)
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == SAN_OTHERNAME:
                identities.append(_der_utf8(other.value) or other.value.decode(errors="replace"))
    except x509.ExtensionNotFound:
        pass
    extensions = {ext.oid.dotted_string: ext.value for ext in certificate.extensions}
    issuer = _v2(extensions, OIDC_ISSUER_V2.dotted_string) or _v1(
        extensions, OIDC_ISSUER_V1.dotted_string
    )
    claims: dict[str, str] = {}
    for name, (v1, v2, _) in CLAIMS.items():
        value = (v2 and _v2(extensions, _FULCIO + v2)) or (v1 and _v1(extensions, _FULCIO + v1))
        if value:
            claims[name] = value
    return Signer(tuple(identities), issuer, claims)


def key_signer(public_key: PublicKey) -> Signer:
    """The signer of a signature that verified with `public_key`."""
    key_id = "sha256:" + hashlib.sha256(spki_der(public_key)).hexdigest()
    return Signer(key_hint=key_hint(public_key), key_id=key_id)


def distinct_signers(signers: Sequence[Signer]) -> list[int]:
    """For each signer, the number of the distinct signer it is (0, 1, ... in order of
    first appearance), so that `required` counts who signed, not how many copies were stored.

    One key is one signer, however many signatures it made and wherever they are stored (a
    bundle pushed as two referrers, a `.sig` layer listed twice, a bundle and the same
    signature as a legacy layer): keys are compared by the digest of their SPKI DER. A keyless
    signer is an identity at an issuer: two certificates for the same identity (one per
    signing, as Fulcio issues them) are one signer, and certificates sharing any identity
    under the same issuer are joined, so extra SAN entries cannot split one signer in two.
    """
    parent = list(range(len(signers)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, ...], int] = {}
    for i, signer in enumerate(signers):
        for name in _signer_names(signer):
            j = first.setdefault(name, i)
            parent[root(i)] = root(j)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(i), len(numbers)) for i in range(len(signers))]


def _signer_names(signer: Signer) -> list[tuple[str, ...]]:
    """The names by which two signers are recognised as the same one."""
    if not signer.keyless:
        return [("key", signer.key_id or f"hint:{signer.key_hint}")]
    issuer = signer.issuer or ""
    if not signer.identities:
        return [("identity", issuer, "")]
    return [("identity", issuer, identity) for identity in signer.identities]


def _v1(extensions: Mapping[str, Any], oid: str) -> str | None:
    value = extensions.get(oid)
    if isinstance(value, x509.UnrecognizedExtension):
        return value.value.decode("utf-8", errors="replace")
    return None


def _v2(extensions: Mapping[str, Any], oid: str) -> str | None:
    value = extensions.get(oid)
    if isinstance(value, x509.UnrecognizedExtension):
        return _der_utf8(value.value)
    return None


def _der_utf8(der: bytes) -> str | None:
    """A DER UTF8String (tag 12) with a short or long length; None if it is not one."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, offset = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    if offset + length != len(der):
        return None
    return der[offset:].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class IdentityPolicy:
    """Keyless: which identity and issuer (exact or pattern) and which CI claims to trust."""

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    claims: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for pattern in (self.identity_regexp, self.issuer_regexp):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise PolicyArgumentError(
                        f"invalid regular expression {pattern!r}: {e}"
                    ) from None
        unknown = set(self.claims) - set(CLAIMS)
        if unknown:
            raise PolicyArgumentError(f"unknown certificate claims: {', '.join(sorted(unknown))}")

    def mismatches(self, signer: Signer) -> list[str]:
        """Why `signer` is not trusted (empty: it is)."""
        if not signer.keyless:
            return [f"signed with {signer.describe()}, but the policy trusts identities"]
        problems = []
        if self.identity is not None and self.identity not in signer.identities:
            problems.append(f"identity is not {self.identity!r}")
        if self.identity_regexp is not None and not any(
            re.fullmatch(self.identity_regexp, i) for i in signer.identities
        ):
            problems.append(f"no identity matches {self.identity_regexp!r} (whole string)")
        if self.issuer is not None and signer.issuer != self.issuer:
            problems.append(f"issuer is not {self.issuer!r}")
        # A certificate without the issuer extension (Fulcio before 2022) matches as "".
        if self.issuer_regexp is not None and not re.fullmatch(
            self.issuer_regexp, signer.issuer or ""
        ):
            problems.append(f"issuer does not match {self.issuer_regexp!r} (whole string)")
        for name, wanted in self.claims.items():
            found = signer.claims.get(name)
            prefix = CLAIMS[name][2]
            if found is None or (found != wanted and found != prefix + wanted):
                problems.append(f"{name} is {found!r}, not {wanted!r}")
        return problems

    def describe(self) -> dict[str, Any]:
        wanted: dict[str, Any] = {}
        for name in ("identity", "identity_regexp", "issuer", "issuer_regexp"):
            value = getattr(self, name)
            if value is not None:
                wanted[name.replace("_", "-")] = value
        return {**wanted, **self.claims}


@dataclass(frozen=True)
class KeyPolicy:
    """Key-based: signatures must verify with one of these public keys."""

    keys: tuple[PublicKey, ...]
    source: str

    def mismatches(self, signer: Signer) -> list[str]:
        if signer.keyless:
            return [f"signed by {signer.describe()}, but the policy trusts only {self.source}"]
        if signer.key_hint not in {key_hint(k) for k in self.keys}:
            return [f"signed with {signer.describe()}, not with {self.source}"]
        return []

    def describe(self) -> dict[str, Any]:
        return {"key": self.source, "hints": [key_hint(k) for k in self.keys]}


Policy = IdentityPolicy | KeyPolicy


def policy_from_options(
    keys: Sequence[Path] = (),
    *,
    identity: str | None = None,
    identity_regexp: str | None = None,
    issuer: str | None = None,
    issuer_regexp: str | None = None,
    claims: Mapping[str, str | None] | None = None,
) -> Policy:
    """The policy `wasmctl verify`'s options ask for: public key files, or a keyless identity
    and issuer (each exact or a pattern) with CI claims (`CLAIMS` names; None is not given).

    Keys and a keyless policy together, both forms of one value, or a keyless policy
    without both an identity and an issuer are `InputError`s: a policy that trusts less
    than it seems to must not be built.
    """
    wanted = {name: value for name, value in (claims or {}).items() if value is not None}
    keyless = any(x is not None for x in (identity, identity_regexp, issuer, issuer_regexp))
    if keys:
        if keyless or wanted:
            raise InputError("give --key or a keyless identity policy, not both")
        loaded = [load_public_key_file(path) for path in keys]
        return KeyPolicy(tuple(loaded), ", ".join(str(p) for p in keys))
    if (identity and identity_regexp) or (issuer and issuer_regexp):
        raise InputError("give an exact value or a regexp for each of identity and issuer")
    if not (identity or identity_regexp) or not (issuer or issuer_regexp):
        raise InputError(
            "nothing to trust: give --key, or both an identity and an issuer",
            hint="--certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp]",
        )
    return IdentityPolicy(identity, identity_regexp, issuer, issuer_regexp, wanted)
