"""The import scan: classify every import by capability and check it against a policy.

`scan_paths(targets, policies)` scans files and directories; `evaluate(module, policies)`
checks one parsed module. Both return data (`ScanReport`, `TargetReport`) and never raise
on a violation; `wasmctl.scan.report` renders it as a table, JSON or SARIF.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wasmctl.scan.presets import PRESETS

if TYPE_CHECKING:
    from wasmctl.scan.capabilities import Capability, classify_export, classify_import
    from wasmctl.scan.engine import evaluate, find_wasm_files, scan_file, scan_paths
    from wasmctl.scan.model import (
        Finding,
        ImportVerdict,
        Level,
        RuleId,
        ScanReport,
        TargetReport,
        Verdict,
    )
    from wasmctl.scan.policy import (
        AUDIT,
        Decision,
        Policy,
        load_policy_file,
        load_preset,
        parse_policy,
    )

# Each public name's module, imported on first use: the command line reads `PRESETS` and
# `wasmctl.scan.report.ReportFormat` for its --help, which must not load the scanner.
_MODULES = {
    "Capability": "capabilities",
    "classify_export": "capabilities",
    "classify_import": "capabilities",
    "evaluate": "engine",
    "find_wasm_files": "engine",
    "scan_file": "engine",
    "scan_paths": "engine",
    "Finding": "model",
    "ImportVerdict": "model",
    "Level": "model",
    "RuleId": "model",
    "ScanReport": "model",
    "TargetReport": "model",
    "Verdict": "model",
    "AUDIT": "policy",
    "Decision": "policy",
    "Policy": "policy",
    "load_policy_file": "policy",
    "load_preset": "policy",
    "parse_policy": "policy",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AUDIT",
    "PRESETS",
    "Capability",
    "Decision",
    "Finding",
    "ImportVerdict",
    "Level",
    "Policy",
    "RuleId",
    "ScanReport",
    "TargetReport",
    "Verdict",
    "classify_export",
    "classify_import",
    "evaluate",
    "find_wasm_files",
    "load_policy_file",
    "load_preset",
    "parse_policy",
    "scan_file",
    "scan_paths",
]
