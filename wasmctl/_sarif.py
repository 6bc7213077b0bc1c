"""What every SARIF 2.1.0 log wasmctl writes shares (scan, audit, gate): the schema it
names and the tool that made it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wasmctl import __version__

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/wasmctl/wasmctl"


def tool(rules: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`runs[].tool`: wasmctl, its version, and the rules its results refer to."""
    return {
        "driver": {
            "name": "wasmctl",
            "version": __version__,
            "semanticVersion": __version__,
            "informationUri": INFORMATION_URI,
            "rules": list(rules),
        }
    }
