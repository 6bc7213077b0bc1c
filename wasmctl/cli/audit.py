"""`wasmctl audit` and `wasmctl audit db update`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wasmctl.cli._common import info, one_of, terminal_width, use_color, write_output
from wasmctl.cli._help import choices_metavar
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options

if TYPE_CHECKING:
    from wasmctl.audit.model import Ignore
    from wasmctl.audit.osv import Database

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
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Known vulnerabilities of the Rust crates and Go modules inside Wasm modules.

    Dependencies are read as `sbom` reads them (cargo-auditable's .dep-v0, Go's modinfo and
    toolchain) and matched offline against OSV records. Each finding says whether the
    functions it names are present in the module (from its name section): a hint, which
    hides nothing unless --ignore-unreachable.
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
            ),
        )
    text = render(
        report,
        chosen,
        color=use_color() and output is None,
        width=terminal_width(),
        now=datetime.now(UTC),
    )
    write_output(text, output)
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
