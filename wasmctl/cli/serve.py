"""`wasmctl gate serve`: the gate as a Kubernetes admission webhook."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from wasmctl.cli._help import choices_metavar
from wasmctl.cli.registry import CaFile, PlainHttp

EXAMPLES = """
Examples:

  wasmctl gate serve --policy gate.yaml --tls-cert tls.crt --tls-key tls.key

  wasmctl gate serve --policy /etc/wasmctl/policy/gate.yaml \\
    --tls-cert /tls/tls.crt --tls-key /tls/tls.key --mode warn --on-error allow

Install: deploy/ and docs/admission.md.
"""

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def duration(text: str, flag: str) -> float:
    """Seconds in `90s`, `10m`, `1h30m` or a plain number of seconds."""
    from wasmctl.errors import InputError

    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.match(text)
        if not text or match is None:
            raise InputError(
                f"{flag}: {text!r} is not a duration", hint="write e.g. 30s, 10m or 1h"
            ) from None
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 0:
        raise InputError(f"{flag}: a duration is not negative")
    return seconds


def serve(
    policy: Annotated[
        Path,
        typer.Option(
            "--policy", "-p", help="The gate policy (YAML), as for `gate`.", metavar="FILE"
        ),
    ],
    tls_cert: Annotated[
        Path,
        typer.Option(
            "--tls-cert",
            help="The serving certificate (PEM; its SAN must name the Service, "
            "e.g. wasmctl-gate.wasmctl-system.svc). Reloaded when the file changes.",
            metavar="FILE",
        ),
    ],
    tls_key: Annotated[
        Path,
        typer.Option("--tls-key", help="Its private key (PEM).", metavar="FILE"),
    ],
    address: Annotated[
        str, typer.Option("--address", help="Address to listen on (:: for IPv6 too).")
    ] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (HTTPS).")] = 8443,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="enforce: deny what the gate denies. warn: admit it, with warnings.",
            metavar=choices_metavar(("enforce", "warn")),
        ),
    ] = "enforce",
    warn_namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--warn-namespace",
            help="Warn instead of deny in this namespace (repeatable).",
            metavar="NS",
        ),
    ] = None,
    exclude_namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-namespace",
            help="Never judge this namespace (repeatable; kube-system and the server's own "
            "are always excluded).",
            metavar="NS",
        ),
    ] = None,
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            help="What to answer when no verdict can be had in time (registry down, deadline).",
            metavar=choices_metavar(("deny", "allow")),
        ),
    ] = "deny",
    allow_ttl: Annotated[
        str, typer.Option("--allow-ttl", help="How long a pass is cached.", metavar="DURATION")
    ] = "10m",
    deny_ttl: Annotated[
        str, typer.Option("--deny-ttl", help="How long a denial is cached.", metavar="DURATION")
    ] = "1m",
    tag_ttl: Annotated[
        str,
        typer.Option("--tag-ttl", help="How long a tag's digest is cached.", metavar="DURATION"),
    ] = "30s",
    cache_size: Annotated[
        int, typer.Option("--cache-size", min=1, help="Verdicts (and tags) kept at most.")
    ] = 10_000,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=64, help="Verifications run at once.")
    ] = 8,
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--trusted-root",
            help="Sigstore trusted root for keyless signatures (overrides the policy's).",
            metavar="FILE",
        ),
    ] = None,
    poll: Annotated[
        str,
        typer.Option(
            "--reload-interval",
            help="How often the policy, its files and the certificate are checked for changes.",
            metavar="DURATION",
        ),
    ] = "2s",
    plain_http: PlainHttp = None,
    ca_file: CaFile = None,
) -> None:
    """Serve the gate as a Kubernetes admission webhook over HTTPS.

    POST /validate judges Pods and workloads (Deployment, StatefulSet, DaemonSet,
    ReplicaSet, Job, CronJob) with the policy `gate` uses; POST /mutate pins their image
    tags to digests. GET /healthz, /readyz and /metrics (Prometheus). One JSON line per
    decision goes to stdout. See docs/admission.md.
    """
    from wasmctl.errors import InputError
    from wasmctl.gate.serve import ServeOptions
    from wasmctl.gate.serve import serve as run

    if mode not in ("enforce", "warn"):
        raise InputError(f"--mode must be enforce or warn, not {mode!r}")
    if on_error not in ("deny", "allow"):
        raise InputError(f"--on-error must be deny or allow, not {on_error!r}")
    interval = duration(poll, "--reload-interval")
    if interval <= 0:
        raise InputError("--reload-interval must be more than 0")
    options = ServeOptions(
        policy=policy,
        mode=mode,
        warn_namespaces=frozenset(warn_namespace or ()),
        exclude_namespaces=frozenset(exclude_namespace or ()),
        on_error=on_error,
        allow_ttl=duration(allow_ttl, "--allow-ttl"),
        deny_ttl=duration(deny_ttl, "--deny-ttl"),
        tag_ttl=duration(tag_ttl, "--tag-ttl"),
        cache_size=cache_size,
        jobs=jobs,
        plain_http=frozenset(plain_http or ()),
        ca_file=ca_file,
        trusted_root=trusted_root,
    )
    run(options, tls_cert, tls_key, address, port, poll=interval)
