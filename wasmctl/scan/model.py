"""The results of a scan: every import's decision and every finding, as frozen data.

A scan never raises on a violation; reporters render these values and the command line
turns them into an exit code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wasmctl.scan.capabilities import Capability
from wasmctl.scan.policy import Decision
from wasmctl.wasm.model import ExternKind, ModuleKind


class RuleId(enum.StrEnum):
    """Stable identifiers of what a finding is about (also the SARIF rule ids)."""

    FORBIDDEN_IMPORT = "WASM001"
    UNKNOWN_IMPORT = "WASM002"
    UNPARSEABLE = "WASM003"
    NONSTANDARD_PREVIEW1 = "WASM004"
    MISSING_EXPORT = "WASM005"
    UNBUNDLED_IMPORT = "WASM006"
    LIMIT_EXCEEDED = "WASM007"
    WRONG_KIND = "WASM008"


class Level(enum.StrEnum):
    """How bad a finding is: `error` denies, `warning` does not."""

    ERROR = "error"
    WARNING = "warning"


class Verdict(enum.StrEnum):
    """The outcome for one target or a whole scan."""

    ALLOW = "allow"
    WARN = "warn"
    DENY = "deny"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ImportVerdict:
    """One import (or export offering a capability) with the decision a policy made.

    `reason` names the rule or setting that decided (`deny[0] capability=network.*`) and
    `note` is that rule's own explanation, if it has one.

    `location` is `""` for the top level and `/1/0` style paths for nested modules and
    components; `direction` is `import` or `export`.
    """

    location: str
    module: str
    name: str
    kind: ExternKind
    capability: Capability
    decision: Decision
    reason: str
    policy: str
    note: str | None = None
    direction: str = "import"

    @property
    def display_name(self) -> str:
        """`module:name`, or the interface name of a component-level import."""
        return f"{self.module}:{self.name}" if self.name else self.module


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a policy objects to (level error) or warns about (level warning)."""

    rule: RuleId
    level: Level
    message: str
    policy: str
    location: str = ""
    module: str | None = None
    name: str | None = None
    capability: Capability | None = None


@dataclass(frozen=True, slots=True)
class TargetReport:
    """The scan of one file: its decisions and findings, or the error that stopped it."""

    path: str
    kind: ModuleKind | None
    size: int | None
    imports: tuple[ImportVerdict, ...]
    findings: tuple[Finding, ...]
    error: str | None = None
    remote: bool = False  # the error was a registry or network failure (exit 3)

    @property
    def verdict(self) -> Verdict:
        """error (unreadable), deny, warn or allow."""
        if self.error is not None:
            return Verdict.ERROR
        if any(f.level is Level.ERROR for f in self.findings):
            return Verdict.DENY
        if self.findings:
            return Verdict.WARN
        return Verdict.ALLOW


@dataclass(frozen=True, slots=True)
class ScanReport:
    """A whole scan: the policies used and one report per target."""

    policies: tuple[str, ...]
    targets: tuple[TargetReport, ...]

    @property
    def verdict(self) -> Verdict:
        """deny if any target is denied; otherwise error, warn or allow, in that order."""
        verdicts = {t.verdict for t in self.targets}
        for v in (Verdict.DENY, Verdict.ERROR, Verdict.WARN):
            if v in verdicts:
                return v
        return Verdict.ALLOW

    @property
    def remote_failure(self) -> bool:
        """True when a target could not be fetched from its registry."""
        return any(t.remote for t in self.targets)

    def count(self, verdict: Verdict) -> int:
        """How many targets got this verdict."""
        return sum(1 for t in self.targets if t.verdict is verdict)
