"""The report of a verification: a human summary, or `wasmctl.verify/v1` JSON.

Pure functions of a `Verification`; `render(result, VerifyFormat)` picks one, and
`verdict(result)` is what `wasmctl.errors.exit_code_for` turns into the exit code.
"""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, assert_never

if TYPE_CHECKING:
    from wasmctl.sign.targets import Verification


class VerifyFormat(enum.StrEnum):
    """The output formats of `wasmctl verify`."""

    TABLE = "table"
    JSON = "json"


def render(result: Verification, fmt: VerifyFormat) -> str:
    """The report in the chosen format."""
    if fmt is VerifyFormat.TABLE:
        return text(result)
    if fmt is VerifyFormat.JSON:
        return json_text(result)
    assert_never(fmt)


def verdict(result: Verification) -> str:
    """The verdict: `pass` when enough distinct signers verified, else `deny`."""
    return "pass" if result.passed else "deny"


def json_text(result: Verification) -> str:
    """The `wasmctl.verify/v1` document (docs/verify.schema.json), indented."""
    return json.dumps(result.to_json(), indent=2) + "\n"


def text(result: Verification) -> str:
    """The human summary: the verdict, each signature, and the policy."""
    from wasmctl.sign.bundle import COSIGN_SIGN_PREDICATE

    mark = "verified" if result.passed else "NOT verified"
    what = (
        f"attestations ({result.predicate_type})"
        if result.predicate_type and result.predicate_type != COSIGN_SIGN_PREDICATE
        else "signatures"
    )
    signers = "signer" if result.signers == 1 else "signers"
    lines = [
        f"{result.target}: {mark} ({result.verified} of {len(result.checks)} {what} verify, "
        f"by {result.signers} distinct {signers}; {result.required} required)",
        f"  digest: {result.digest}",
    ]
    wanted = ", ".join(
        f"{k} {', '.join(v) if isinstance(v, list) else v}"
        for k, v in result.policy.items()
        if not isinstance(v, dict)
    )
    lines.append(f"  policy: {wanted}")
    provenance = result.policy.get("provenance")
    if isinstance(provenance, dict):
        lines.append("  provenance: " + ", ".join(f"{k} {v}" for k, v in provenance.items()))
    if not result.checks:
        lines.append("  no signatures found")
    duplicates = result.duplicates()
    for i, check in enumerate(result.checks):
        status = "ok  " if check.ok else "FAIL"
        signer = check.signer.describe() if check.signer else "unknown signer"
        logged = ", logged" if check.logged else ""
        lines.append(f"  {status} {check.source} [{check.format}{logged}]")
        lines.append(f"       signer: {signer}")
        if i in duplicates:
            earlier = result.checks[duplicates[i]].source
            lines.append(f"       duplicate: the same signer as {earlier}, counted once")
        if check.subjects:
            lines.append(f"       subject: {', '.join(check.subjects)}")
        if check.predicate_type:
            lines.append(f"       predicate: {check.predicate_type}")
        failed = [c for c in check.conditions if not c.passed]
        if failed:
            lines += [f"       condition: {c.describe()}" for c in failed]
        elif check.error:
            lines.append(f"       reason: {check.error}")
    lines += [f"  problem: {p}" for p in result.problems]
    return "\n".join(lines) + "\n"
