"""`wasmctl push`, `pull`, `copy`, `tag`, `login`, `logout`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wasmctl.cli._common import info

if TYPE_CHECKING:
    from wasmctl.oci.source import RegistryOptions


def _plain_http_hosts(values: list[str] | None) -> list[str] | None:
    """Each `--plain-http` value as a host, checked as it is parsed: a flag that takes a
    value must not take the next argument (`--plain-http oci:out:v1 REF`) silently."""
    from wasmctl.errors import InputError
    from wasmctl.oci.reference import plain_http_host

    try:
        return [plain_http_host(value) for value in values] if values else values
    except InputError as e:
        raise typer.BadParameter(e.diagnostics()) from None


PlainHttp = Annotated[
    list[str] | None,
    typer.Option(
        "--plain-http",
        help="Talk HTTP, not HTTPS, to this registry: host:port, or a host for any port; "
        "repeatable. Loopback registries (localhost, 127.0.0.0/8, ::1) are plain HTTP "
        "already, unless --ca-file is given.",
        metavar="HOST",
        callback=_plain_http_hosts,
    ),
]
CaFile = Annotated[
    Path | None,
    typer.Option("--ca-file", help="Trust this CA bundle (PEM) for TLS.", metavar="FILE"),
]

PUSH_EXAMPLES = """
Examples:

  wasmctl push oci:out:v1 ghcr.io/acme/app:v1

  wasmctl push oci-archive:app.tar localhost:5000/app:v1
"""
PULL_EXAMPLES = """
Examples:

  wasmctl pull ghcr.io/acme/app:v1 -o modules/

  wasmctl pull ghcr.io/acme/app@sha256:… -o .
"""
COPY_EXAMPLES = """
Examples:

  wasmctl copy ghcr.io/acme/app:v1 oci:mirror:v1

  wasmctl copy ghcr.io/acme/app:v1 registry.internal/acme/app:v1
"""
TAG_EXAMPLES = """
Examples:

  wasmctl tag ghcr.io/acme/app:v1.2.3 v1

  wasmctl tag oci:out:v1 stable
"""
LOGIN_EXAMPLES = """
Examples:

  echo "$TOKEN" | wasmctl login ghcr.io -u octocat --password-stdin

  wasmctl logout ghcr.io
"""


def registry_options(plain_http: list[str] | None, ca_file: Path | None) -> RegistryOptions:
    """Registry settings from the command line, with progress bars at a terminal."""
    from wasmctl.cli._progress import transfer_progress
    from wasmctl.oci.source import RegistryOptions

    return RegistryOptions(
        plain_http=frozenset(plain_http or ()), ca_file=ca_file, progress=transfer_progress()
    )


def _report(verb: str, src: object, dst: object, digest: str, stats: object) -> None:
    sent = getattr(stats, "blobs_sent", 0)
    skipped = getattr(stats, "blobs_skipped", 0)
    size = getattr(stats, "bytes_sent", 0)
    info(f"{verb} {src} -> {dst}: {sent} blob(s) sent ({size:,} bytes), {skipped} already there")
    typer.echo(digest)


def push(
    src: Annotated[
        str, typer.Argument(help="oci:DIR[:TAG] or oci-archive:FILE[:TAG].", metavar="SRC")
    ],
    ref: Annotated[str, typer.Argument(help="REGISTRY/REPO[:TAG].", metavar="REF")],
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Push an artifact from a local layout to a registry; prints its digest.

    Blobs the registry already has are not sent again.
    """
    from wasmctl.errors import InputError
    from wasmctl.oci.reference import RegistryReference, parse_destination, parse_reference
    from wasmctl.oci.transfer import copy

    source, destination = parse_reference(src), parse_destination(ref)
    if isinstance(source, RegistryReference) or not isinstance(destination, RegistryReference):
        raise InputError(
            "push takes a local layout (oci:, oci-archive:) and a registry reference",
            hint="use wasmctl copy for any other direction",
        )
    root, stats = copy(source, destination, registry_options(plain_http, ca_file))
    _report("pushed", source, destination, root.digest, stats)


def pull(
    ref: Annotated[
        str, typer.Argument(help="REGISTRY/REPO[:TAG|@DIGEST], or a layout.", metavar="REF")
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Directory for the module file(s).", metavar="DIR"),
    ] = Path("."),
    all_layers: Annotated[
        bool,
        typer.Option(
            "--all-layers",
            help="Also write layers that are not Wasm modules, each under its title.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace files that already exist in DIR.")
    ] = False,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Pull an artifact and write its module file(s) under their titles.

    Only Wasm modules are written (*.wasm), unless --all-layers. Digests are verified while
    they stream; a title that is absolute, contains `..`, a path separator or a control
    character is refused, and an existing file is not replaced without --force: every name
    is checked before anything is written. Works on every format inspect names.
    """
    from wasmctl.oci.reference import parse_reference
    from wasmctl.oci.transfer import pull_modules

    written = pull_modules(
        parse_reference(ref),
        output,
        registry_options(plain_http, ca_file),
        all_layers=all_layers,
        force=force,
    )
    for path in written:
        info(f"wrote {path}")
        typer.echo(str(path))


def copy_cmd(
    src: Annotated[
        str, typer.Argument(help="Registry reference, oci: or oci-archive:.", metavar="SRC")
    ],
    dst: Annotated[
        str, typer.Argument(help="Registry reference, oci: or oci-archive:.", metavar="DST")
    ],
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive",
            "-r",
            help="Carry referrers along (signatures, SBOMs, attestations), and theirs.",
        ),
    ] = False,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Copy an artifact between registries, layouts and archives; prints its digest."""
    from wasmctl.oci.reference import parse_destination, parse_reference
    from wasmctl.oci.transfer import copy

    source, destination = parse_reference(src), parse_destination(dst)
    root, stats = copy(
        source, destination, registry_options(plain_http, ca_file), recursive=recursive
    )
    for detail in stats.details:
        info(f"  {detail}")
    _report("copied", source, destination, root.digest, stats)


def tag_cmd(
    ref: Annotated[
        str, typer.Argument(help="What to tag: a registry reference or a layout.", metavar="REF")
    ],
    new_tag: Annotated[str, typer.Argument(help="The new tag.", metavar="TAG")],
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Point another tag at an artifact, in the same repository or layout."""
    from wasmctl.errors import InputError
    from wasmctl.oci.reference import TAG_RE, parse_destination
    from wasmctl.oci.transfer import tag

    if not TAG_RE.match(new_tag):
        raise InputError(f"bad tag {new_tag!r}")
    descriptor = tag(parse_destination(ref), new_tag, registry_options(plain_http, ca_file))
    info(f"tagged {descriptor.digest} as {new_tag}")
    typer.echo(descriptor.digest)


MAX_PASSWORD = 64 << 10  # tokens are JWTs of a few KiB; nothing real comes near this


def login(
    registry: Annotated[str, typer.Argument(help="The registry host[:port].", metavar="REGISTRY")],
    username: Annotated[str, typer.Option("--username", "-u", help="User name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password or token from stdin.")
    ] = False,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Check credentials against a registry and store them as docker does.

    They go to the configured credential store, else to config.json (REGISTRY_AUTH_FILE,
    DOCKER_CONFIG or ~/.docker/config.json). Without --password-stdin the password is asked
    for without echo.
    """
    from wasmctl.errors import InputError
    from wasmctl.oci.auth import Credentials, store_credentials
    from wasmctl.oci.reference import speaks_plain_http
    from wasmctl.oci.registry import RegistryClient

    if password_stdin:
        # one line, bounded: `< /dev/zero` must not grow memory until the kernel steps in
        line = sys.stdin.readline(MAX_PASSWORD + 1)
        if len(line.rstrip("\r\n")) > MAX_PASSWORD:
            raise InputError(f"the password on stdin is longer than {MAX_PASSWORD} characters")
        password = line.rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True)
    else:
        raise InputError("no password: use --password-stdin, or run at a terminal")
    if not password:
        raise InputError("the password is empty")
    credentials = Credentials(username, password)
    hosts = frozenset(plain_http or ())
    with RegistryClient(
        registry,
        credentials=credentials,
        use_config=False,
        plain_http=speaks_plain_http(registry, hosts, ca_file=ca_file is not None),
        ca_file=ca_file,
    ) as client:
        client.ping()
    where = store_credentials(registry, credentials)
    info(f"Login Succeeded: credentials for {registry} stored in {where}")


def logout(
    registry: Annotated[str, typer.Argument(help="The registry host[:port].", metavar="REGISTRY")],
) -> None:
    """Forget the stored credentials of a registry."""
    from wasmctl.oci.auth import remove_credentials

    if remove_credentials(registry):
        info(f"Removed login credentials for {registry}")
    else:
        info(f"Not logged in to {registry}")
