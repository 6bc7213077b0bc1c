"""`wasmctl attest`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from wasmctl.cli._common import info
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options
from wasmctl.cli.sign import (
    IdentityToken,
    SigningKey,
    TrustConfig,
    is_file_target,
    signing_backend,
)

EXAMPLES = """
Examples:

  wasmctl attest oci:out:v1 --type slsaprovenance1 --predicate provenance.json \\
    --key cosign.key

  wasmctl attest ghcr.io/acme/app:v1 --type openvex --predicate app.vex.json

  wasmctl verify --attestation slsaprovenance1 --key cosign.pub oci:out:v1
"""


def attest(
    target: Annotated[
        str,
        typer.Argument(
            help="An artifact (oci:DIR[:TAG], oci-archive:FILE[:TAG], "
            "REGISTRY/REPO[:TAG|@DIGEST]), or a file.",
            metavar="TARGET",
        ),
    ],
    predicate: Annotated[
        str,
        typer.Option(
            "--predicate",
            help="The predicate: a JSON object (any text for --type custom); - reads "
            "standard input.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--type",
            help="The predicate type: slsaprovenance (SLSA v0.2), slsaprovenance1, "
            "openvex, cyclonedx, spdx, vuln, link, custom, or a URI.",
            metavar="TYPE",
            show_default=False,
        ),
    ],
    key: SigningKey = None,
    identity_token: IdentityToken = None,
    trust_config: TrustConfig = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="For a file: where to write its bundle (default FILE.sigstore.json, "
            "when nothing is there yet: a signature there is never replaced).",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Sign an in-toto attestation about an artifact or a file, as `cosign attest` does.

    The statement's subject is the artifact's manifest digest (a file's sha256), its
    predicate the file given, as it is; --type custom wraps any text as cosign does,
    {"Data": TEXT, "Timestamp": TIME}. Signed as `sign` signs (keyless, or with --key) and
    stored as it stores: a Sigstore bundle as an OCI referrer of the manifest, or a bundle
    beside a file. `wasmctl verify --attestation TYPE` and the gate's `attestations` check it.
    """
    from wasmctl.errors import InputError
    from wasmctl.oci.reference import parse_destination
    from wasmctl.sign.predicate import attestation_type, read_predicate
    from wasmctl.sign.targets import attest_file, attest_reference, refuse_replacing_a_bundle

    attestation_type(kind)  # a bad type before anything is read
    file_target = is_file_target(target)
    if bundle is not None and not file_target:
        raise InputError("--bundle is for files; an artifact's bundle is stored as a referrer")
    # an attestation is written beside the artifact: refuse a bare name before any OIDC flow
    ref = None if file_target else parse_destination(target)
    statement = read_predicate(sys.stdin.buffer if predicate == "-" else Path(predicate), kind)
    if ref is None and bundle is None:
        refuse_replacing_a_bundle(Path(target))  # before any OIDC flow

    with signing_backend(key, identity_token, trust_config) as backend:
        if ref is None:
            written = attest_file(Path(target), statement, backend, bundle)
            info(f"Attested {target} ({statement.type}); bundle written to {written}")
            return
        options = registry_options(plain_http, ca_file) if _remote(ref) else None
        signed = attest_reference(ref, statement, backend, options)
        info(f"Attested {target} ({signed.subject.digest}): {signed.predicate_type}")
        info(f"Attestation stored as referrer {signed.referrer.digest}")


def _remote(ref: object) -> bool:
    from wasmctl.oci.reference import RegistryReference

    return isinstance(ref, RegistryReference)
