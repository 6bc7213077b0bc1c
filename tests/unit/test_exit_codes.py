"""One rule turns a verdict into an exit code, for scan, gate and verify (issue 12).

0 lets a pipeline go on, 1 is "denied", 2 and 3 are "could not decide" (bad input, and a
registry or network failure): a gate fails closed, and an unknown verdict is never a pass.
"""

from __future__ import annotations

import pytest

from wasmctl.errors import ExitCode, InternalError, exit_code_for
from wasmctl.gate.engine import Verdict as GateVerdict
from wasmctl.scan.model import Verdict as ScanVerdict

EXPECTED = {
    "pass": ExitCode.OK,
    "allow": ExitCode.OK,
    "warn": ExitCode.OK,
    "skipped": ExitCode.OK,
    "deny": ExitCode.DENIED,
    "error": ExitCode.INPUT,
}


@pytest.mark.parametrize("verdict", [*ScanVerdict, *GateVerdict], ids=str)
def test_every_scan_and_gate_verdict_has_its_exit_code(verdict: str) -> None:
    assert exit_code_for(verdict) is EXPECTED[verdict.value]


def test_an_error_from_a_registry_is_exit_3_and_any_other_error_exit_2() -> None:
    assert exit_code_for("error", remote=True) is ExitCode.REMOTE
    assert exit_code_for("error", remote=False) is ExitCode.INPUT


def test_a_denial_outranks_a_registry_failure_beside_it() -> None:
    assert exit_code_for("deny", remote=True) is ExitCode.DENIED


def test_a_passing_verdict_stays_0_whatever_remote_says() -> None:
    assert exit_code_for("pass", remote=True) is ExitCode.OK


@pytest.mark.parametrize("verdict", ["denied", "PASS", "", "ok"])
def test_an_unknown_verdict_is_a_bug_not_a_pass(verdict: str) -> None:
    with pytest.raises(InternalError, match="no exit code for the verdict"):
        exit_code_for(verdict)
