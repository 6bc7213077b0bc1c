"""`wasmctl gate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wasmctl.cli._common import info, one_of, write_output
from wasmctl.cli._help import choices_metavar
from wasmctl.cli.registry import CaFile, PlainHttp, registry_options
from wasmctl.gate.formats import GateFormat

DEFAULT_JOBS = 8  # wasmctl.gate.engine.DEFAULT_JOBS (not imported: `--help` stays fast)

EXAMPLES = """
Examples:

  wasmctl gate --policy gate.yaml ghcr.io/acme/app@sha256:…

  wasmctl gate --policy gate.yaml k8s/ --format sarif -o gate.sarif

  wasmctl gate --policy gate.yaml deploy.yaml --summary "$GITHUB_STEP_SUMMARY"

  wasmctl gate --policy gate.yaml --offline --layout mirror/ k8s/app.yaml

In the cluster, as an admission webhook: wasmctl gate serve --help
"""


def gate(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Registry references, oci:/oci-archive: layouts, or Kubernetes manifests "
            "(files or directories of *.yaml, *.yml, *.json).",
            metavar="TARGET",
        ),
    ],
    policy: Annotated[
        Path,
        typer.Option("--policy", "-p", help="The gate policy (YAML).", metavar="FILE"),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="Output format.", metavar=choices_metavar(list(GateFormat))
        ),
    ] = GateFormat.TABLE.value,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE"),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option(
            "--summary",
            help="Append a Markdown summary to FILE (e.g. $GITHUB_STEP_SUMMARY).",
            metavar="FILE",
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Contact nothing: registry references are read from --layout, keyless "
            "signatures verify against the trusted root file.",
        ),
    ] = False,
    layout: Annotated[
        Path | None,
        typer.Option(
            "--layout",
            help="With --offline: the OCI layout holding the images (tagged by reference).",
            metavar="DIR",
        ),
    ] = None,
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--trusted-root",
            help="Sigstore trusted root for keyless signatures (overrides the policy's).",
            metavar="FILE",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Gate up to N targets at once (their registry requests overlap; the "
            "report's order does not change). 1: one after another.",
            metavar="N",
        ),
    ] = DEFAULT_JOBS,
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """The pre-deploy decision: every check of the policy on every Wasm artifact.

    Signatures, attestations (an SBOM), the import scan, allowed registries, digest pinning,
    formats and sizes: all are evaluated and reported. Exit 0 pass, 1 denied, 2 bad input,
    3 registry unreachable (a gate fails closed).
    """
    from wasmctl.errors import InputError
    from wasmctl.gate.engine import GateOptions, run_gate
    from wasmctl.gate.policy import load_gate_policy
    from wasmctl.gate.report import markdown, render

    try:
        chosen = GateFormat(fmt)
    except ValueError:
        raise InputError(f"--format must be {one_of(GateFormat)}, not {fmt!r}") from None
    if layout is not None and not offline:
        raise InputError("--layout is for --offline")
    rules = load_gate_policy(policy)
    options = GateOptions(
        registry=None if offline else registry_options(plain_http, ca_file),
        offline=offline,
        layout=layout,
        trusted_root=trusted_root,
        jobs=jobs,
    )
    report = run_gate(targets, rules, options)
    write_output(render(report, chosen), output)
    if summary is not None:
        try:
            with summary.open("a", encoding="utf-8") as f:
                f.write(markdown(report))
        except OSError as e:
            raise InputError(f"cannot append the summary to {summary}: {e.strerror}") from None
    if output is not None:
        info(f"gate {report.verdict.value}: report written to {output}")
    if report.exit_code:
        raise typer.Exit(report.exit_code)
