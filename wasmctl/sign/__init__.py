"""Signing and verification: cosign keys, Sigstore bundles, and where they live in OCI."""

from wasmctl.oci.media_types import CYCLONEDX_PREDICATE, SPDX_PREDICATE

# `cosign attest --type` names for the common in-toto predicate types
# (sigstore/cosign cmd/cosign/cli/options/predicate.go); a URI is taken as it is.
PREDICATE_ALIASES = {
    "cyclonedx": CYCLONEDX_PREDICATE,
    "spdx": SPDX_PREDICATE,
    "spdxjson": SPDX_PREDICATE,
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "openvex": "https://openvex.dev/ns",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "link": "https://in-toto.io/Link/v1",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
}


def predicate_type(name: str) -> str:
    """The predicate type URI for an alias (`cyclonedx`) or a URI.

    A word that is no alias is refused, not taken as a URI: `slsa` or `provenance` is a
    mistake (cosign's `ParsePredicateType` refuses it too), and would match nothing."""
    from wasmctl.errors import InputError

    if name in PREDICATE_ALIASES:
        return PREDICATE_ALIASES[name]
    if name and (":" in name or "/" in name) and not any(c.isspace() for c in name):
        return name
    raise InputError(
        f"unknown predicate type {name!r}",
        hint=f"give a URI, or one of {', '.join(PREDICATE_ALIASES)}",
    )
