"""`wasmctl sbom`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from wasmctl.cli._common import info, write_output
from wasmctl.cli._help import HelpCommand
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options
from wasmctl.cli.sign import (
    IdentityToken,
    SigningKey,
    TrustConfig,
    is_file_target,
    signing_backend,
)
from wasmctl.sbom import SbomFormat

EXAMPLES = """
Examples:

  wasmctl sbom app.wasm -o app.cdx.json

  wasmctl sbom --format spdx-json oci:out:v1

  wasmctl sbom ghcr.io/acme/app:v1 --attach ghcr.io/acme/app:v1

  wasmctl sbom oci:out:v1 --attest --key cosign.key
"""


class SbomCommand(HelpCommand):
    """`sbom`, whose `--attest` may come without a value: then it means TARGET."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, attest_alone(args))


def attest_alone(args: list[str]) -> list[str]:
    """`--attest` last, or followed by another option, as `--attest=` (the target): the
    parser has no option whose value may be left out, and `--attest REF` keeps its REF."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        following = out[i + 1] if i + 1 < len(out) else None
        if arg == "--attest" and (
            following is None or (following.startswith("-") and following != "-")
        ):
            out[i] = "--attest="
    return out


def sbom(
    target: Annotated[
        str,
        typer.Argument(
            help="A module file, or an artifact (oci:DIR[:TAG], oci-archive:FILE[:TAG], "
            "REGISTRY/REPO[:TAG|@DIGEST]) whose Wasm modules are described.",
            metavar="TARGET",
        ),
    ],
    fmt: Annotated[
        SbomFormat, typer.Option("--format", "-f", help="SBOM format.")
    ] = SbomFormat.CYCLONEDX_JSON,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
    attach: Annotated[
        str | None,
        typer.Option(
            "--attach",
            help="Also store the SBOM as an OCI referrer of this artifact (unsigned).",
            metavar="REF",
        ),
    ] = None,
    attest: Annotated[
        str | None,
        typer.Option(
            "--attest",
            help="Also sign the SBOM into an in-toto attestation about REF, stored as a "
            "referrer (keyless, or with --key). Without REF (last, or before another "
            "option): about TARGET.",
            metavar="[REF]",
        ),
    ] = None,
    with_vulnerabilities: Annotated[
        bool,
        typer.Option(
            "--with-vulnerabilities",
            help="Add the known vulnerabilities `wasmctl audit` finds (CycloneDX only): "
            "the document `audit --format cyclonedx` writes.",
        ),
    ] = False,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="With --with-vulnerabilities: the OSV database (default: the one "
            "`wasmctl audit db update` fetched).",
            metavar="DIR",
        ),
    ] = None,
    key: SigningKey = None,
    identity_token: IdentityToken = None,
    trust_config: TrustConfig = None,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Describe a module or an artifact: what it is, what it can reach, what it was built from.

    CycloneDX 1.6 or SPDX 2.3 JSON, validated before anything is written; the same input
    gives the same bytes (timestamps from SOURCE_DATE_EPOCH).
    """
    from wasmctl.errors import InputError
    from wasmctl.oci.reference import RegistryReference, parse_destination, parse_reference
    from wasmctl.sbom import attach as attach_sbom
    from wasmctl.sbom import attest as attest_sbom
    from wasmctl.sbom import sbom_for_file, sbom_for_reference

    if (key or identity_token or trust_config) and attest is None:
        raise InputError("--key, --identity-token and --trust-config are for --attest")
    if attest == "":  # `--attest` alone: the artifact described
        if is_file_target(target):
            raise InputError(
                f"--attest without REF attests TARGET, and {target} is a file",
                hint="an attestation is stored beside an artifact: build it into oci:DIR:TAG "
                "or push it, and attest that",
            )
        attest = target
    if db is not None and not with_vulnerabilities:
        raise InputError("--db is for --with-vulnerabilities")
    database = None
    if with_vulnerabilities:
        from wasmctl.audit import db as databases

        database = databases.load(db)
    # both write a referrer: a bare name is refused before any work is done
    attach_ref = parse_destination(attach) if attach is not None else None
    attest_ref = parse_destination(attest) if attest is not None else None
    remote = any(
        isinstance(parse_reference(r), RegistryReference)
        for r in (target, attach, attest)
        if r and not is_file_target(r)
    )
    options = registry_options(plain_http, ca_file) if remote else None
    # one session per registry for the whole command: the artifact is resolved once
    with options if options is not None else contextlib.nullcontext():
        chosen = fmt
        if is_file_target(target):
            result = sbom_for_file(Path(target), chosen, database)
        else:
            result = sbom_for_reference(parse_reference(target), chosen, options, database)
        write_output(result.text, output)
        if attach_ref is not None:
            stored = attach_sbom(result, attach_ref, options)
            info(f"SBOM attached to {attach} as referrer {stored.digest}")
        if attest_ref is not None:
            with signing_backend(key, identity_token, trust_config) as backend:
                signed = attest_sbom(result, attest_ref, backend, options)
            info(f"SBOM attested for {attest} ({signed.subject.digest}) as referrer "
                 f"{signed.referrer.digest}")  # fmt: skip
