"""The gate's conditions on SLSA provenance (`attestations[].provenance`, issue 16): read
strictly from the policy file, and applied to the real generator output in
`../shared/testdata/provenance/`: the right policy passes both images, a wrong builder, a
wrong repository and a branch where a tag is wanted each deny (exit 1) with the value found.

The two images are linux/amd64 container images, which the gate would not take for Wasm by
themselves; a Pod runs them under crun's Wasm handler (`run.oci.handler: wasm`), so they are
gated, offline, from the tagged copy of their layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.provenance_layouts import (
    BUILD_TYPE,
    ENTRY_POINT,
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
from wasmctl.errors import PolicyError
from wasmctl.gate.policy import AttestationRule, load_gate_policy
from wasmctl.sign.provenance import SLSA_V02, SLSA_V1, ProvenanceConditions

IMAGE_NAME = "ghcr.io/slsa-framework/example-package"
GENERATOR_SIGNER = {"keyless": [{"identityRegExp": GENERATOR_PATTERN, "issuer": GITHUB_ISSUER}]}
RIGHT = {
    "builderIdRegExp": GENERATOR_PATTERN,
    "sourceUri": SOURCE,
    "sourceTag": "v13.0.30",
}


@pytest.fixture(autouse=True)
def _no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def write_policy(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def provenance_policy(tmp_path: Path, provenance: dict[str, str], **more: Any) -> Path:
    doc = {
        "version": 1,
        "trust": {"trustedRoot": str(TRUSTED_ROOT)},
        "attestations": [
            {
                "predicateType": "slsaprovenance",
                "signers": GENERATOR_SIGNER,
                "provenance": provenance,
            },
        ],
        **more,
    }
    jsonschema.validate(doc, doc_schema("gate.schema.json"))
    return write_policy(tmp_path, doc)


# -- the policy file -----------------------------------------------------------------------


def test_provenance_conditions_and_signers_are_read_into_the_rule(tmp_path: Path) -> None:
    policy = load_gate_policy(
        provenance_policy(tmp_path, {**RIGHT, "sourceCommit": "A" * 40, "entryPoint": "./x.yml"})
    )
    [rule] = policy.rules.attestations
    assert rule == AttestationRule(
        SLSA_V02,
        ProvenanceConditions(
            builder_id_regexp=GENERATOR_PATTERN,
            source_uri=SOURCE,
            source_ref=SOURCE_REF,
            source_commit="a" * 40,
            entry_point="x.yml",
        ),
        rule.signers,
    )
    assert rule.signers is not None and rule.signers.keys == ()
    assert rule.signers.keyless[0].identity_regexp == GENERATOR_PATTERN


def test_an_override_carries_its_own_provenance_conditions(tmp_path: Path) -> None:
    override = {
        "match": f"{IMAGE_NAME}@*",
        "attestations": [{"predicateType": "slsaprovenance1",
                          "provenance": {"sourceBranch": "main"}}],
    }  # fmt: skip
    policy = load_gate_policy(provenance_policy(tmp_path, RIGHT, overrides=[override]))
    rules, matched = policy.rules_for(f"{IMAGE_NAME}@sha256:{'0' * 64}")
    assert matched == override["match"]
    [rule] = rules.attestations
    assert (rule.predicate_type, rule.signers) == (SLSA_V1, None)
    assert rule.provenance == ProvenanceConditions(source_ref="refs/heads/main")


def test_attestation_signer_keys_are_files_the_policy_depends_on(tmp_path: Path) -> None:
    from wasmctl.gate.policy import referenced_files

    doc = {"version": 1, "attestations": [
        {"predicateType": "slsaprovenance", "signers": {"keys": ["slsa.pub"]}}]}  # fmt: skip
    policy = load_gate_policy(write_policy(tmp_path, doc))
    assert referenced_files(policy) == ((tmp_path / "slsa.pub").resolve(),)


@pytest.mark.parametrize(
    ("attestation", "message"),
    [
        (
            {"predicateType": "cyclonedx", "provenance": {"sourceTag": "v1"}},
            "`attestations[0].provenance` is for SLSA provenance",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": {"sourceTags": "v1"}},
            "unknown key in `attestations[0].provenance`: sourceTags",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": {"sourceCommit": 1234}},
            "`attestations[0].provenance.sourceCommit` must be a string",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": {"sourceTag": 1.0}},
            "`attestations[0].provenance.sourceTag` must be a string (quote it)",
        ),
        (
            {
                "predicateType": "slsaprovenance",
                "provenance": {"sourceTag": "v1", "sourceRefRegExp": "refs/.*"},
            },
            "give one of source ref",
        ),
        (
            {
                "predicateType": "slsaprovenance",
                "provenance": {"builderId": "a", "builderIdRegExp": "a"},
            },
            "exactly or as a pattern",
        ),
        (
            {
                "predicateType": "slsaprovenance",
                "provenance": {"sourceUri": "git+https://github.com/o/r@refs/tags/v1"},
            },
            "names a ref",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": {"sourceRefRegExp": "("}},
            "invalid regular expression",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": {"sourceCommit": "d37a7f7"}},
            "not a full commit id",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": {}},
            "`attestations[0].provenance` has an empty mapping",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": {"sourceTag": None}},
            "`attestations[0].provenance.sourceTag` has no value",
        ),
        (
            {"predicateType": "slsaprovenance", "provenance": "refs/tags/.*"},
            "`attestations[0].provenance` must be a mapping",
        ),
        (
            {"predicateType": "slsaprovenance", "signers": {"required": 2, "keys": ["k"]}},
            "unknown key in `attestations[0].signers`: required",
        ),
        (
            {"predicateType": "slsaprovenance", "signers": {"keys": []}},
            "`attestations[0].signers.keys` has an empty list",
        ),
        (
            {"predicateType": "slsaprovenance", "signers": {"keyless": [{"identity": "a"}]}},
            "needs exactly one of issuer, issuerRegExp",
        ),
        (
            {"predicateType": "slsaprovenance", "signer": GENERATOR_SIGNER},
            "unknown key in `attestations[0]`: signer",
        ),
    ],
)
def test_a_bad_attestation_rule_is_refused_with_where_and_why(
    tmp_path: Path, attestation: dict[str, Any], message: str
) -> None:
    doc = {"version": 1, "attestations": [attestation]}
    with pytest.raises(PolicyError, match=_escaped(message)):
        load_gate_policy(write_policy(tmp_path, doc))
    if message not in BEYOND_THE_SCHEMA:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, doc_schema("gate.schema.json"))


# what only the policy reader can tell: a repository URI with a ref, a pattern that does
# not compile
BEYOND_THE_SCHEMA = {"names a ref", "invalid regular expression"}


def _escaped(text: str) -> str:
    return "".join("\\" + c if c in "[]().*?+" else c for c in text)


def test_a_bad_policy_is_exit_2_for_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = provenance_policy(tmp_path, {"sourceTag": "v1"})
    text = path.read_text().replace("sourceTag", "sourceTags")
    path.write_text(text)
    assert run(["gate", "--policy", str(path), "oci:nowhere@sha256:" + "0" * 64]) == 2
    assert "sourceTags" in capsys.readouterr().err


# -- the gate on the real provenance --------------------------------------------------------


def gate(
    image: ProvenanceImage, tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    """Gate a Pod running `image` under crun's Wasm handler, offline from its layout."""
    layout = image.tagged_copy(tmp_path / f"layout-{image.version}")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "annotations": {"run.oci.handler": "wasm"}},
        "spec": {"containers": [{"name": "app", "image": f"{IMAGE_NAME}@{image.digest}"}]},
    }
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    capsys.readouterr()
    code = run(["gate", "-f", "json", "--policy", str(policy), "--offline",
                "--layout", str(layout), str(manifest)])  # fmt: skip
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, doc_schema("gate-report.schema.json"))
    return code, report


def attestation_check(report: dict[str, Any]) -> dict[str, Any]:
    [target] = report["targets"]
    [found] = [c for c in target["checks"] if c["check"] == "attestation"]
    return found


@pytest.mark.parametrize("image", IMAGES, ids=[i.version for i in IMAGES])
def test_the_gate_passes_the_generators_builder_repository_and_tag(
    image: ProvenanceImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = provenance_policy(
        tmp_path,
        {**RIGHT, "buildType": BUILD_TYPE, "sourceCommit": image.commit,
         "entryPoint": ENTRY_POINT},
    )  # fmt: skip
    code, report = gate(image, tmp_path, policy, capsys)
    assert code == 0, report
    check = attestation_check(report)
    assert check["status"] == "pass"
    assert check["message"].endswith("attestation verifies and meets the provenance conditions")
    assert check["details"]["provenance"]["sourceRef"] == SOURCE_REF
    assert "conditions" not in check["details"]


@pytest.mark.parametrize("image", IMAGES, ids=[i.version for i in IMAGES])
@pytest.mark.parametrize(
    ("wrong", "condition", "found"),
    [
        ({"builderId": "https://github.com/acme/builder@v1"}, "builderId", "{builder}"),
        ({"sourceUri": "https://github.com/acme/app"}, "sourceUri", SOURCE),
        ({"sourceBranch": "main"}, "sourceRef", SOURCE_REF),
    ],
    ids=["wrong-builder", "wrong-repository", "branch-not-tag"],
)
def test_the_gate_denies_a_wrong_condition_with_the_value_found(
    image: ProvenanceImage,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    wrong: dict[str, str],
    condition: str,
    found: str,
) -> None:
    conditions = {k: v for k, v in RIGHT.items() if k not in {"builderIdRegExp", "sourceTag"}}
    policy = provenance_policy(tmp_path, {**conditions, **wrong})
    code, report = gate(image, tmp_path, policy, capsys)
    assert code == 1
    assert report["verdict"] == "deny"
    check = attestation_check(report)
    assert check["status"] == "fail"
    failed = check["details"]["conditions"][0]  # one per copy of the attestation found
    assert {c["condition"] for c in check["details"]["conditions"]} == {condition}
    assert failed["found"] == found.format(builder=image.builder_id)
    assert check["details"]["found"][0].startswith(f"{failed['source']}: ")
    assert f"{condition} is {failed['found']}, wanted" in check["message"]


def test_without_its_own_signers_the_attestation_needs_signatures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {
        "version": 1,
        "trust": {"trustedRoot": str(TRUSTED_ROOT)},
        "attestations": [{"predicateType": "slsaprovenance", "provenance": RIGHT}],
    }
    code, report = gate(IMAGES[1], tmp_path, write_policy(tmp_path, doc), capsys)
    check = attestation_check(report)
    assert (code, check["status"]) == (2, "error")
    assert "own `signers`" in check["message"]


def test_an_override_can_ask_another_ref_of_the_same_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = IMAGES[0]
    override = {
        "match": f"{IMAGE_NAME}@*",
        "attestations": [{"predicateType": "slsaprovenance", "signers": GENERATOR_SIGNER,
                          "provenance": {"sourceBranch": "main"}}],
    }  # fmt: skip
    policy = provenance_policy(tmp_path, RIGHT, overrides=[override])
    code, report = gate(image, tmp_path, policy, capsys)
    assert code == 1
    assert report["targets"][0]["override"] == override["match"]
    failed = attestation_check(report)["details"]["conditions"]
    assert {(c["condition"], c["found"]) for c in failed} == {("sourceRef", SOURCE_REF)}
