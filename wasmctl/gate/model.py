"""What a gate decides: each check's result, each target's, and the report's verdict and
exit code (the data the reporters format; `wasmctl.gate.engine` computes it)."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any

from wasmctl.errors import exit_code_for
from wasmctl.gate.targets import Origin

SCHEMA = "wasmctl.gate/v1"


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


class Verdict(enum.StrEnum):
    PASS = "pass"
    DENY = "deny"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    remote: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True)
class TargetResult:
    target: str
    origin: Origin | None
    checks: tuple[CheckResult, ...] = ()
    reference: str | None = None
    digest: str | None = None
    format: str | None = None
    override: str | None = None
    skipped: str | None = None

    @functools.cached_property
    def verdict(self) -> Verdict:
        """Computed once (a cached verdict is read on every admission request)."""
        if self.skipped is not None:
            return Verdict.SKIPPED
        if any(c.status is Status.FAIL for c in self.checks):
            return Verdict.DENY
        if any(c.status is Status.ERROR for c in self.checks):
            return Verdict.ERROR
        return Verdict.PASS

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "origin": self.origin.to_json() if self.origin else None,
            "verdict": self.verdict.value,
            "reference": self.reference,
            "digest": self.digest,
            "format": self.format,
            "override": self.override,
            "skipped": self.skipped,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True)
class GateReport:
    policy: str
    targets: tuple[TargetResult, ...]

    @property
    def verdict(self) -> Verdict:
        verdicts = {t.verdict for t in self.targets}
        if Verdict.DENY in verdicts:
            return Verdict.DENY
        if Verdict.ERROR in verdicts:
            return Verdict.ERROR
        return Verdict.PASS

    @property
    def exit_code(self) -> int:
        """0 pass, 1 denied, 3 a registry could not be reached, 2 any other error. A gate
        fails closed: an unreachable registry is never a pass."""
        remote = any(c.remote for t in self.targets for c in t.checks)
        return exit_code_for(self.verdict, remote=remote)

    def to_json(self) -> dict[str, Any]:
        counts = {v.value: sum(t.verdict is v for t in self.targets) for v in Verdict}
        return {
            "schema": SCHEMA,
            "policy": self.policy,
            "verdict": self.verdict.value,
            "counts": counts,
            "targets": [t.to_json() for t in self.targets],
        }
