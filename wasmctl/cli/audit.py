"""`wasmctl audit` and `wasmctl audit db update`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wasmctl.cli._common import info, one_of, terminal_width, use_color, write_output
from wasmctl.cli._help import choices_metavar
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options

if TYPE_CHECKING:
    from wasmctl.audit import VexTrust
    from wasmctl.audit.model import Ignore
    from wasmctl.audit.osv import Database
    from wasmctl.audit.vex import VexSet

# Named here, not imported: `--help` loads no audit code.
FORMATS = ("table", "json", "sarif", "cyclonedx")
THRESHOLDS = ("any", "low", "medium", "high", "critical")
ECOSYSTEMS = ("crates.io", "Go")

EXAMPLES = """
Examples:

  wasmctl audit db update

  wasmctl audit app.wasm

  wasmctl audit --fail-on high ghcr.io/acme/app:v1

  wasmctl audit --format sarif -o audit.sarif dist/

  wasmctl audit --db /mnt/osv --max-db-age 7d \\
    --ignore-file audit-ignore.yaml oci:out:v1

  wasmctl audit --vex vendor.openvex.json ghcr.io/acme/app:v1

  wasmctl audit --vex-key cosign.pub oci:out:v1

  wasmctl audit --emit-vex app.openvex.json --vex-author ACME app.wasm

Exit codes: 0 nothing at or above --fail-on, 1 found, 2 bad input or no database,
3 registry unreachable, or the database is older than --max-db-age.
"""

DB_EXAMPLES = """
Examples:

  wasmctl audit db update

  wasmctl audit db update --ecosystem crates.io --db /srv/osv

  wasmctl audit db update --source https://mirror.example/osv
"""

Database_ = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="The OSV database: a directory of <ECOSYSTEM>/all.zip (osv-scanner's offline "
        "layout) or of loose OSV JSON records. Default: the user cache directory, "
        "filled by `wasmctl audit db update`.",
        metavar="DIR",
    ),
]


def audit(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Module or component files, directories searched for *.wasm, or artifacts "
            "(oci:DIR[:TAG], oci-archive:FILE[:TAG], REGISTRY/REPO[:TAG|@DIGEST]).",
            metavar="TARGET",
        ),
    ],
    db: Database_ = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="Output format.", metavar=choices_metavar(FORMATS)),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Exit 1 for a vulnerability rated at least this. "
            "`any` includes those of unknown severity (Go's database rates none).",
            metavar=choices_metavar(THRESHOLDS),
        ),
    ] = "any",
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            help="Ignore an advisory (its id or any alias); repeatable. Listed in the report "
            "as ignored.",
            metavar="ID",
        ),
    ] = None,
    ignore_file: Annotated[
        Path | None,
        typer.Option(
            "--ignore-file",
            help="Ignores with reasons and expiry dates (YAML: ignore: [{id, reason, "
            "expires}]). An expired entry ignores nothing.",
            metavar="FILE",
        ),
    ] = None,
    ignore_unreachable: Annotated[
        bool,
        typer.Option(
            "--ignore-unreachable",
            help="Hide findings whose affected functions the module's name section proves "
            "absent (listed as hidden).",
        ),
    ] = False,
    max_db_age: Annotated[
        str | None,
        typer.Option(
            "--max-db-age",
            help="Exit 3 when the database's newest record is older than this (7d, 12h).",
            metavar="AGE",
        ),
    ] = None,
    vex: Annotated[
        list[Path] | None,
        typer.Option(
            "--vex",
            help="An OpenVEX 0.2.0 document; repeatable. A not_affected statement about a "
            "finding's artifact or module (and package) suppresses it: listed as "
            "suppressed, never failing.",
            metavar="FILE",
        ),
    ] = None,
    vex_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--vex-key",
            help="Also read the artifact's OpenVEX attestations that verify with this "
            "public key (cosign.pub); repeatable. Without --vex-key or a --vex-certificate "
            "identity, attestations are not read.",
            metavar="FILE",
        ),
    ] = None,
    vex_identity: Annotated[
        str | None,
        typer.Option(
            "--vex-certificate-identity",
            help="Keyless: read OpenVEX attestations signed by this exact identity.",
            metavar="ID",
        ),
    ] = None,
    vex_identity_regexp: Annotated[
        str | None,
        typer.Option(
            "--vex-certificate-identity-regexp",
            help="Keyless: a pattern the whole signer identity must match (anchored).",
            metavar="REGEX",
        ),
    ] = None,
    vex_issuer: Annotated[
        str | None,
        typer.Option(
            "--vex-certificate-oidc-issuer",
            help="Keyless: the exact OIDC issuer of the attestations' signer.",
            metavar="URL",
        ),
    ] = None,
    vex_issuer_regexp: Annotated[
        str | None,
        typer.Option(
            "--vex-certificate-oidc-issuer-regexp",
            help="Keyless: a pattern the whole issuer must match (anchored).",
            metavar="REGEX",
        ),
    ] = None,
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--trusted-root",
            help="Verify keyless VEX attestations against this Sigstore trusted root "
            "(or client trust config) file: offline, no TUF.",
            metavar="FILE",
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Verify keyless VEX attestations against the production trusted root "
            "embedded in sigstore-python.",
        ),
    ] = False,
    emit_vex: Annotated[
        Path | None,
        typer.Option(
            "--emit-vex",
            help="Also write OpenVEX (not_affected, vulnerable_code_not_present) for the "
            "findings whose listed functions the name section proves absent; written "
            "only when there are some. SOURCE_DATE_EPOCH sets its timestamp.",
            metavar="FILE",
        ),
    ] = None,
    vex_author: Annotated[
        str,
        typer.Option(
            "--vex-author",
            help="The author --emit-vex names: the person or organisation that stands "
            "behind the statements.",
            metavar="NAME",
        ),
    ] = "wasmctl audit",
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Known vulnerabilities of the Rust crates and Go modules inside Wasm modules.

    Dependencies are read as `sbom` reads them (cargo-auditable's .dep-v0, Go's modinfo and
    toolchain) and matched offline against OSV records. Each finding says whether the
    functions it names are present in the module (from its name section): a hint, which
    hides nothing unless --ignore-unreachable. OpenVEX statements (--vex files, and with
    --vex-key or a --vex-certificate identity the artifact's verified attestations) mark
    findings not_affected (suppressed), affected, fixed or under_investigation.
    """
    from wasmctl.audit import AuditOptions, audit_targets
    from wasmctl.audit.model import Threshold
    from wasmctl.audit.report import AuditFormat, render
    from wasmctl.errors import InputError, exit_code_for
    from wasmctl.oci.reference import looks_like_reference

    try:
        chosen = AuditFormat(fmt)
    except ValueError:
        raise InputError(f"--format must be {one_of(FORMATS)}, not {fmt!r}") from None
    try:
        threshold = Threshold(fail_on)
    except ValueError:
        raise InputError(f"--fail-on must be {one_of(THRESHOLDS)}, not {fail_on!r}") from None
    ignores = _ignores(ignore or (), ignore_file)
    if emit_vex is not None and str(emit_vex) == "-" and output in (None, Path("-")):
        raise InputError("--emit-vex - would share stdout with the report",
                         hint="give the report -o FILE, or --emit-vex a file")  # fmt: skip
    if not vex_author.strip():
        raise InputError("--vex-author must name someone")
    statements = _vex_files(vex or ())
    vex_trust = _vex_trust(
        vex_key or (),
        vex_identity,
        vex_identity_regexp,
        vex_issuer,
        vex_issuer_regexp,
        trusted_root,
        offline,
    )
    database = open_database(db, max_db_age)
    remote = any(
        looks_like_reference(t) and not t.startswith(("oci:", "oci-archive:")) for t in targets
    )
    options = registry_options(plain_http, ca_file) if remote else None
    import contextlib
    from datetime import UTC, datetime

    with options if options is not None else contextlib.nullcontext():
        report = audit_targets(
            targets,
            database,
            AuditOptions(
                ignores=ignores,
                fail_on=threshold,
                ignore_unreachable=ignore_unreachable,
                registry=options,
                vex=statements,
                vex_trust=vex_trust,
            ),
        )
    text = render(
        report,
        chosen,
        color=use_color() and output is None,
        width=terminal_width(),
        now=datetime.now(UTC),
    )
    emitted = None
    if emit_vex is not None:
        from wasmctl.audit.vex import emit

        emitted = emit(report, author=vex_author.strip())
    write_output(text, output)
    if emit_vex is not None:
        if emitted is None:
            info(f"--emit-vex: no finding's functions are proven absent; {emit_vex} not written")
        else:
            write_output(emitted, emit_vex)
            if str(emit_vex) != "-":
                info(f"OpenVEX written to {emit_vex}")
    if vex_trust is not None and not any(t.subject and t.subject.artifact for t in report.targets):
        info("note: VEX attestations are read from artifacts; no target is one")
    for expired in report.expired:
        info(f"warning: the ignore of {expired.id} ({expired.source}) expired on "
             f"{expired.expires}: it ignores nothing")  # fmt: skip
    code = exit_code_for(report.verdict, remote=report.remote_failure)
    if output is not None:
        info(f"audit {report.verdict}: report written to {output}")
    if code:
        raise typer.Exit(code)


def open_database(db: Path | None, max_age: str | None) -> Database:
    """The database at `--db` or the default place, checked against `--max-db-age`."""
    from datetime import UTC, datetime

    from wasmctl.audit import db as databases

    limit = databases.parse_duration(max_age) if max_age is not None else None
    database = databases.load(db)
    if limit is not None:
        databases.check_age(database, limit, datetime.now(UTC))
    return database


def _vex_files(paths: list[Path] | tuple[Path, ...]) -> VexSet | None:
    if not paths:
        return None
    from wasmctl.audit.vex import VexSet, load_files

    return VexSet(load_files(paths))


def _vex_trust(
    keys: list[Path] | tuple[Path, ...],
    identity: str | None,
    identity_regexp: str | None,
    issuer: str | None,
    issuer_regexp: str | None,
    trusted_root: Path | None,
    offline: bool,
) -> VexTrust | None:
    """Whose VEX attestations are read, from the --vex-* trust flags; None without them."""
    from wasmctl.errors import InputError

    keyless = (identity, identity_regexp, issuer, issuer_regexp)
    if not keys and all(x is None for x in keyless):
        if trusted_root is not None or offline:
            raise InputError(
                "--trusted-root and --offline are for verifying VEX attestations",
                hint="say whose to read: --vex-key FILE, or --vex-certificate-identity[-regexp] "
                "with --vex-certificate-oidc-issuer[-regexp]",
            )
        return None
    from wasmctl.audit import VexTrust
    from wasmctl.sign.policy import policy_from_options
    from wasmctl.sign.verifier import TrustSource

    try:
        policy = policy_from_options(
            keys,
            identity=identity,
            identity_regexp=identity_regexp,
            issuer=issuer,
            issuer_regexp=issuer_regexp,
        )
    except InputError as e:  # its words are verify's flags: name these
        message = e.message.replace("--key", "--vex-key").replace(
            "identity policy", "identity policy (--vex-certificate-*)"
        )
        raise InputError(message, hint=e.hint and e.hint.replace("--cert", "--vex-cert")) from None
    return VexTrust(policy, TrustSource(trusted_root, offline))


def _ignores(ids: list[str] | tuple[str, ...], path: Path | None) -> tuple[Ignore, ...]:
    from wasmctl._files import read_limited
    from wasmctl.audit.model import Ignore, load_ignore_file
    from wasmctl.errors import InputError

    given = []
    for ident in ids:
        if not ident.strip() or any(c.isspace() for c in ident.strip()):
            raise InputError(f"--ignore takes an advisory id (RUSTSEC-2022-0013), not {ident!r}")
        given.append(Ignore(ident.strip(), "given with --ignore", None, "--ignore"))
    if path is not None:
        text = read_limited(path, 1 << 20, "ignore file").decode("utf-8", "replace")
        given += load_ignore_file(text, str(path))
    return tuple(given)


def db_update(
    ecosystem: Annotated[
        list[str] | None,
        typer.Option(
            "--ecosystem",
            help=f"An OSV ecosystem to fetch; repeatable. Default: {one_of(ECOSYSTEMS)}.",
            metavar="NAME",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Where <ECOSYSTEM>/all.zip is fetched from: osv.dev's public bucket, or "
            "a mirror (https://, or file:// for a local copy).",
            metavar="URL",
        ),
    ] = None,
    db: Database_ = None,
) -> None:
    """Fetch or refresh the offline OSV database.

    Downloads only what changed, verifies every archive before it replaces the old one,
    and replaces atomically: an interrupted update leaves the old database working.
    """
    from wasmctl.audit import db as databases

    directory = db if db is not None else databases.default_dir()
    results = databases.update(
        directory, tuple(ecosystem or ECOSYSTEMS), source or databases.DEFAULT_SOURCE
    )
    for result in results:
        info(f"{result.ecosystem}: {result.status.replace('-', ' ')} "
             f"({result.records} records, sha256:{result.sha256[:12]})")  # fmt: skip
    info(f"database: {directory}")
