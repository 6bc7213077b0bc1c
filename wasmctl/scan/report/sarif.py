"""SARIF 2.1.0 for GitHub code scanning (github/codeql-action/upload-sarif).

Binaries have no lines, so results carry no `region`; upload-sarif then computes no
fingerprint of its own, so every result carries `partialFingerprints` made here from the
rule, path, location and import (reference/sbom-scan.md §4). One run per file: GitHub
rejects several runs with the same tool and category.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

from wasmctl._render import iter_json
from wasmctl._sarif import SCHEMA, tool
from wasmctl.scan.model import Finding, Level, RuleId, ScanReport

# id -> (name, short description, help, security-severity)
_RULES: dict[RuleId, tuple[str, str, str, str]] = {
    RuleId.FORBIDDEN_IMPORT: (
        "ForbiddenImport",
        "The module imports a capability the policy forbids.",
        "Remove the import (or the dependency that needs it), or change the policy if the "
        "capability is intended.",
        "7.5",
    ),
    RuleId.UNKNOWN_IMPORT: (
        "UnknownImport",
        "The module imports from a module or interface of no known capability.",
        "Unknown host functions cannot be judged; allow them by name in the policy once you "
        "know what they do.",
        "5.0",
    ),
    RuleId.UNPARSEABLE: (
        "UnparseableModule",
        "The file is not a well-formed WebAssembly module or component.",
        "A file that cannot be read cannot be checked; rebuild it, or check it with "
        "`wasm-tools validate`.",
        "7.0",
    ),
    RuleId.NONSTANDARD_PREVIEW1: (
        "NonStandardPreview1Import",
        "The module imports a wasi_snapshot_preview1 function outside the 46 standard ones.",
        "Such names are host extensions (WasmEdge sockets, for example) that other runtimes lack.",
        "5.0",
    ),
    RuleId.MISSING_EXPORT: (
        "MissingRequiredExport",
        "The module lacks an export the policy requires.",
        "The host expects this entry point; check the build target and the SDK.",
        "4.0",
    ),
    RuleId.UNBUNDLED_IMPORT: (
        "UnbundledImport",
        "The component imports a core module or component whose code is not in the artifact.",
        "Compose the dependency into the component, or review what will be supplied at "
        "instantiation.",
        "5.0",
    ),
    RuleId.LIMIT_EXCEEDED: (
        "LimitExceeded",
        "The module exceeds a size or import-count limit of the policy.",
        "Shrink the module (strip debug sections, drop dependencies) or raise the limit.",
        "3.0",
    ),
    RuleId.WRONG_KIND: (
        "WrongBinaryKind",
        "The policy accepts only core modules, or only components.",
        "Build the kind of binary the target runtime loads.",
        "4.0",
    ),
}
_RULE_ORDER = list(RuleId)
_RULE_INDEX = {rule: i for i, rule in enumerate(_RULE_ORDER)}


def render_sarif(report: ScanReport) -> str:
    """The report as a SARIF 2.1.0 log with one run."""
    return "".join(iter_sarif(report))


def iter_sarif(report: ScanReport) -> Iterator[str]:
    """The text of `render_sarif` in chunks, each result made as it is written."""
    yield from iter_json(_log(report, _results(report)))
    yield "\n"


def sarif_log(report: ScanReport) -> dict[str, Any]:
    """The SARIF log as data."""
    return _log(report, list(_results(report)))


def _results(report: ScanReport) -> Iterator[dict[str, Any]]:
    for target in report.targets:
        if target.findings:
            uri = _uri(target.path)  # once per target: relpath is not free
            for f in target.findings:
                yield _result(target.path, f, uri)
    for t in report.targets:
        if t.error is not None and not t.findings:
            yield _error_result(t.path, t.error)


def _log(report: ScanReport, results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": tool([_rule(r) for r in _RULE_ORDER]),
                "automationDetails": {"id": f"wasmctl/scan/{'+'.join(report.policies)}/"},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def _rule(rule: RuleId) -> dict[str, Any]:
    name, short, help_text, severity = _RULES[rule]
    level = "warning" if rule is RuleId.UNBUNDLED_IMPORT else "error"
    return {
        "id": rule.value,
        "name": name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": f"{short} {help_text}"},
        "help": {"text": help_text, "markdown": help_text},
        "defaultConfiguration": {"level": level},
        "properties": {
            "tags": ["security", "webassembly", "supply-chain"],
            "precision": "high",
            "security-severity": severity,
        },
    }


def _uri(path: str) -> str:
    """A repository-relative URI where the path is inside the working directory."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = path
    if rel.startswith(".."):
        rel = os.path.abspath(path)
    return PurePosixPath(rel.replace(os.sep, "/")).as_posix()


def _location(uri: str) -> dict[str, Any]:
    artifact: dict[str, Any] = {"uri": uri}
    if not uri.startswith("/"):
        artifact["uriBaseId"] = "%SRCROOT%"
    return {"physicalLocation": {"artifactLocation": artifact}}


def _fingerprint(*parts: str | None) -> str:
    return hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()


def _result(path: str, f: Finding, uri: str) -> dict[str, Any]:
    return {
        "ruleId": f.rule.value,
        "ruleIndex": _RULE_INDEX[f.rule],
        "level": "error" if f.level is Level.ERROR else "warning",
        "message": {"text": f"{path}: {f.message}"},
        "locations": [_location(uri)],
        "partialFingerprints": {
            "wasmctlFinding/v1": _fingerprint(
                f.rule.value,
                uri,
                f.location,
                f.module,
                f.name,
                f.message if f.module is None else None,
            )
        },
        "properties": {
            "policy": f.policy,
            "location": f.location,
            **({"import": f.module if not f.name else f"{f.module}:{f.name}"} if f.module else {}),
            **({"capability": f.capability.value} if f.capability else {}),
        },
    }


def _error_result(path: str, error: str) -> dict[str, Any]:
    uri = _uri(path)
    return {
        "ruleId": RuleId.UNPARSEABLE.value,
        "ruleIndex": _RULE_INDEX[RuleId.UNPARSEABLE],
        "level": "error",
        "message": {"text": f"{path}: {error}"},
        "locations": [_location(uri)],
        "partialFingerprints": {"wasmctlFinding/v1": _fingerprint("read", uri, error)},
    }
