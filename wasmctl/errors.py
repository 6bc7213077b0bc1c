"""The exception tree of wasmctl and the exit codes it maps to.

    WasmctlError                 exit 4 unless a subclass says otherwise
    ├── DeniedError              exit 1: the answer is "no" (policy violation, bad signature)
    │   └── SignatureError       one signature, bundle or log entry that does not verify
    ├── InputError               exit 2: bad flag, unreadable file, malformed input
    │   ├── WasmParseError       a module or component that is not well formed (has an offset)
    │   └── PolicyError          a policy file that cannot be read or does not fit the schema
    ├── RemoteError              exit 3: registry, network or authentication failure
    └── InternalError            exit 4: a bug

Library code raises these and never prints or exits; `wasmctl.cli.main` is the one place
where they become messages and exit codes. Every error carries a one-line message and may
offer `diagnostics()`: what happened, the likely cause, and what to try. A report that
holds findings instead of raising (scan, gate, verify) gets its code from `exit_code_for`.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes (DESIGN.md §1): a gate must tell "denied" from "broken"."""

    OK = 0
    DENIED = 1
    INPUT = 2
    REMOTE = 3
    INTERNAL = 4


# The verdicts of scan ("allow", "warn"), gate ("pass", "skipped") and verify ("pass") that
# let a pipeline go on; "deny" and "error" stop it.
PASSING_VERDICTS = frozenset({"pass", "allow", "warn", "skipped"})


def exit_code_for(verdict: str, *, remote: bool = False) -> ExitCode:
    """The exit code of a verdict: the one rule for scan, gate and verify.

    "deny" is DENIED (a denial outranks any error beside it); "error" is REMOTE when a
    registry or the network failed (`remote`) and INPUT otherwise, so a gate fails closed
    and still tells "no" from "could not tell"; a passing verdict is OK. A verdict this
    function does not know is a bug, never a pass.
    """
    if verdict == "deny":
        return ExitCode.DENIED
    if verdict == "error":
        return ExitCode.REMOTE if remote else ExitCode.INPUT
    if verdict in PASSING_VERDICTS:
        return ExitCode.OK
    raise InternalError(f"no exit code for the verdict {verdict!r}")


class WasmctlError(Exception):
    """Root of every error wasmctl raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The message and, where known, what to try next."""
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class DeniedError(WasmctlError):
    """A policy or a verification said no."""

    exit_code = ExitCode.DENIED


class SignatureError(DeniedError):
    """A signature, a bundle or a transparency log entry did not verify; the message says
    which check failed."""


class InputError(WasmctlError):
    """The input cannot be used: a bad flag, an unreadable file, a malformed document."""

    exit_code = ExitCode.INPUT


class WasmParseError(InputError):
    """A WebAssembly binary is not well formed; `offset` is where reading failed."""

    def __init__(self, message: str, offset: int, *, hint: str | None = None) -> None:
        super().__init__(f"{message} (at byte offset {offset})", hint=hint)
        self.reason = message
        self.offset = offset

    def in_file(self, path: str) -> WasmParseError:
        """The same error, naming the file it was found in."""
        return WasmParseError(f"{path}: {self.reason}", self.offset, hint=self.hint)


class PolicyError(InputError):
    """A scan policy cannot be loaded."""


class RemoteError(WasmctlError):
    """A registry, the network or authentication failed; retrying may help."""

    exit_code = ExitCode.REMOTE


class InternalError(WasmctlError):
    """Something that should not happen did: a bug in wasmctl."""

    exit_code = ExitCode.INTERNAL
