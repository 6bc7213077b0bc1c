"""`wasmctl verify --attestation slsaprovenance` with conditions on the provenance, end to
end on the real generator output (`../shared/testdata/provenance/`), offline: both images
pass the builder, repository and tag conditions; a wrong builder, a wrong repository and a
branch where a tag is wanted each fail with exit 1 and say what was found (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.provenance_layouts import (
    BUILD_TYPE,
    ENTRY_POINT,
    GENERATOR,
    GENERATOR_PATTERN,
    GITHUB_ISSUER,
    IMAGES,
    SOURCE,
    SOURCE_REF,
    TRUSTED_ROOT,
    ProvenanceImage,
)
from tests.schemas import doc_schema
from wasmctl.cli import run

IDS = [i.version for i in IMAGES]


@pytest.fixture(autouse=True)
def _no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(params=IMAGES, ids=IDS)
def image(request: pytest.FixtureRequest) -> ProvenanceImage:
    found: ProvenanceImage = request.param
    return found


def verify(
    image: ProvenanceImage, tmp_path: Path, capsys: pytest.CaptureFixture[str], *conditions: str
) -> tuple[int, str, str]:
    layout = image.tagged_copy(tmp_path / "layout")
    capsys.readouterr()
    code = run([
        "verify", f"oci:{layout}@{image.digest}", "--attestation", "slsaprovenance",
        "--trusted-root", str(TRUSTED_ROOT),
        "--certificate-identity-regexp", GENERATOR_PATTERN,
        "--certificate-oidc-issuer", GITHUB_ISSUER,
        *conditions,
    ])  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def report(image: ProvenanceImage, tmp_path: Path, capsys: pytest.CaptureFixture[str],
           *conditions: str) -> tuple[int, dict[str, Any]]:  # fmt: skip
    code, out, _ = verify(image, tmp_path, capsys, "-f", "json", *conditions)
    document: dict[str, Any] = json.loads(out)
    jsonschema.validate(document, doc_schema("verify.schema.json"))
    return code, document


def test_the_generators_provenance_meets_builder_repository_and_tag(
    image: ProvenanceImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = verify(
        image, tmp_path, capsys,
        "--builder-id", image.builder_id,
        "--source-uri", f"github.com/{SOURCE.partition('/')[2]}",
        "--source-tag", "v13.0.30",
    )  # fmt: skip
    assert code == 0, out
    assert ": verified (" in out and "attestations (https://slsa.dev/provenance/v0.2)" in out
    assert f"  provenance: builderId {image.builder_id}, sourceUri {SOURCE}, " in out


def test_every_condition_at_once_passes_and_is_reported_in_json(
    image: ProvenanceImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = report(
        image, tmp_path, capsys,
        "--builder-id-regexp", GENERATOR_PATTERN,
        "--build-type", BUILD_TYPE,
        "--source-uri", f"https://{SOURCE}.git",
        "--source-ref-regexp", "refs/tags/.*",
        "--source-commit", image.commit,
        "--entry-point", ENTRY_POINT,
    )  # fmt: skip
    assert code == 0 and document["passed"]
    signature = document["signatures"][0]  # the same attestation may be listed twice
    assert signature["verified"] and signature["format"] == "cosign-attestation"
    conditions = {c["condition"]: c for c in signature["conditions"]}
    assert all(c["passed"] for c in conditions.values())
    # the generator signs, but the certificate's source claims are the caller's
    assert conditions["certificateSourceRepositoryUri"]["found"] == SOURCE
    assert conditions["certificateSourceRepositoryRef"]["found"] == SOURCE_REF
    assert conditions["certificateSourceRepositoryDigest"]["found"] == image.commit
    assert document["policy"]["provenance"]["sourceRefRegExp"] == "refs/tags/.*"


def test_no_conditions_still_check_the_provenance_against_its_certificate(
    image: ProvenanceImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = report(image, tmp_path, capsys)
    assert code == 0
    signature = document["signatures"][0]
    assert len(signature["conditions"]) == 4
    assert "provenance" not in document["policy"]


@pytest.mark.parametrize(
    ("conditions", "reason"),
    [
        (
            ["--builder-id", f"{GENERATOR}@refs/tags/v0.0.1"],
            "condition: builderId is {builder}, wanted {generator}@refs/tags/v0.0.1",
        ),
        (
            ["--builder-id-regexp", r"https://github\.com/acme/.*"],
            "condition: builderIdRegExp is {builder}, wanted a match of",
        ),
        (
            ["--source-uri", "github.com/acme/app"],
            f"condition: sourceUri is {SOURCE}, wanted github.com/acme/app",
        ),
        (
            ["--source-branch", "main"],
            f"condition: sourceRef is {SOURCE_REF}, wanted refs/heads/main",
        ),
    ],
    ids=["wrong-builder", "builder-pattern", "wrong-repository", "branch-not-tag"],
)
def test_a_condition_that_fails_is_exit_1_with_the_value_found(
    image: ProvenanceImage,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    conditions: list[str],
    reason: str,
) -> None:
    code, out, _ = verify(image, tmp_path, capsys, *conditions)
    assert code == 1
    assert "NOT verified (0 of " in out
    assert reason.format(builder=image.builder_id, generator=GENERATOR) in out


def test_a_tag_wanted_where_a_branch_was_built_fails_in_json_with_the_ref_found(
    image: ProvenanceImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = report(image, tmp_path, capsys, "--source-ref", "refs/heads/main")
    assert code == 1 and not document["passed"]
    signature = document["signatures"][0]
    assert not signature["verified"]
    assert signature["error"] == f"sourceRef is {SOURCE_REF}, wanted refs/heads/main"
    [failing] = [c for c in signature["conditions"] if not c["passed"]]
    assert failing == {
        "condition": "sourceRef",
        "wanted": "refs/heads/main",
        "found": SOURCE_REF,
        "passed": False,
    }


@pytest.mark.parametrize(
    "attestation",
    [[], ["--attestation", "cyclonedx"], ["--attestation", "https://example.test/p"]],
    ids=["signatures", "cyclonedx", "a-uri"],
)
def test_provenance_conditions_on_anything_but_provenance_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], attestation: list[str]
) -> None:
    image = IMAGES[1]
    layout = image.tagged_copy(tmp_path / "layout")
    code = run([
        "verify", f"oci:{layout}@{image.digest}", *attestation,
        "--trusted-root", str(TRUSTED_ROOT),
        "--certificate-identity-regexp", GENERATOR_PATTERN,
        "--certificate-oidc-issuer", GITHUB_ISSUER,
        "--source-tag", "v13.0.30",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--source-tag is about SLSA provenance" in err
    assert "--attestation slsaprovenance" in err


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (["--source-tag", "v1", "--source-branch", "main"], "not source tag and source branch"),
        (["--source-uri", "git+https://github.com/o/r@refs/tags/v1"], "names a ref"),
        (["--source-commit", "d37a7f7"], "not a full commit id"),
        (["--builder-id-regexp", "("], "invalid regular expression"),
    ],
)
def test_conditions_that_cannot_be_applied_are_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], conditions: list[str], message: str
) -> None:
    code, _, err = verify(IMAGES[0], tmp_path, capsys, *conditions)
    assert code == 2 and message in err
