"""`wasmctl generate-key-pair`, `sign`, `verify`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wasmctl.cli._common import info, write_output
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options
from wasmctl.sign.report import VerifyFormat

if TYPE_CHECKING:
    from wasmctl.sign.signer import SigningBackend

KEYPAIR_EXAMPLES = """
Examples:

  wasmctl generate-key-pair                 # cosign.key, cosign.pub

  COSIGN_PASSWORD=... wasmctl generate-key-pair --output-key-prefix release
"""
SIGN_EXAMPLES = """
Examples:

  wasmctl sign --key cosign.key oci:out:v1

  wasmctl sign ghcr.io/acme/app:v1          # keyless: CI's token, or a browser

  wasmctl sign --key cosign.key app.wasm    # writes app.wasm.sigstore.json
"""
VERIFY_EXAMPLES = """
Examples:

  wasmctl verify --key cosign.pub oci:out:v1

  wasmctl verify ghcr.io/acme/app:v1 --offline \\
    --certificate-identity-regexp 'https://github.com/acme/app/.*' \\
    --certificate-oidc-issuer https://token.actions.githubusercontent.com

  wasmctl verify app.wasm --bundle app.wasm.sigstore.json --key cosign.pub \\
    --trusted-root root.json

  wasmctl verify ghcr.io/acme/app:v1 --attestation slsaprovenance \\
    --certificate-identity-regexp "$SLSA_GENERATOR/.*" \\
    --certificate-oidc-issuer https://token.actions.githubusercontent.com \\
    --source-uri github.com/acme/app --source-ref-regexp 'refs/tags/v.*'
"""


SigningKey = Annotated[
    Path | None,
    typer.Option(
        "--key", help="Sign with this cosign private key (no transparency log).", metavar="FILE"
    ),
]
IdentityToken = Annotated[
    str | None,
    typer.Option(
        "--identity-token",
        help="Keyless: this OIDC token, instead of the CI's or a browser flow.",
        metavar="TOKEN",
        show_default=False,
    ),
]
TrustConfig = Annotated[
    Path | None,
    typer.Option(
        "--trust-config",
        help="Keyless: a Sigstore client trust config (private deployments); default "
        "the public-good instance over TUF.",
        metavar="FILE",
    ),
]
BundleOption = Annotated[
    Path | None,
    typer.Option(
        "--bundle",
        help="For a file: where to write its bundle (default FILE.sigstore.json).",
        metavar="PATH",
    ),
]
BundleToRead = Annotated[
    Path | None,
    typer.Option(
        "--bundle",
        help="For a file: the bundle to verify it with (default FILE.sigstore.json).",
        metavar="PATH",
    ),
]


def _password(prompt: str, *, confirm: bool) -> bytes:
    """`COSIGN_PASSWORD` if set (even empty), else a prompt at a terminal."""
    from wasmctl.errors import InputError
    from wasmctl.sign.keys import read_password

    password = read_password(os.environ)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise InputError("no password for the key", hint="set COSIGN_PASSWORD (it may be empty)")
    text: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, default="")
    return text.encode()


def generate_key_pair(
    output_key_prefix: Annotated[
        str,
        typer.Option(
            "--output-key-prefix",
            help="Write PREFIX.key and PREFIX.pub; a directory (an existing one, or a "
            "PREFIX ending in /) gets DIR/cosign.key and DIR/cosign.pub.",
            metavar="PREFIX",
        ),
    ] = "cosign",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
) -> None:
    """Write a cosign-compatible key pair: an encrypted private key and its public key.

    The password comes from COSIGN_PASSWORD, else a prompt. The private key is ECDSA P-256,
    encrypted with scrypt and NaCl secretbox, as `cosign generate-key-pair` writes it.
    """
    from wasmctl.sign.keys import generate_key_pair as generate
    from wasmctl.sign.keys import write_key_pair

    prefix = Path(output_key_prefix)
    if output_key_prefix.endswith(("/", os.sep)) or prefix.is_dir():
        prefix /= "cosign"  # not `adir.key` beside the directory that was named
    password = _password("Password for the private key", confirm=True)
    key_path, pub_path = write_key_pair(generate(password), prefix, force=force)
    info(f"Private key written to {key_path}")
    info(f"Public key written to {pub_path}")


def is_file_target(target: str) -> bool:
    from wasmctl.oci.reference import looks_like_reference

    if target.startswith(("oci:", "oci-archive:")):
        return False
    return Path(target).is_file() or not looks_like_reference(target)


def _remote(ref: object) -> bool:
    from wasmctl.oci.reference import RegistryReference

    return isinstance(ref, RegistryReference)


def sign(
    target: Annotated[
        str,
        typer.Argument(
            help="A file, or an artifact (oci:DIR[:TAG], oci-archive:FILE[:TAG], "
            "REGISTRY/REPO[:TAG|@DIGEST]).",
            metavar="TARGET",
        ),
    ],
    key: SigningKey = None,
    identity_token: IdentityToken = None,
    trust_config: TrustConfig = None,
    bundle: BundleOption = None,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Sign a file or an artifact, keyless (Sigstore) or with a cosign key.

    An artifact's signature is a Sigstore bundle stored as an OCI referrer of its manifest
    (cosign v3's layout); a file's is a bundle beside it, as `cosign sign-blob --bundle`.
    """
    from wasmctl.errors import InputError
    from wasmctl.oci.reference import parse_destination
    from wasmctl.sign.targets import sign_file, sign_reference

    file_target = is_file_target(target)
    if bundle is not None and not file_target:
        raise InputError("--bundle is for files; an artifact's bundle is stored as a referrer")
    # a signature is written beside the artifact: refuse a bare name before any OIDC flow
    ref = None if file_target else parse_destination(target)

    with signing_backend(key, identity_token, trust_config) as backend:
        if ref is None:
            written = sign_file(Path(target), backend, bundle)
            info(f"Signed {target}; bundle written to {written}")
            return
        options = registry_options(plain_http, ca_file) if _remote(ref) else None
        signed = sign_reference(ref, backend, options)
        info(f"Signed {target} ({signed.subject.digest})")
        info(f"Signature stored as referrer {signed.referrer.digest}")


@contextlib.contextmanager
def signing_backend(
    key: Path | None, identity_token: str | None, trust_config: Path | None
) -> Iterator[SigningBackend]:
    """A cosign key's signer, or keyless signing (which needs the context: one certificate
    serves every signature made in it)."""
    from wasmctl.errors import InputError
    from wasmctl.sign.signer import KeylessSigning, KeySigning

    if key is not None:
        if identity_token or trust_config:
            raise InputError("--key signs without Sigstore: drop --identity-token/--trust-config")
        yield KeySigning(_load_private_key(key))
        return
    with KeylessSigning(trust_config=trust_config, identity_token=identity_token) as keyless:
        info(f"Signing keyless as {keyless.identity}")
        yield keyless


def _load_private_key(path: Path) -> Any:
    from wasmctl.sign.keys import load_private_key, read_key_file

    data = read_key_file(path)
    if b"ENCRYPTED" not in data:
        return load_private_key(data, b"", source=str(path))
    return load_private_key(
        data, _password(f"Password for {path}", confirm=False), source=str(path)
    )


def verify(
    target: Annotated[
        str,
        typer.Argument(help="A file (with --bundle), or an artifact reference.", metavar="TARGET"),
    ],
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            help="Trust signatures by this public key (cosign.pub); repeatable.",
            metavar="FILE",
        ),
    ] = None,
    certificate_identity: Annotated[
        str | None,
        typer.Option(
            "--certificate-identity",
            help="Keyless: the exact signer identity (email, or URI such as a workflow).",
            metavar="ID",
        ),
    ] = None,
    certificate_identity_regexp: Annotated[
        str | None,
        typer.Option(
            "--certificate-identity-regexp",
            help="Keyless: a pattern the whole identity must match (anchored, unlike cosign's).",
            metavar="REGEX",
        ),
    ] = None,
    certificate_oidc_issuer: Annotated[
        str | None,
        typer.Option(
            "--certificate-oidc-issuer", help="Keyless: the exact OIDC issuer.", metavar="URL"
        ),
    ] = None,
    certificate_oidc_issuer_regexp: Annotated[
        str | None,
        typer.Option(
            "--certificate-oidc-issuer-regexp",
            help="Keyless: a pattern the whole issuer must match (anchored).",
            metavar="REGEX",
        ),
    ] = None,
    github_repository: Annotated[
        str | None,
        typer.Option(
            "--github-repository",
            "--certificate-github-workflow-repository",
            help="Keyless: the GitHub repository (owner/name) that signed.",
            metavar="REPO",
        ),
    ] = None,
    github_ref: Annotated[
        str | None,
        typer.Option(
            "--github-ref",
            "--certificate-github-workflow-ref",
            help="Keyless: the git ref the workflow ran on (refs/tags/v1).",
            metavar="REF",
        ),
    ] = None,
    github_workflow_trigger: Annotated[
        str | None,
        typer.Option(
            "--github-workflow-trigger",
            "--certificate-github-workflow-trigger",
            help="Keyless: the event that started the workflow (push, release).",
            metavar="EVENT",
        ),
    ] = None,
    github_workflow_sha: Annotated[
        str | None,
        typer.Option(
            "--github-workflow-sha",
            "--certificate-github-workflow-sha",
            help="Keyless: the commit the workflow ran on.",
            metavar="SHA",
        ),
    ] = None,
    github_workflow_name: Annotated[
        str | None,
        typer.Option(
            "--github-workflow-name",
            "--certificate-github-workflow-name",
            help="Keyless: the workflow's name.",
            metavar="NAME",
        ),
    ] = None,
    attestation: Annotated[
        str | None,
        typer.Option(
            "--attestation",
            help="Verify attestations of this predicate type (a URI, "
            "or cyclonedx, spdx, slsaprovenance1, ...) instead of signatures.",
            metavar="TYPE",
        ),
    ] = None,
    builder_id: Annotated[
        str | None,
        typer.Option(
            "--builder-id",
            help="Provenance: the builder id; without @VERSION, that builder at any version "
            "(as slsa-verifier).",
            metavar="ID",
        ),
    ] = None,
    builder_id_regexp: Annotated[
        str | None,
        typer.Option(
            "--builder-id-regexp",
            help="Provenance: a pattern the whole builder id must match.",
            metavar="REGEX",
        ),
    ] = None,
    build_type: Annotated[
        str | None,
        typer.Option(
            "--build-type",
            help="Provenance: the exact build type URI.",
            metavar="URI",
        ),
    ] = None,
    source_uri: Annotated[
        str | None,
        typer.Option(
            "--source-uri",
            help="Provenance: the source repository (github.com/o/r; https:// and .git "
            "forms are the same repository).",
            metavar="REPO",
        ),
    ] = None,
    source_tag: Annotated[
        str | None,
        typer.Option(
            "--source-tag",
            help="Provenance: built from this tag (refs/tags/TAG).",
            metavar="TAG",
        ),
    ] = None,
    source_branch: Annotated[
        str | None,
        typer.Option(
            "--source-branch",
            help="Provenance: built from this branch (refs/heads/BRANCH).",
            metavar="BRANCH",
        ),
    ] = None,
    source_ref: Annotated[
        str | None,
        typer.Option(
            "--source-ref",
            help="Provenance: built from this exact git ref (refs/tags/v1).",
            metavar="REF",
        ),
    ] = None,
    source_ref_regexp: Annotated[
        str | None,
        typer.Option(
            "--source-ref-regexp",
            help="Provenance: a pattern the whole ref must match ('refs/tags/.*': tags only).",
            metavar="REGEX",
        ),
    ] = None,
    source_commit: Annotated[
        str | None,
        typer.Option(
            "--source-commit",
            help="Provenance: built from this commit (the full hex id).",
            metavar="SHA",
        ),
    ] = None,
    entry_point: Annotated[
        str | None,
        typer.Option(
            "--entry-point",
            help="Provenance: the workflow that ran the build (.github/workflows/release.yml).",
            metavar="PATH",
        ),
    ] = None,
    require: Annotated[
        int,
        typer.Option(
            "--require",
            min=1,
            metavar="N",
            help="How many distinct signers (keys, or keyless identities) must have "
            "signed; copies of one signer's signature count once.",
        ),
    ] = 1,
    bundle: BundleToRead = None,
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--trusted-root",
            help="Verify against this Sigstore trusted root "
            "(or client trust config) file: offline, no TUF.",
            metavar="FILE",
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Use the production trusted root embedded in "
            "sigstore-python; no network but the artifact's registry.",
        ),
    ] = False,
    fmt: Annotated[
        VerifyFormat, typer.Option("--format", "-f", help="Output format.")
    ] = VerifyFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Verify signatures (or attestations) against a key or a keyless identity policy.

    Every signature found is checked (referrers, the referrers tag, cosign's .sig and .att
    tags); the target passes when signatures by --require distinct signers verify (one key,
    or one keyless identity and issuer, counts once however many copies are stored). Regexes
    are matched against the whole value (re.fullmatch). Exit 1 shows what was found next to
    what was asked.

    With --attestation slsaprovenance (or slsaprovenance1), an attestation counts only when
    its provenance also meets the --builder-id/--source-* conditions, and, signed keyless in
    GitHub Actions, names the source its certificate names (repository, ref, commit,
    workflow).
    """
    from wasmctl.errors import exit_code_for
    from wasmctl.oci.reference import parse_reference
    from wasmctl.sign.policy import policy_from_options
    from wasmctl.sign.report import render, verdict
    from wasmctl.sign.targets import verify_file, verify_reference
    from wasmctl.sign.verifier import TrustSource

    policy = policy_from_options(
        key or (),
        identity=certificate_identity,
        identity_regexp=certificate_identity_regexp,
        issuer=certificate_oidc_issuer,
        issuer_regexp=certificate_oidc_issuer_regexp,
        claims={
            "github-repository": github_repository,
            "github-ref": github_ref,
            "github-workflow-trigger": github_workflow_trigger,
            "github-workflow-sha": github_workflow_sha,
            "github-workflow-name": github_workflow_name,
        },
    )
    trust = TrustSource(trusted_root, offline)
    from wasmctl.sign import predicate_type

    predicate = predicate_type(attestation) if attestation else None
    conditions = _provenance_conditions(
        predicate,
        builder_id=builder_id,
        builder_id_regexp=builder_id_regexp,
        build_type=build_type,
        source_uri=source_uri,
        source_tag=source_tag,
        source_branch=source_branch,
        source_ref=source_ref,
        source_ref_regexp=source_ref_regexp,
        source_commit=source_commit,
        entry_point=entry_point,
    )
    if is_file_target(target):
        result = verify_file(
            Path(target), policy, trust, bundle_path=bundle, predicate_type=predicate
        )
    else:
        from wasmctl.errors import InputError

        if bundle is not None:
            raise InputError("--bundle is for files; an artifact's bundles are found by reference")
        ref = parse_reference(target)
        options = registry_options(plain_http, ca_file) if _remote(ref) else None
        result = verify_reference(
            ref, policy, trust, options, predicate_type=predicate, required=require
        )
    from wasmctl.sign.provenance import PROVENANCE_TYPES, apply_conditions

    if predicate in PROVENANCE_TYPES:
        result = apply_conditions(result, conditions)
    write_output(render(result, fmt), output)
    code = exit_code_for(verdict(result))
    if code:
        raise typer.Exit(code)


def _provenance_conditions(predicate: str | None, **options: str | None) -> Any:
    """The provenance conditions the options ask for (None: none); an input error when they
    are given for anything but SLSA provenance, which alone says what they are about."""
    from wasmctl.errors import InputError
    from wasmctl.sign.provenance import PROVENANCE_TYPES, provenance_conditions

    given = [f"--{name.replace('_', '-')}" for name, value in options.items() if value is not None]
    if given and predicate not in PROVENANCE_TYPES:
        what = f"--attestation {predicate}" if predicate else "signatures"
        raise InputError(
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} about SLSA provenance, "
            f"not {what}",
            hint="verify provenance with --attestation slsaprovenance (v0.2) "
            "or --attestation slsaprovenance1 (v1)",
        )
    return provenance_conditions(**options)
