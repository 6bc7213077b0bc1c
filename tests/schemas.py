"""Published JSON schemas the tests validate output against, fetched and cached like the corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.corpus import Member, Package, default_cache_dir, fetch_package

DOCS = Path(__file__).parents[1] / "docs"

# The SARIF 2.1.0 (rtm.5, the OASIS standard) JSON schema, as shipped in Microsoft's npm
# package of SARIF test matchers; no PyPI package ships it.
SARIF_SCHEMA_PACKAGE = Package(
    "npm",
    "@microsoft/jest-sarif@1.0.0-beta.0",
    (
        Member(
            "sarif-2.1.0-rtm.5",
            "package/lib/schemas/sarif-2.1.0-rtm.5.json",
            "2d99159ae54a3eea97f81781cff48780548657c35949f4b7f25e99a2ba4de4f8",
        ),
    ),
)


def sarif_schema() -> dict[str, Any]:
    """The SARIF 2.1.0 schema (draft-04)."""
    path = fetch_package(SARIF_SCHEMA_PACKAGE, default_cache_dir())["sarif-2.1.0-rtm.5"]
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def doc_schema(name: str) -> dict[str, Any]:
    """One of the project's own schemas in docs/."""
    schema: dict[str, Any] = json.loads((DOCS / name).read_text(encoding="utf-8"))
    return schema
