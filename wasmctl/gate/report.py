"""The gate's report as text: table, JSON, SARIF 2.1.0, and a Markdown summary.

Pure functions of a `GateReport`; `render(report, GateFormat)` picks one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from wasmctl import __version__
from wasmctl._sarif import INFORMATION_URI, SCHEMA
from wasmctl._text import printable
from wasmctl.gate.formats import GateFormat
from wasmctl.gate.model import GateReport, Status, TargetResult, Verdict

CHECK_DESCRIPTIONS = {
    "resolve": "The reference resolves to a Wasm artifact.",
    "registry": "The artifact comes from an allowed registry prefix.",
    "pin": "The reference is pinned by digest.",
    "format": "The artifact format is allowed.",
    "size": "Every module is within the size limit.",
    "signature": "Enough signatures by trusted keys or identities verify.",
    "attestation": "Each required attestation is present and verifies.",
    "scan": "The modules' imports pass the scan policies.",
}
MARK = {Verdict.PASS: "PASS", Verdict.DENY: "DENY", Verdict.ERROR: "ERROR",
        Verdict.SKIPPED: "skip"}  # fmt: skip


def render(report: GateReport, fmt: GateFormat) -> str:
    if fmt is GateFormat.JSON:
        return json.dumps(report.to_json(), indent=2) + "\n"
    if fmt is GateFormat.SARIF:
        return json.dumps(sarif(report), indent=2) + "\n"
    return table(report)


def _name(target: TargetResult) -> str:
    if target.origin is not None:
        return f"{target.target}  ({target.origin.describe()})"
    return target.target


def table(report: GateReport) -> str:
    """One block per target: its verdict, then every check with its status and message."""
    lines = [f"gate {report.verdict.value.upper()} under {report.policy} "
             f"({len(report.targets)} target(s))"]  # fmt: skip
    for target in report.targets:
        lines.append("")
        lines.append(printable(f"{MARK[target.verdict]:5} {_name(target)}"))
        if target.digest:
            lines.append(f"      digest {target.digest}" + (
                f"  format {target.format}" if target.format else ""))  # fmt: skip
        if target.override:
            lines.append(f"      override {target.override}")
        if target.skipped:
            lines.append(printable(f"      skipped: {target.skipped}"))
        lines += [
            printable(f"      {check.status.value:5} {check.check:11} {check.message}")
            for check in target.checks
        ]
    return "\n".join(lines) + "\n"


def markdown(report: GateReport) -> str:
    """A summary for `$GITHUB_STEP_SUMMARY`: the verdict, a table, and what failed."""
    icon = {Verdict.PASS: "✅", Verdict.DENY: "❌", Verdict.ERROR: "⚠️", Verdict.SKIPPED: "⏭️"}
    out = [f"## wasmctl gate: {icon[report.verdict]} {report.verdict.value}", "",
           f"Policy `{_md(report.policy)}`, {len(report.targets)} target(s).", "",
           "| target | verdict | digest | failed checks |", "|---|---|---|---|"]  # fmt: skip
    for target in report.targets:
        failed = [c.check for c in target.checks if c.status in (Status.FAIL, Status.ERROR)]
        out.append(
            f"| `{_md(target.target)}` | {icon[target.verdict]} {target.verdict.value} | "
            f"{f'`{target.digest[:19]}…`' if target.digest else ''} | {', '.join(failed)} |"
        )
    problems = [(t, c) for t in report.targets for c in t.checks
                if c.status in (Status.FAIL, Status.ERROR)]  # fmt: skip
    if problems:
        out += ["", "### What failed", ""]
        out += [
            f"- `{_md(t.target)}` **{_md_text(c.check)}**: {_md_text(c.message)}"
            for t, c in problems
        ]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    """Text for a Markdown code span: printable, no backtick to end the span early, and
    `|` escaped (GFM splits table rows before it sees code spans)."""
    return printable(text).replace("|", "\\|").replace("`", "'")


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def _md_text(text: str) -> str:
    """Untrusted text (messages naming imports, files, identities) as literal Markdown:
    every ASCII punctuation character is backslash-escaped (CommonMark §2.4), so nothing an
    artifact says becomes a link, an image, a mention, an autolink, HTML or emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", printable(text))


def sarif(report: GateReport) -> dict[str, Any]:
    """SARIF 2.1.0: one result per failed (error) or unevaluable (warning) check."""
    rules = [{"id": check, "name": check, "shortDescription": {"text": text},
              "helpUri": "https://github.com/wasmctl/wasmctl/blob/main/docs/gate.md#checks"}
             for check, text in CHECK_DESCRIPTIONS.items()]  # fmt: skip
    index = {check: i for i, check in enumerate(CHECK_DESCRIPTIONS)}
    results = []
    for target in report.targets:
        for check in target.checks:
            if check.status not in (Status.FAIL, Status.ERROR):
                continue
            results.append({
                "ruleId": check.check,
                "ruleIndex": index.get(check.check, 0),
                "level": "error" if check.status is Status.FAIL else "warning",
                "message": {"text": printable(f"{target.target}: {check.message}")},
                "locations": [_location(report, target)],
                "partialFingerprints": {
                    "wasmctlGate/v1": f"{check.check}:{target.target}:{_where(target)}",
                },
            })  # fmt: skip
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "wasmctl-gate", "version": __version__,
                                "informationUri": INFORMATION_URI,
                                "rules": rules}},
            "results": results,
        }],
    }  # fmt: skip


def _where(target: TargetResult) -> str:
    return target.origin.describe() if target.origin else ""


def _location(report: GateReport, target: TargetResult) -> dict[str, Any]:
    """Where a finding points: the manifest line naming the image, else the policy file;
    the reference itself is the logical location."""
    if target.origin is not None:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(target.origin.file)}}
        if target.origin.line:
            physical["region"] = {"startLine": target.origin.line}
    else:
        physical = {"artifactLocation": {"uri": _uri(report.policy)}}
    return {
        "physicalLocation": physical,
        "logicalLocations": [{"name": printable(target.target), "kind": "resource"}],
    }


def _uri(path: str) -> str:
    """A relative path as a URI reference, so code scanning can map it to the repository."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.relative_to(Path.cwd())
        except ValueError:
            return p.as_uri()
    return p.as_posix()
