"""Verification does not lean on `assert`, which `python -O` strips (issue 12).

Every check that guards a signature raises `SignatureError` (or `InternalError` for a state
no input can reach), so an optimised interpreter rejects exactly what a plain one does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wasmctl.errors import SignatureError
from wasmctl.sign.bundle import Bundle, TlogEntry
from wasmctl.sign.tlog import verify_inclusion, verify_set
from wasmctl.sign.verifier import verify_certificate

ROOT = Path(__file__).parents[3]

# Runs every sigstore-conformance case through `wasmctl verify` and prints the ones whose
# result differs from upstream's; no `assert` in it, since -O would strip those too.
DRIVER = textwrap.dedent(
    """
    import contextlib, io, sys
    from tests.unit.sign.test_conformance import CASES, verify_args
    from wasmctl.cli import run

    if sys.flags.optimize < 1:
        sys.exit("not run under -O")
    print(f"{len(CASES)} cases")
    for case in CASES:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = run(verify_args(case))
        rejected = case.name.endswith("_fail")
        if (code in (1, 2)) if rejected else (code == 0):
            continue
        print(f"{case.name}: exit {code}")
    """
)


def test_the_conformance_vectors_give_the_same_results_under_python_dash_o() -> None:
    proc = subprocess.run(
        [sys.executable, "-O", "-c", DRIVER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["33 cases"], proc.stdout


def _entry(**changes: object) -> TlogEntry:
    fields: dict[str, object] = {
        "log_index": 7,
        "log_id": b"\0" * 32,
        "kind": "hashedrekord",
        "version": "0.0.1",
        "integrated_time": 1700000000,
        "signed_entry_timestamp": None,
        "inclusion_proof": None,
        "body": b"{}",
    }
    return TlogEntry(**{**fields, **changes})


def test_an_entry_without_an_inclusion_proof_is_refused_not_read() -> None:
    with pytest.raises(SignatureError, match="log entry 7: no inclusion proof"):
        verify_inclusion(_entry(), log=None)


def test_an_entry_without_a_signed_entry_timestamp_is_refused_not_read() -> None:
    with pytest.raises(SignatureError, match="log entry 7: no signed entry timestamp"):
        verify_set(_entry(), log=None)


def test_a_certificate_is_never_accepted_for_want_of_a_time_to_check_it_at() -> None:
    with pytest.raises(SignatureError, match="no trusted time"):
        verify_certificate(None, [], [], None, require_sct=True)


def test_a_bundle_with_neither_signature_form_has_no_signature() -> None:
    bundle = Bundle(
        "application/vnd.dev.sigstore.bundle.v0.3+json", (), None, (), (), None, None, b""
    )
    with pytest.raises(SignatureError, match="neither a message signature nor a DSSE envelope"):
        _ = bundle.signature
