"""The human-readable form of `inspect`: a module or component, or an artifact."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from wasmctl._columns import fitted_lines
from wasmctl._console import string_console
from wasmctl._render import aligned_lines
from wasmctl._text import printable

# Beyond this many rows a list is written as plain aligned columns, whatever the width:
# styling every row through rich costs too much (200,000 imports took two minutes and 600 MB).
RICH_ROW_LIMIT = 2_000


def render_module_table(info: dict[str, Any], *, color: bool = False, width: int = 100) -> str:
    """`describe_file` output as text: summary, imports, exports, custom sections, nesting."""
    console, buffer = string_console(color=color, width=width)
    _unit(console, info, root=printable(info.get("path", "")), path="")
    return buffer.getvalue()


def _unit(console: Console, info: dict[str, Any], root: str, path: str) -> None:
    head = Text(f"{root} {path}" if path else root, style="bold")
    head.append(f"  {info['kind']}, {info['size']:,} bytes")
    console.print(head, soft_wrap=True)
    _field(console, "sha256", info["sha256"])
    if info.get("name"):
        _field(console, "name", info["name"])
    for field, values in info["producers"].items():
        _field(console, field, ", ".join(f"{v['name']} {v['version']}".strip() for v in values))
    if info["target_features"]:
        _field(console, "features", " ".join(info["target_features"]))
    if info.get("start") is not None:
        _field(console, "start", f"func {info['start']}")
    imports = [
        (
            printable(f"{e['module']}:{e['name']}" if e["name"] else e["module"])
            + (" (compact)" if e.get("compact") else ""),
            e["kind"],
            e["capability"],
        )
        for e in info["imports"]
    ]
    _rows(console, ("import", "kind", "capability"), imports)
    exports = [(printable(e["name"]), e["kind"], e.get("capability", "")) for e in info["exports"]]
    _rows(console, ("export", "kind", "capability"), exports)
    customs = [
        (printable(c["name"]) + (f"  ({c['error']})" if c.get("error") else ""), f"{c['size']:,}")
        for c in info["custom_sections"]
    ]
    _rows(console, ("custom section", "size"), customs)
    console.print()
    for i, child in enumerate(info.get("nested", [])):
        _unit(console, child, root=root, path=f"{path}/{i}")


def _rows(console: Console, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    if len(rows) > RICH_ROW_LIMIT:
        console.file.write("".join(f"{line}\n" for line in aligned_lines(header, rows)))
    elif rows:
        # Within the width where names allow; a name too long is written whole (issue 15).
        cells = [[(cell, "") for cell in row] for row in rows]
        for line in fitted_lines(header, cells, console.width, header_style="bold"):
            console.print(Text.assemble(*line), soft_wrap=True)


def _field(console: Console, label: str, value: str) -> None:
    # soft_wrap: a long value is never broken by rich; the terminal shows it as it can
    console.print(Text(f"  {printable(label):<13} {printable(value)}"), soft_wrap=True)


def render_artifact_table(info: dict[str, Any], *, color: bool = False, width: int = 100) -> str:
    """`describe_artifact` (or `describe_index`) output as text: format, digests, config,
    layers, index entries, referrers, signatures and `cosign save` entries."""
    console, buffer = string_console(color=color, width=width)
    head = Text(printable(info["reference"]), style="bold")
    if info["wasm"]:
        head.append(f"  {info['format']} artifact")
    else:
        head.append("  not a Wasm artifact")
    console.print(head, soft_wrap=True)
    if not info["wasm"]:
        _field(console, "what", info["summary"])
    _field(console, "digest", info["digest"])
    _field(console, "media type", info["mediaType"])
    if info["manifest"] is not None:
        _manifest(console, info)
    if info["index"]:
        entries = []
        for entry in info["index"]["manifests"]:
            platform = entry["platform"] or {}
            role = (
                "attestation" if entry["attestation"] else "selected" if entry["selected"] else ""
            )
            os_arch = f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"
            entries.append(
                (entry["digest"][:19] + "…", printable(os_arch) if platform else "", role)
            )
        console.print(Text(f"{info['index']['kind']}:", style="bold"))
        _rows(console, ("index entry", "platform", "role"), entries)
    if info.get("referrers"):
        referrers = [
            (referrer["digest"][:19] + "…", printable(referrer["artifactType"] or ""))
            for referrer in info["referrers"]
        ]
        _rows(console, ("referrer", "artifact type"), referrers)
    if info.get("cosignSaved"):
        saved = [(entry["digest"][:19] + "…", entry["kind"]) for entry in info["cosignSaved"]]
        _rows(console, ("cosign save entry", "holds"), saved)
    if info.get("signatures"):
        signatures = []
        for found in info["signatures"]:
            kind = found["kind"]
            if found["kind"] == "attestation" and found["predicateType"]:
                kind = f"attestation {found['predicateType'].removeprefix('https://')}"
            source = _LONG_DIGEST.sub(r"\1…", found["source"].removeprefix("referrer "))
            signer = found["error"] or found["signer"]
            if len(signer) > 40 and signer.startswith("key "):  # `inspect -f json` has it all
                signer = signer[:24] + "…"
            signatures.append((printable(source), printable(kind), printable(signer)))
        _rows(console, ("signature", "kind", "signer"), signatures)
    return buffer.getvalue()


# digests are long; the first 12 hex name one (`sha256:…` and the `sha256-…` of a tag)
_LONG_DIGEST = re.compile(r"(sha256[:-][0-9a-f]{12})[0-9a-f]{52}")


def _manifest(console: Console, info: dict[str, Any]) -> None:
    """The manifest described: its digest in an index, config, annotations and layers."""
    if info["index"]:
        _field(console, "manifest", info["manifestDigest"])
    config = info["config"] or {}
    for key in ("architecture", "os", "created", "author"):
        if config.get(key):
            _field(console, key, str(config[key]))
    entrypoint = (config.get("config") or {}).get("Entrypoint")
    if entrypoint:
        _field(console, "entrypoint", " ".join(map(str, entrypoint)))
    component = config.get("component")
    if isinstance(component, dict):
        for key in ("imports", "exports"):
            for name in component.get(key) or []:
                _field(console, key[:-1], str(name))
        if component.get("target"):
            _field(console, "target", str(component["target"]))
    _field(console, "config type", info["manifest"]["config"]["mediaType"])
    for key, value in sorted((info["manifest"].get("annotations") or {}).items()):
        _field(console, "annotation", f"{key}={value}")
    layers = []
    for layer in info["layers"]:
        title = layer["annotations"].get("org.opencontainers.image.title", "")
        layers.append(
            (
                printable(f"{layer['digest'][:19]}… {title}".strip()),
                printable(layer["mediaType"]),
                f"{layer['size']:,}",
                "yes" if layer["wasm"] else "",
            )
        )
    _rows(console, ("layer", "media type", "size", "wasm"), layers)
