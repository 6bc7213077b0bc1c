"""`wasmctl build`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from wasmctl.cli._common import info
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options

EXAMPLES = """
Examples:

  wasmctl build app.wasm -t oci:out:v1

  wasmctl build --format compat --index app.wasm -t oci:out:v1-compat

  wasmctl build bundle.tar.gz -t oci-archive:policy.tar:v3 --version 3.0.0

SOURCE_DATE_EPOCH sets the creation time (default 1970-01-01T00:00:00Z): the same input and
flags always give the same digest.
"""


class BuildFormat(enum.StrEnum):
    """Artifact formats."""

    WASM = "wasm"
    COMPAT = "compat"


def build(
    module: Annotated[
        Path,
        typer.Argument(
            help="A .wasm module or component, or an OPA bundle.tar.gz.", metavar="MODULE"
        ),
    ],
    tag: Annotated[
        str,
        typer.Option(
            "--tag",
            "-t",
            help="Where to write: oci:DIR[:TAG], oci-archive:FILE[:TAG], or REGISTRY/REPO[:TAG] "
            "(a registry host is required: a bare name is refused).",
            metavar="REF",
        ),
    ],
    fmt: Annotated[
        BuildFormat,
        typer.Option(
            "--format", help="wasm: the CNCF Wasm artifact; compat: a runnable wasi/wasm image."
        ),
    ] = BuildFormat.WASM,
    index: Annotated[
        bool,
        typer.Option("--index", help="compat: wrap the image in an index (platform wasi/wasm)."),
    ] = False,
    annotation: Annotated[
        list[str] | None,
        typer.Option(
            "--annotation",
            "-a",
            help="A manifest annotation KEY=VALUE; repeatable.",
            metavar="KEY=VALUE",
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="org.opencontainers.image.version", metavar="VERSION"),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="org.opencontainers.image.source", metavar="URL")
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="org.opencontainers.image.revision", metavar="REV"),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option("--description", help="org.opencontainers.image.description", metavar="TEXT"),
    ] = None,
    license_: Annotated[
        str | None,
        typer.Option("--license", help="org.opencontainers.image.licenses (SPDX)", metavar="SPDX"),
    ] = None,
    author: Annotated[
        str | None, typer.Option("--author", help="The config's author.", metavar="NAME")
    ] = None,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="wasm, components: the WIT world it targets.", metavar="WORLD"
        ),
    ] = None,
) -> None:
    """Pack a module into a scratch-based OCI artifact, reproducibly.

    The module is validated first; nothing is written if it is malformed. Prints the digest of
    what the tag points at.
    """
    from wasmctl.errors import InputError
    from wasmctl.oci.build import (
        ArtifactFormat,
        BuildOptions,
        build_artifact,
        created_from_environment,
    )
    from wasmctl.oci.reference import RegistryReference, parse_destination

    ref = parse_destination(tag)
    annotations: dict[str, str] = {}
    for item in annotation or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--annotation {item!r}: expected KEY=VALUE")
        annotations[key] = value
    standard = {
        "version": version,
        "source": source,
        "revision": revision,
        "description": description,
        "licenses": license_,
    }
    annotations.update(
        {f"org.opencontainers.image.{k}": v for k, v in standard.items() if v is not None}
    )
    created, epoch = created_from_environment()
    options = BuildOptions(
        format=ArtifactFormat(fmt.value),
        index=index,
        annotations=annotations,
        author=author,
        target=target,
        created=created,
        epoch=epoch,
    )
    # registry options load httpx and rich's progress bars: only for a registry target
    registry = registry_options(plain_http, ca_file) if isinstance(ref, RegistryReference) else None
    result = build_artifact(module, ref, options, registry)
    for warning in result.warnings:
        info(f"warning: {warning}")
    kind = "component" if result.module.is_component else "module"
    info(f"built {ref} ({fmt.value} artifact of {kind} {result.title})")
    typer.echo(result.descriptor.digest)
