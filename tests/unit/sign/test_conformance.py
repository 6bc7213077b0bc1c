"""sigstore-conformance's bundle-verify cases through `wasmctl verify FILE --bundle`.

Each case gives the upstream expectation: a name ending in `_fail` must be rejected, every
other case must verify. Key-based cases verify with the case's `key.pub`; the others with
the case's (or the default) identity and issuer. No case may touch the network: the trusted
root is the case's own or the recorded production root.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.schemas import doc_schema
from tests.vectors import (
    CONFORMANCE,
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    PRODUCTION_ROOT,
    conformance_cases,
)
from wasmctl.cli import run

CASES = conformance_cases()


def _text(case: Path, name: str, default: str) -> str:
    path = case / name
    return path.read_text().strip() if path.exists() else default


def verify_args(case: Path) -> list[str]:
    artifact = case / "artifact" if (case / "artifact").exists() else CONFORMANCE / "a.txt"
    root = case / "trusted_root.json"
    args = [
        "verify",
        str(artifact),
        "--bundle",
        str(case / "bundle.sigstore.json"),
        "--trusted-root",
        str(root if root.exists() else PRODUCTION_ROOT),
        "--format",
        "json",
    ]
    if (case / "key.pub").exists():
        return [*args, "--key", str(case / "key.pub")]
    return [
        *args,
        "--certificate-identity",
        _text(case, "identity", DEFAULT_IDENTITY),
        "--certificate-oidc-issuer",
        _text(case, "issuer", DEFAULT_ISSUER),
    ]


def test_the_subset_has_all_33_cases() -> None:
    assert len(CASES) == 33
    assert sum(c.name.endswith("_fail") for c in CASES) == 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance_case_gives_the_upstream_result(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(verify_args(case))
    out, err = capsys.readouterr()
    if case.name.endswith("_fail"):
        assert code in (1, 2), (code, out, err)
        if code == 1:
            report = json.loads(out)
            jsonschema.validate(report, doc_schema("verify.schema.json"))
            assert report["passed"] is False
            assert report["signatures"][0]["error"]
    else:
        assert code == 0, (out, err)
        report = json.loads(out)
        jsonschema.validate(report, doc_schema("verify.schema.json"))
        assert report["passed"] is True
        assert report["verified"] == 1
