"""The import scan: classify every import by capability and check it against a policy.

`scan_paths(targets, policies)` scans files and directories; `evaluate(module, policies)`
checks one parsed module. Both return data (`ScanReport`, `TargetReport`) and never raise
on a violation; `wasmctl.scan.report` renders it as a table, JSON or SARIF.
"""

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
    PRESETS,
    Decision,
    Policy,
    load_policy_file,
    load_preset,
    parse_policy,
)

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
